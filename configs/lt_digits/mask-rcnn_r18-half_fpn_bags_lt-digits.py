# LT-Digits, Balanced Group Softmax (BAGS, Li et al. 2020): one softmax per group of categories
# with similar training instance counts (the paper's bins 10 / 100 / 1000; LT-Digits' 2-480
# instances give three groups of 32 / 40 / 28 categories, close to its rare / common / frequent
# split), each with an "others" output, plus background vs foreground; 8 "others" per positive.
# Trained end to end with the same schedule as every other method. Test-time scores
# p(foreground) * p_group(category). Elsewhere than data/lt_digits/, also set
# model.roi_head.bbox_head.loss_cls.ann_file (benchmarks/lt_detection.py does).
_base_ = './mask-rcnn_r18-half_fpn_ce_lt-digits.py'
model = dict(
    roi_head=dict(
        bbox_head=dict(
            loss_cls=dict(_delete_=True, type='BalancedGroupSoftmaxLoss',
                          ann_file='data/lt_digits/annotations/lvis_v1_train.json',
                          num_classes=100, bins=(10, 100, 1000), others_ratio=8.0,
                          loss_weight=1.0))))
