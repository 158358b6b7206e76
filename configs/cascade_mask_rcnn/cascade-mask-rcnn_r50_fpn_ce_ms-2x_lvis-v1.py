# Cross-entropy baseline of Table 2: Cascade Mask R-CNN R50-FPN, LVIS v1, 2x, no RFS.
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    '../_base_/lvis-v1_ms-2x_paper.py',
]
# mmdet's three Cascade stages (a list replaces the base list whole, so every field is given)
stage_target_stds = [[0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1],
                     [0.033, 0.033, 0.067, 0.067]]
model = dict(
    roi_head=dict(
        bbox_head=[
            dict(
                type='Shared2FCBBoxHead',
                in_channels=256,
                fc_out_channels=1024,
                roi_feat_size=7,
                num_classes=1203,
                bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                                target_stds=stds),
                reg_class_agnostic=True,
                loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
            for stds in stage_target_stds
        ],
        mask_head=dict(num_classes=1203)),
    test_cfg=dict(
        rcnn=dict(score_thr=0.0001, nms=dict(type='nms', iou_threshold=0.5),
                  max_per_img=300)))
