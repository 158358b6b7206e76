# Table 4: alpha = 0.1 (the main config uses alpha = 0.5; alpha = 0 is the plain cosine classifier).
_base_ = '../mask_rcnn/mask-rcnn_r50_fpn_c2am_ms-2x_lvis-v1.py'
model = dict(roi_head=dict(bbox_head=dict(loss_cls=dict(alpha=0.1))))
