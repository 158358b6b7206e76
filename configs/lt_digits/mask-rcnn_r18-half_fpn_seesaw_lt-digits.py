# LT-Digits, mmdet's Seesaw Loss with its normalised-linear classifier (as in mmdet's
# configs/seesaw_loss/*_seesaw-loss_*), p = 0.8, q = 2.0.
_base_ = './mask-rcnn_r18-half_fpn_ce_lt-digits.py'
model = dict(
    roi_head=dict(
        bbox_head=dict(
            cls_predictor_cfg=dict(type='NormedLinear', tempearture=20),
            loss_cls=dict(_delete_=True, type='SeesawLoss', p=0.8, q=2.0, num_classes=100,
                          loss_weight=1.0))))
