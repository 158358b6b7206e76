# Not in the paper: background takes part in the margins (a margin towards the background column
# for foreground RoIs, margins for background RoIs) - the literal reading of "replace the
# cross-entropy loss". Our default leaves background out: on LT-Digits this variant lost about
# 5 AP and 7 APr (README, "LT-Digits benchmark"). Compare with the main config on LVIS.
_base_ = '../mask_rcnn/mask-rcnn_r50_fpn_c2am_ms-2x_lvis-v1.py'
model = dict(roi_head=dict(bbox_head=dict(loss_cls=dict(background_margin=True))))
