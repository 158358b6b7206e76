# LT-Digits with Fashion-MNIST (200 categories), C2AM: the CE twin with the box classifier and
# its loss replaced exactly as in ../mask-rcnn_r18-half_fpn_c2am_lt-digits.py.
_base_ = './mask-rcnn_r18-half_fpn_ce_lt-digits-fashion.py'
custom_imports = dict(imports=['projects.c2am.mmdet_plugin'], allow_failed_imports=False)
model = dict(
    roi_head=dict(
        bbox_head=dict(
            type='C2AMBBoxHead',
            loss_cls=dict(_delete_=True, type='C2AMLoss', scale=30.0, alpha=0.5,
                          margin='adaptive', background_margin=False, loss_weight=1.0))))
