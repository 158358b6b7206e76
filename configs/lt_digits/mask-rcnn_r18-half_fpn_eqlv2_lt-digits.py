# LT-Digits, Equalization Loss v2 (Tan et al., CVPR 2021): mmdet's EQLV2Loss (mu 0.8, alpha 4,
# gamma 12, as mmdet and the official code) with a plain linear classifier, scored at test time
# with its sigmoid activation, sigmoid(x_j) * (1 - sigmoid(x_bg)), as the official code does.
# mmdet 3.3 itself would score it with softmax (see projects/c2am/mmdet_plugin/
# sigmoid_eqlv2_loss.py; the `eqlv2-softmax` config beside this one measures the difference).
_base_ = './mask-rcnn_r18-half_fpn_ce_lt-digits.py'
model = dict(
    roi_head=dict(
        bbox_head=dict(
            loss_cls=dict(_delete_=True, type='SigmoidEQLV2Loss', num_classes=100,
                          loss_weight=1.0))))
