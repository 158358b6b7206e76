# LT-Digits, C2AM with background inside the margins (the literal reading of the paper; measured
# worse here, see README "LT-Digits benchmark").
_base_ = './mask-rcnn_r18-half_fpn_c2am_lt-digits.py'
model = dict(roi_head=dict(bbox_head=dict(loss_cls=dict(background_margin=True))))
