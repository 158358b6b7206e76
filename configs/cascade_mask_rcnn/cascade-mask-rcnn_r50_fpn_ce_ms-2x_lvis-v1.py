# Cross-entropy baseline of Table 2: Cascade Mask R-CNN R50-FPN, LVIS v1, 2x, no RFS.
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    '../_base_/lvis-v1_ms-2x_paper.py',
]
model = dict(
    roi_head=dict(
        bbox_head=[
            dict(type='Shared2FCBBoxHead', num_classes=1203),
            dict(type='Shared2FCBBoxHead', num_classes=1203),
            dict(type='Shared2FCBBoxHead', num_classes=1203),
        ],
        mask_head=dict(num_classes=1203)),
    test_cfg=dict(
        rcnn=dict(score_thr=0.0001, nms=dict(type='nms', iou_threshold=0.5),
                  max_per_img=300)))
