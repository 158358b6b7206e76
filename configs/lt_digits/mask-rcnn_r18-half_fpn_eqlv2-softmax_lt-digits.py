# LT-Digits, EQLv2 exactly as mmdet 3.3 runs it: mmdet's EQLV2Loss sets no custom activation,
# so mmdet's BBoxHead scores the detector with softmax over the sigmoid-trained logits. The same
# training as ./mask-rcnn_r18-half_fpn_eqlv2_lt-digits.py; only the test-time scores differ.
_base_ = './mask-rcnn_r18-half_fpn_ce_lt-digits.py'
model = dict(
    roi_head=dict(
        bbox_head=dict(
            loss_cls=dict(_delete_=True, type='EQLV2Loss', num_classes=100, loss_weight=1.0))))
