# Table 6: the ce model with repeat-factor sampling (RFS, oversample_thr 1e-3), r101, LVIS v1.
_base_ = './mask-rcnn_r101_fpn_ce_ms-2x_lvis-v1.py'
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ClassBalancedDataset',
        oversample_thr=1e-3,
        dataset={{_base_.train_dataloader.dataset}}))
