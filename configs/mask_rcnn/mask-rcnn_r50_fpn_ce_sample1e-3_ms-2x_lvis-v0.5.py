# Table 6: cross-entropy baseline with RFS on LVIS v0.5 (1230 categories), ResNet-50.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    '../_base_/lvis-v0.5_ms-2x_paper.py',
]
model = dict(
    roi_head=dict(
        bbox_head=dict(num_classes=1230), mask_head=dict(num_classes=1230)),
    test_cfg=dict(
        rcnn=dict(score_thr=0.0001, nms=dict(type='nms', iou_threshold=0.5),
                  max_per_img=300)))
