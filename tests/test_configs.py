"""Every config under configs/ parses, builds on CPU and carries the paper's recipe."""
import re
from pathlib import Path

import pytest
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[1]
# the paper's LVIS configs (configs/lt_digits/ is the CPU benchmark, tested in test_lt_digits.py)
CONFIGS = sorted(p for p in (ROOT / 'configs').rglob('*.py')
                 if '_base_' not in p.parts and 'lt_digits' not in p.parts)
PAPER_SCALES = [(1333, s) for s in (640, 672, 704, 736, 768, 800)]


def test_the_paper_experiments_are_all_there():
    names = {p.name for p in CONFIGS}
    for model in ('mask-rcnn', 'cascade-mask-rcnn'):
        for depth in ('r50', 'r101'):
            for loss in ('ce', 'c2am'):  # Table 2
                assert f'{model}_{depth}_fpn_{loss}_ms-2x_lvis-v1.py' in names
    for s in (10, 20, 40, 50):  # Table 3 (s = 30 is the main config)
        assert f'mask-rcnn_r50_fpn_c2am-s{s}_ms-2x_lvis-v1.py' in names
    for a in ('0', '0.1', '0.3', '0.7'):  # Table 4
        assert f'mask-rcnn_r50_fpn_c2am-alpha{a}_ms-2x_lvis-v1.py' in names
    assert 'mask-rcnn_r50_fpn_c2am-fixed0.1_ms-2x_lvis-v1.py' in names  # Table 5
    assert 'mask-rcnn_r50_fpn_c2am-bgmargin_ms-2x_lvis-v1.py' in names  # background switch
    for loss in ('ce', 'c2am'):  # Table 6
        assert f'mask-rcnn_r50_fpn_{loss}_sample1e-3_ms-2x_lvis-v0.5.py' in names
        for depth in ('r50', 'r101'):
            assert f'mask-rcnn_{depth}_fpn_{loss}_sample1e-3_ms-2x_lvis-v1.py' in names


def _heads(cfg):
    bh = cfg.model.roi_head.bbox_head
    return bh if isinstance(bh, list) else [bh]


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_config_recipe(path):
    cfg = Config.fromfile(str(path))
    name = path.name
    num_classes = 1230 if 'lvis-v0.5' in name else 1203
    heads = _heads(cfg)
    assert len(heads) == (3 if name.startswith('cascade') else 1)
    for i, head in enumerate(heads):
        assert head['num_classes'] == num_classes
        if '_c2am' in name:
            assert head['type'] == 'C2AMBBoxHead' and head['loss_cls']['type'] == 'C2AMLoss'
            scale = re.search(r'c2am-s(\d+)_', name)
            alpha = re.search(r'c2am-alpha([\d.]+)_', name)
            assert head['loss_cls']['scale'] == (float(scale.group(1)) if scale else 30.0)
            assert head['loss_cls']['alpha'] == (float(alpha.group(1)) if alpha else 0.5)
            assert head['loss_cls'].get('margin', 'adaptive') == \
                ('fixed' if 'fixed' in name else 'adaptive')
            assert head['loss_cls'].get('background_margin', False) == ('-bgmargin' in name)
            assert 'projects.c2am.mmdet_plugin' in cfg.custom_imports['imports']
        else:
            assert head['type'] == 'Shared2FCBBoxHead'
            assert head['loss_cls']['type'] == 'CrossEntropyLoss'
        if name.startswith('cascade'):
            assert head['reg_class_agnostic'] is True
            assert head['bbox_coder']['target_stds'][0] == [0.1, 0.05, 0.033][i]
    assert cfg.model.roi_head.mask_head.num_classes == num_classes
    assert cfg.model.backbone.depth == (101 if '_r101_' in name else 50)
    # schedule of Sec. 4.2
    assert cfg.train_cfg.max_epochs == 24
    warmup, steps = cfg.param_scheduler
    assert warmup['type'] == 'LinearLR' and warmup['end'] == 500 and not warmup['by_epoch']
    assert steps['milestones'] == [16, 22] and steps['gamma'] == 0.1
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == ('SGD', 0.02, 0.9, 0.0001)
    assert cfg.auto_scale_lr.base_batch_size == 16
    assert cfg.train_dataloader.batch_size == 2
    rcnn = cfg.model.test_cfg.rcnn
    assert (rcnn.score_thr, rcnn.max_per_img, rcnn.nms.iou_threshold) == (0.0001, 300, 0.5)
    # data: RFS only where named, flip + multi-scale train, 1333x800 test, FastLVISMetric
    ds = cfg.train_dataloader.dataset
    if 'sample1e-3' in name:
        assert ds.type == 'ClassBalancedDataset' and ds.oversample_thr == 1e-3
        ds = ds.dataset
    else:
        assert ds.type != 'ClassBalancedDataset'
    assert ds.type == ('LVISV05Dataset' if 'lvis-v0.5' in name else 'LVISV1Dataset')
    types = {t['type']: t for t in ds.pipeline}
    assert [tuple(s) for s in types['RandomChoiceResize']['scales']] == PAPER_SCALES
    assert types['RandomFlip']['prob'] == 0.5
    test_resize = [t for t in cfg.test_dataloader.dataset.pipeline if t['type'] == 'Resize'][0]
    assert tuple(test_resize['scale']) == (1333, 800)
    assert cfg.val_evaluator.type == 'FastLVISMetric'
    assert set(cfg.val_evaluator.metric) == {'bbox', 'segm'}
    assert ('lvis_v0.5_val' if 'lvis-v0.5' in name else 'lvis_v1_val') in \
        cfg.val_evaluator.ann_file


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_config_builds_on_cpu(path):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from projects.c2am.c2am import C2AMLoss, CosineClassifier
    register_all_modules()
    cfg = Config.fromfile(str(path))
    cfg.model.backbone.init_cfg = None  # no pretrained download
    model = MODELS.build(cfg.model)
    num_classes = 1230 if 'lvis-v0.5' in path.name else 1203
    heads = model.roi_head.bbox_head
    for head in (heads if hasattr(heads, '__len__') else [heads]):
        assert head.fc_cls.out_features == num_classes + 1  # background last
        if '_c2am' in path.name:
            assert isinstance(head.fc_cls, CosineClassifier)
            assert isinstance(head.loss_cls, C2AMLoss)
            assert head.fc_cls.scale == head.loss_cls.scale
    masks = model.roi_head.mask_head
    for mask_head in (masks if hasattr(masks, '__len__') else [masks]):  # Cascade: per stage
        assert mask_head.conv_logits.out_channels == num_classes
