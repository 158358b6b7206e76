# LT-Digits, C2AM (s = 30, alpha = 0.5; background outside the margins, the project default).
_base_ = './mask-rcnn_r18-half_fpn_ce_lt-digits.py'
custom_imports = dict(imports=['projects.c2am.mmdet_plugin'], allow_failed_imports=False)
model = dict(
    roi_head=dict(
        bbox_head=dict(
            type='C2AMBBoxHead',
            loss_cls=dict(_delete_=True, type='C2AMLoss', scale=30.0, alpha=0.5,
                          margin='adaptive', background_margin=False, loss_weight=1.0))))
