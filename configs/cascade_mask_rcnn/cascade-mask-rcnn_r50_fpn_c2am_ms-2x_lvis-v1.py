# C2AM of Table 2 on Cascade Mask R-CNN: the classifier of all three stages is replaced.
_base_ = './cascade-mask-rcnn_r50_fpn_ce_ms-2x_lvis-v1.py'
custom_imports = dict(imports=['projects.c2am.mmdet_plugin'], allow_failed_imports=False)
_c2am_loss = dict(type='C2AMLoss', scale=30.0, alpha=0.5, margin='adaptive',
                  background_margin=True, loss_weight=1.0)
model = dict(
    roi_head=dict(
        bbox_head=[
            dict(type='C2AMBBoxHead', num_classes=1203, loss_cls=_c2am_loss),
            dict(type='C2AMBBoxHead', num_classes=1203, loss_cls=_c2am_loss),
            dict(type='C2AMBBoxHead', num_classes=1203, loss_cls=_c2am_loss),
        ]))
