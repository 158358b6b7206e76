"""LT-Digits generator: LVIS schema (lvis.LVIS and mmdet's LVISV1Dataset), frequency groups,
exact masks, determinism; the CPU configs differ only in the classifier."""
import json
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from pycocotools import mask as mask_utils

from projects.c2am.data import make_lt_digits
from projects.c2am.data.lt_digits import category_names, lvis_group, target_image_counts

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
    for key in ('type', 'loss_cls', 'cls_predictor_cfg'):
        head.pop(key, None)
    cfg.pop('custom_imports', None)
    return cfg


def test_lt_configs_differ_only_in_the_classifier():
    paths = sorted((ROOT / 'configs' / 'lt_digits').glob('*.py'))
    assert len(paths) == 5
    ref = _strip_classifier(Config.fromfile(str(paths[0])).to_dict())
    for path in paths[1:]:
        assert _strip_classifier(Config.fromfile(str(path)).to_dict()) == ref, path.name
