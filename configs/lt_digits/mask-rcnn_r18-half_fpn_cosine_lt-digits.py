# LT-Digits, cosine classifier (C2AM with alpha = 0: the paper's "None" margin row).
_base_ = './mask-rcnn_r18-half_fpn_c2am_lt-digits.py'
model = dict(roi_head=dict(bbox_head=dict(loss_cls=dict(alpha=0.0, margin='none'))))
