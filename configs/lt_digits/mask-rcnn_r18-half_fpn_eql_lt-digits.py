# LT-Digits, Equalization Loss (EQL, Tan et al. 2020): sigmoid CE in which a foreground RoI drops
# its negative terms for tail categories. lambda = 0.0294 = 100.5 / 3422 training images puts the
# categories of <= 100 images (rare + common) in the tail, as the paper's 1.76e-3 does on the 57k
# images of LVIS v0.5. Linear classifier, test-time scores sigmoid(x_j). Elsewhere than
# data/lt_digits/, also set model.roi_head.bbox_head.loss_cls.ann_file (benchmarks/lt_detection.py
# does).
_base_ = './mask-rcnn_r18-half_fpn_ce_lt-digits.py'
model = dict(
    roi_head=dict(
        bbox_head=dict(
            loss_cls=dict(_delete_=True, type='EqualizationLoss',
                          ann_file='data/lt_digits/annotations/lvis_v1_train.json',
                          num_classes=100, freq_threshold=0.0294, loss_weight=1.0))))
