# LT-Digits, C2AM with the norms Eq. 7 reads capped at 2 x their median (a remedy studied
# against C2AM's frequent-category AP loss; not in the paper). Everything else as the C2AM config.
_base_ = './mask-rcnn_r18-half_fpn_c2am_lt-digits.py'
model = dict(roi_head=dict(bbox_head=dict(margin_norm_cap=2.0)))
