# Table 5, "Fixed" row: a constant margin m for every j != i instead of Eq. 7. The paper tunes m
# but does not give its value; 0.1 rad is our starting point (the order of the adaptive margins
# alpha / pi * log(||W_i|| / ||W_j||) for norm ratios of 2-3). Tune with
# --cfg-options model.roi_head.bbox_head.loss_cls.fixed_margin=M.
_base_ = '../mask_rcnn/mask-rcnn_r50_fpn_c2am_ms-2x_lvis-v1.py'
model = dict(roi_head=dict(bbox_head=dict(loss_cls=dict(margin='fixed', fixed_margin=0.1))))
