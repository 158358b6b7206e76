# LVIS v0.5 (1230 categories) with the paper's 2x recipe, repeat-factor sampling (Table 6).
# Layout: data/lvis_v0.5/annotations/lvis_v0.5_{train,val}.json, COCO 2017 images in
# data/lvis_v0.5/train2017/ and data/lvis_v0.5/val2017/.
_base_ = './lvis-v1_ms-2x_paper.py'
dataset_type = 'LVISV05Dataset'
data_root = 'data/lvis_v0.5/'
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ClassBalancedDataset',
        oversample_thr=1e-3,
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            ann_file='annotations/lvis_v0.5_train.json',
            data_prefix=dict(img='train2017/'),
            filter_cfg=dict(filter_empty_gt=True, min_size=32),
            pipeline={{_base_.train_pipeline}})))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/lvis_v0.5_val.json',
        data_prefix=dict(img='val2017/')))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/lvis_v0.5_val.json')
test_evaluator = val_evaluator
