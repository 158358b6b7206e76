# LT-Digits, C2AM with background outside the margins (measures the background_margin switch).
_base_ = './mask-rcnn_r18-half_fpn_c2am_lt-digits.py'
model = dict(roi_head=dict(bbox_head=dict(loss_cls=dict(background_margin=False))))
