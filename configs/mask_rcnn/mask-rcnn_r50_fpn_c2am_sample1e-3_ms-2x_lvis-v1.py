# Table 6: the c2am model with repeat-factor sampling (RFS, oversample_thr 1e-3), r50, LVIS v1.
_base_ = './mask-rcnn_r50_fpn_c2am_ms-2x_lvis-v1.py'
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ClassBalancedDataset',
        oversample_thr=1e-3,
        dataset={{_base_.train_dataloader.dataset}}))
