# C2AM of Table 2 on Cascade Mask R-CNN: the classifier of all three stages is replaced.
_base_ = './cascade-mask-rcnn_r50_fpn_ce_ms-2x_lvis-v1.py'
custom_imports = dict(imports=['projects.c2am.mmdet_plugin'], allow_failed_imports=False)
# classifier norms per frequency group and C2AM's margins, logged every LoggerHook interval
custom_hooks = [dict(type='ClassifierNormHook')]
stage_target_stds = [[0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1],
                     [0.033, 0.033, 0.067, 0.067]]
model = dict(
    roi_head=dict(
        bbox_head=[
            dict(
                type='C2AMBBoxHead',
                in_channels=256,
                fc_out_channels=1024,
                roi_feat_size=7,
                num_classes=1203,
                bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                                target_stds=stds),
                reg_class_agnostic=True,
                loss_cls=dict(type='C2AMLoss', scale=30.0, alpha=0.5, margin='adaptive',
                              background_margin=False, loss_weight=1.0),
                loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
            for stds in stage_target_stds
        ]))
