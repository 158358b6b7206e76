# Not in the paper: background takes no part in the margins (no margin towards the background
# column, none for background RoIs). The paper leaves this open; compare with the main config.
_base_ = '../mask_rcnn/mask-rcnn_r50_fpn_c2am_ms-2x_lvis-v1.py'
model = dict(roi_head=dict(bbox_head=dict(loss_cls=dict(background_margin=False))))
