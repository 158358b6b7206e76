# LT-Digits, Balanced Group Softmax (BAGS, Li et al. 2020): one softmax per group of categories
# with similar training instance counts (the paper's bins 10 / 100 / 1000; LT-Digits' 2-480
# instances give three groups of 32 / 40 / 28 categories, close to its rare / common / frequent
# split), each with an "others" output, plus background vs foreground; 8 "others" per positive.
# Trained end to end with the same schedule as every other method; the group losses are averaged
# (loss_weight 0.25 = 1 / (3 groups + background-vs-foreground)) instead of summed as in the
# paper's code: summed, both seeds tried diverged as this schedule's warm-up ended (lr 0.04 at
# batch 8, four times the paper's per-image rate); averaged, it trains past the warm-up (a
# 160-iteration check). Test-time scores
# p(foreground) * p_group(category). Elsewhere than data/lt_digits/, also set
# model.roi_head.bbox_head.loss_cls.ann_file (benchmarks/lt_detection.py does).
_base_ = './mask-rcnn_r18-half_fpn_ce_lt-digits.py'
model = dict(
    roi_head=dict(
        bbox_head=dict(
            loss_cls=dict(_delete_=True, type='BalancedGroupSoftmaxLoss',
                          ann_file='data/lt_digits/annotations/lvis_v1_train.json',
                          num_classes=100, bins=(10, 100, 1000), others_ratio=8.0,
                          loss_weight=0.25))))
