# LT-Digits with Fashion-MNIST (200 categories: 10 digits and 10 garments x 10 tints;
# `python lt_digits/make_dataset.py --fashion`): the LT-Digits CE config with the data and the
# class count changed. Its C2AM twin beside it changes only the box classifier and its loss.
_base_ = '../mask-rcnn_r18-half_fpn_ce_lt-digits.py'
from lt_digits.categories import category_names  # noqa: E402  (the names live there)

data_root = 'data/lt_digits_fashion/'
classes = tuple(category_names(fashion=True))
num_classes = 200

model = dict(roi_head=dict(bbox_head=dict(num_classes=num_classes),
                           mask_head=dict(num_classes=num_classes)))
train_dataloader = dict(dataset=dict(data_root=data_root, metainfo=dict(classes=classes)))
val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=dict(classes=classes)))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/lvis_v1_val.json')
test_evaluator = val_evaluator
