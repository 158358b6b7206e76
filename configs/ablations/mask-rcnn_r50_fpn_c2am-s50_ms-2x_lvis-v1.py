# Table 3: scale s = 50 (the main config uses s = 30).
_base_ = '../mask_rcnn/mask-rcnn_r50_fpn_c2am_ms-2x_lvis-v1.py'
model = dict(roi_head=dict(bbox_head=dict(loss_cls=dict(scale=50.0))))
