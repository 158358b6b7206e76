# LVIS v1 data and the paper's 2x recipe (section 4.2), WITHOUT repeat-factor sampling (Table 2).
# Data layout (as mmdet expects): data/lvis_v1/annotations/lvis_v1_{train,val}.json and COCO 2017
# images under data/lvis_v1/train2017/ and data/lvis_v1/val2017/ (addressed through coco_url).
_base_ = [
    'mmdet::_base_/datasets/lvis_v1_instance.py',
    'mmdet::_base_/default_runtime.py',
]
dataset_type = 'LVISV1Dataset'
data_root = 'data/lvis_v1/'
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomChoiceResize',
         scales=[(1333, 640), (1333, 672), (1333, 704), (1333, 736), (1333, 768),
                 (1333, 800)],
         keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/lvis_v1_train.json',
        data_prefix=dict(img=''),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline,
        backend_args=backend_args))

# 24 epochs, lr x0.1 after epochs 16 and 22, 500-iteration linear warm-up.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=24, val_interval=24)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=24, by_epoch=True, milestones=[16, 22], gamma=0.1),
]
# SGD, lr 0.02 for batch 16 (2 images x 8 GPUs), momentum 0.9, weight decay 1e-4 (classifier
# included: weight decay is what balances the norm growth that C2AM's margins read).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001))
auto_scale_lr = dict(enable=False, base_batch_size=16)

# Evaluation: FastLVISMetric (projects/c2am/lvis_eval): lvis-api's numbers, many times faster,
# and scores exactly the images evaluated. backend='lvis' runs lvis-api itself; AP-fixed:
# configs/_base_/lvis_ap_fixed_test.py.
custom_imports = dict(imports=['projects.c2am.mmdet_plugin'], allow_failed_imports=False)
val_evaluator = dict(type='FastLVISMetric', ann_file=data_root + 'annotations/lvis_v1_val.json',
                     metric=['bbox', 'segm'])
test_evaluator = val_evaluator
