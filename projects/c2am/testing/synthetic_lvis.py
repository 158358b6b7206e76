"""A tiny generated LVIS-v1-format instance-segmentation dataset.

Coloured ellipses and rectangles on noisy canvases, one colour per category, polygon masks,
every field that ``lvis.LVIS`` and mmdet's ``LVISV1Dataset`` / ``LVISMetric`` read. It proves
the LVIS path (loading, training, LVISMetric) without LVIS itself; it says nothing about
accuracy. Frequency groups r/c/f are ASSIGNED round-robin to the used categories so that all
three groups exist however few images there are (real LVIS derives them from image counts).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

COCO_URL = 'http://images.cocodataset.org/'
GROUPS = ('f', 'c', 'r')


def _lvis_v1_class_names() -> tuple:
    from mmdet.datasets import LVISV1Dataset
    return LVISV1Dataset.METAINFO['classes']


def _object_polygon(rng: np.random.Generator, size: int, box: tuple) -> np.ndarray:
    x0, y0, w, h = box
    if rng.random() < 0.5:
        pts = np.array([[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]])
    else:
        pts = cv2.ellipse2Poly((int(x0 + w / 2), int(y0 + h / 2)), (int(w / 2), int(h / 2)),
                               0, 0, 360, 20)
    return np.clip(pts, 0, size - 1).astype(np.int32)


def _make_split(root: Path, split: str, num_images: int, used: list, colours: np.ndarray,
                size: int, rng: np.random.Generator, first_ann_id: int) -> dict:
    img_dir = root / f'{split}2017'
    img_dir.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    ann_id = first_ann_id
    for k in range(num_images):
        img_id = k + 1 + (0 if split == 'train' else 1_000_000)
        canvas = rng.integers(0, 40, (size, size, 3), dtype=np.uint8)
        present = set()
        num_objects = int(rng.integers(1, 4))
        # non-overlapping slots on a 2x2 grid keep masks exact
        slots = rng.permutation(4)[:num_objects]
        for slot in slots:
            cat_idx = int(rng.integers(len(used)))
            half = size // 2
            w, h = (int(v) for v in rng.integers(size // 5, half - 4, 2))
            x0 = (slot % 2) * half + int(rng.integers(2, half - w - 1))
            y0 = (slot // 2) * half + int(rng.integers(2, half - h - 1))
            poly = _object_polygon(rng, size, (x0, y0, w, h))
            mask = np.zeros((size, size), np.uint8)
            cv2.fillPoly(mask, [poly], 1)
            canvas[mask > 0] = colours[cat_idx]
            ys, xs = np.nonzero(mask)
            bx, by = float(xs.min()), float(ys.min())
            bw, bh = float(xs.max() - bx + 1), float(ys.max() - by + 1)
            anns.append(dict(id=ann_id, image_id=img_id, category_id=used[cat_idx],
                             segmentation=[poly.reshape(-1).astype(float).tolist()],
                             bbox=[bx, by, bw, bh], area=float(mask.sum())))
            ann_id += 1
            present.add(used[cat_idx])
        name = f'{img_id:012d}.png'
        cv2.imwrite(str(img_dir / name), canvas)
        images.append(dict(id=img_id, width=size, height=size,
                           coco_url=f'{COCO_URL}{split}2017/{name}',
                           neg_category_ids=sorted(set(used) - present),
                           not_exhaustive_category_ids=[]))
    return dict(images=images, annotations=anns)


def make_synthetic_lvis(out_dir: str | os.PathLike,
                        num_used_categories: int = 6,
                        num_train: int = 8,
                        num_val: int = 4,
                        image_size: int = 128,
                        seed: int = 0) -> dict:
    """Write ``annotations/lvis_v1_{train,val}.json`` and PNG images under ``out_dir``.

    All 1203 LVIS v1 category names are listed (so mmdet's 1203-class configs apply as they
    are); only the first ``num_used_categories`` ids appear in images.

    Args:
        out_dir: dataset root (``data_root`` in mmdet configs; images under ``train2017/`` and
            ``val2017/``, addressed through ``coco_url`` as in LVIS v1).
        num_used_categories (int): categories that get instances.
        num_train (int): training images.
        num_val (int): validation images.
        image_size (int): square image side in pixels.
        seed (int): random seed; same seed, same bytes.

    Returns:
        dict: paths ``train_ann``, ``val_ann`` and ``data_root``.
    """
    names = _lvis_v1_class_names()
    if not 1 <= num_used_categories <= len(names):
        raise ValueError(f'num_used_categories must lie in [1, {len(names)}]')
    root = Path(out_dir)
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    used = list(range(1, num_used_categories + 1))
    colours = rng.integers(60, 256, (num_used_categories, 3), dtype=np.uint8)
    train = _make_split(root, 'train', num_train, used, colours, image_size, rng, 1)
    val = _make_split(root, 'val', num_val, used, colours, image_size, rng, 1_000_000)

    categories = []
    for cid, name in enumerate(names, start=1):
        img_ids = {a['image_id'] for a in train['annotations'] if a['category_id'] == cid}
        inst = sum(a['category_id'] == cid for a in train['annotations'])
        freq = GROUPS[(cid - 1) % 3] if cid in used else 'r'
        categories.append({'id': cid, 'name': name, 'synset': f'{name}.n.01',
                           'synonyms': [name], 'def': f'generated category {name}',
                           'frequency': freq, 'image_count': len(img_ids),
                           'instance_count': inst})
    paths = {}
    for split, data in (('train', train), ('val', val)):
        path = root / 'annotations' / f'lvis_v1_{split}.json'
        data = dict(info=dict(description='c2am synthetic LVIS-format data', seed=seed),
                    licenses=[], categories=categories, **data)
        path.write_text(json.dumps(data))
        paths[f'{split}_ann'] = str(path)
    paths['data_root'] = str(root)
    return paths
