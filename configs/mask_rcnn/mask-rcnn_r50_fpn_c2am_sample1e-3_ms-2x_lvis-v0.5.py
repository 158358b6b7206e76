# Table 6: C2AM with RFS on LVIS v0.5 (1230 categories), ResNet-50.
_base_ = './mask-rcnn_r50_fpn_ce_sample1e-3_ms-2x_lvis-v0.5.py'
custom_imports = dict(imports=['projects.c2am.mmdet_plugin'], allow_failed_imports=False)
# classifier norms per frequency group and C2AM's margins, logged every LoggerHook interval
custom_hooks = [dict(type='ClassifierNormHook')]
model = dict(
    roi_head=dict(
        bbox_head=dict(
            type='C2AMBBoxHead',
            loss_cls=dict(
                _delete_=True,
                type='C2AMLoss',
                scale=30.0,
                alpha=0.5,
                margin='adaptive',
                background_margin=False,
                loss_weight=1.0))))
