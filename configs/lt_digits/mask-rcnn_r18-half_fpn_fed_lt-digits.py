# LT-Digits, Federated Loss (Zhou et al. 2021, as in Detectron2 / CenterNet2): sigmoid CE over
# the classes present in the batch, topped up to 50 classes drawn with probability
# image_count ** 0.5; the image counts are read from the training annotation file.
# Linear classifier, test-time scores sigmoid(x_j). Elsewhere than data/lt_digits/, also set
# model.roi_head.bbox_head.loss_cls.ann_file (benchmarks/lt_detection.py does).
_base_ = './mask-rcnn_r18-half_fpn_ce_lt-digits.py'
model = dict(
    roi_head=dict(
        bbox_head=dict(
            loss_cls=dict(_delete_=True, type='FederatedLoss',
                          ann_file='data/lt_digits/annotations/lvis_v1_train.json',
                          num_classes=100, num_classes_per_batch=50, freq_weight_power=0.5,
                          loss_weight=1.0))))
