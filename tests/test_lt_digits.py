"""LT-Digits generator: LVIS schema (lvis.LVIS and mmdet's LVISV1Dataset), frequency groups,
exact masks, determinism; the CPU configs differ only in the classifier."""
import json
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from pycocotools import mask as mask_utils

from lt_digits import make_lt_digits
from lt_digits.generate import category_names, lvis_group, target_image_counts

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(max_images=150, min_images=1.5, progress=False)


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    return make_lt_digits(tmp_path_factory.mktemp('ltd'), seed=3, **SMALL)


def test_loads_with_lvis_and_mmdet(small):
    from lvis import LVIS
    from mmdet.datasets import LVISV1Dataset
    from mmdet.utils import register_all_modules
    register_all_modules()  # mmdet's LoadAnnotations, not mmcv's
    for split in ('train', 'val'):
        api = LVIS(small[f'{split}_ann'])
        assert len(api.get_cat_ids()) == 100
        ds = LVISV1Dataset(data_root=small['data_root'] + '/', ann_file=small[f'{split}_ann'],
                           data_prefix=dict(img=''), metainfo=dict(classes=small['classes']),
                           pipeline=[dict(type='LoadImageFromFile'),
                                     dict(type='LoadAnnotations', with_bbox=True,
                                          with_mask=True)],
                           test_mode=split == 'val')
        sample = ds[0]
        assert sample['img'].shape == (128, 128, 3)
        assert len(sample['gt_bboxes']) == len(sample['gt_masks']) > 0
    val = json.loads(Path(small['val_ann']).read_text())
    assert {a['category_id'] for a in val['annotations']} == set(range(1, 101))
    for img in val['images']:
        present = {a['category_id'] for a in val['annotations'] if a['image_id'] == img['id']}
        assert not present & set(img['neg_category_ids'])
        assert len(img['neg_category_ids']) == 10


def test_frequency_groups_follow_lvis_definition(small):
    data = json.loads(Path(small['train_ann']).read_text())
    images_of = {}
    for a in data['annotations']:
        images_of.setdefault(a['category_id'], set()).add(a['image_id'])
    for cat in data['categories']:
        n = len(images_of.get(cat['id'], ()))
        assert cat['image_count'] == n
        assert cat['frequency'] == ('r' if n <= 10 else 'c' if n <= 100 else 'f')
        assert cat['instance_count'] >= n
    groups = [c['frequency'] for c in data['categories']]
    assert all(groups.count(g) >= 5 for g in 'rcf')  # all three groups exist
    assert [c['name'] for c in data['categories']] == category_names()
    assert lvis_group(10) == 'r' and lvis_group(11) == 'c' and lvis_group(101) == 'f'


def test_default_profile_has_lvis_like_proportions():
    # LVIS v1: 337 rare, 461 common, 405 frequent of 1203 (28 / 38 / 34 %)
    counts = target_image_counts(100, 480, 1.5, np.random.default_rng(0))
    groups = [lvis_group(int(n)) for n in counts]
    assert [groups.count(g) for g in 'rcf'] == [34, 39, 27]


def test_masks_are_the_coloured_glyph_pixels(small):
    import cv2
    data = json.loads(Path(small['train_ann']).read_text())
    img = data['images'][0]
    pixels = cv2.imread(str(Path(small['data_root']) / 'train2017' /
                            img['coco_url'].rsplit('/', 1)[1]))[:, :, ::-1].astype(int)
    anns = [a for a in data['annotations'] if a['image_id'] == img['id']]
    union = np.zeros(pixels.shape[:2], bool)
    for a in anns:
        m = mask_utils.decode(a['segmentation']).astype(bool)
        assert m.sum() == a['area']
        ys, xs = np.nonzero(m)
        assert a['bbox'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                             ys.max() - ys.min() + 1]
        assert not (union & m).any()  # visible masks do not overlap
        union |= m
        # every mask pixel carries the category's tint (bright, saturated), unlike background
        assert pixels[m].max(axis=1).min() >= 150
    assert pixels[~union].max(axis=1).mean() < 60


def test_same_seed_same_dataset(small, tmp_path):
    again = make_lt_digits(tmp_path / 'again', seed=3, **SMALL)
    for split in ('train', 'val'):
        assert Path(small[f'{split}_ann']).read_bytes() == Path(again[f'{split}_ann']).read_bytes()
    other = make_lt_digits(tmp_path / 'other', seed=4, **SMALL)
    assert Path(other['train_ann']).read_bytes() != Path(small['train_ann']).read_bytes()


def _strip_classifier(cfg: dict) -> dict:
    cfg = json.loads(json.dumps(cfg, default=str))
    head = cfg['model']['roi_head']['bbox_head']
    for key in ('type', 'loss_cls', 'cls_predictor_cfg', 'margin_norm_cap'):
        head.pop(key, None)
    cfg.pop('custom_imports', None)
    return cfg


def test_lt_configs_differ_only_in_the_classifier():
    paths = sorted((ROOT / 'configs' / 'lt_digits').glob('*.py'))
    assert len(paths) == 14
    ref = _strip_classifier(Config.fromfile(str(paths[0])).to_dict())
    for path in paths[1:]:
        cfg = _strip_classifier(Config.fromfile(str(path)).to_dict())
        if '_sample3e-2_' in path.name:  # RFS: the sampler is the method
            wrapper = cfg['train_dataloader'].pop('dataset')
            assert wrapper.pop('type') == 'ClassBalancedDataset'
            assert wrapper.pop('oversample_thr') == 0.03
            cfg['train_dataloader']['dataset'] = wrapper.pop('dataset')
            assert not wrapper
        if '_c2am-clswd_' in path.name:  # the classifier's weight decay is the method
            assert cfg['optim_wrapper'].pop('paramwise_cfg') == {
                'custom_keys': {'roi_head.bbox_head.fc_cls': {'decay_mult': 250.0}}}
        assert cfg == ref, path.name
        assert Config.fromfile(str(path)).custom_hooks == [dict(type='ClassifierNormHook')]


def _write_idx(path: Path, array: np.ndarray) -> None:
    import gzip
    header = (0x0800 | array.ndim).to_bytes(4, 'big') + b''.join(
        int(d).to_bytes(4, 'big') for d in array.shape)
    with gzip.open(path, 'wb') as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope='module')
def fake_fashion(tmp_path_factory):
    """Four Fashion-MNIST-format IDX files whose 'garments' are solid rectangles."""
    root = tmp_path_factory.mktemp('fashion')
    for split, n in (('train', 200), ('t10k', 60)):
        images = np.zeros((n, 28, 28), np.uint8)
        images[:, 4:24, 6:22] = 255  # solid: fills its box, unlike any digit stroke
        _write_idx(root / f'{split}-images-idx3-ubyte.gz', images)
        _write_idx(root / f'{split}-labels-idx1-ubyte.gz', np.arange(n) % 10)
    return root


def test_fashion_adds_100_categories(fake_fashion, tmp_path):
    from lvis import LVIS
    info = make_lt_digits(tmp_path / 'ltf', seed=1, fashion_root=fake_fashion, **SMALL)
    assert info['classes'] == tuple(category_names(fashion=True))
    assert info['classes'][100:102] == ('tshirt_red', 'tshirt_green')
    assert sum(info['groups'].values()) == 200 and min(info['groups'].values()) >= 10
    val = json.loads(Path(info['val_ann']).read_text())
    assert {a['category_id'] for a in val['annotations']} == set(range(1, 201))
    assert len(LVIS(info['train_ann']).get_cat_ids()) == 200
    train = json.loads(Path(info['train_ann']).read_text())
    fill = {True: [], False: []}  # mask area / box area, garments vs digits
    for a in train['annotations']:
        fill[a['category_id'] > 100].append(a['area'] / (a['bbox'][2] * a['bbox'][3]))
    assert np.median(fill[True]) > 0.95 and np.median(fill[False]) < 0.6


def test_fashion_missing_is_one_clear_error(tmp_path):
    import subprocess
    import sys
    keep = tmp_path / 'existing'
    keep.mkdir()
    (keep / 'mine.txt').write_text('user data')
    run = subprocess.run([sys.executable, str(ROOT / 'lt_digits' / 'make_dataset.py'),
                          '--fashion', str(tmp_path / 'nowhere'), '--out', str(keep),
                          '--force'], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.count('\n') == 1 and 'dataset-fashion-mnist' in run.stderr
    assert (keep / 'mine.txt').read_text() == 'user data'  # nothing replaced


def test_fashion_configs_200_classes_and_only_the_classifier_differs():
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    folder = ROOT / 'configs' / 'lt_digits' / 'fashion'
    ce, c2am = (Config.fromfile(str(folder / f'mask-rcnn_r18-half_fpn_{n}_lt-digits-fashion.py'))
                for n in ('ce', 'c2am'))
    assert _strip_classifier(ce.to_dict()) == _strip_classifier(c2am.to_dict())
    assert ce.train_dataloader.dataset.metainfo['classes'] == tuple(category_names(True))
    assert ce.val_evaluator.ann_file.startswith(ce.train_dataloader.dataset.data_root)
    import projects.c2am.mmdet_plugin  # noqa: F401
    head = MODELS.build(c2am.model).roi_head.bbox_head
    assert head.fc_cls.weight.shape[0] == 201  # 200 categories + background
