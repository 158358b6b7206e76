"""Category frequencies from an LVIS-format annotation file (mmdet's label order)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import AnalysisError

GROUP_NAMES = {'r': 'rare', 'c': 'common', 'f': 'frequent'}


def load_categories(ann_file: str | Path) -> dict:
    """Per-category training statistics in label order.

    mmdet's ``LVISV1Dataset`` maps categories to labels in the order of the file's
    ``categories`` list (``LVIS.get_cat_ids()``); the same order is used here.

    Returns:
        dict: ``ids``, ``names``, ``frequency`` (r/c/f), ``instance_count``,
        ``image_count`` (numpy arrays where numeric).
    """
    path = Path(ann_file)
    try:
        data = json.loads(path.read_text())
        cats = data['categories']
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise AnalysisError(f'{path}: not a readable LVIS-format annotation file ({err})') \
            from None
    missing = [c.get('id') for c in cats if 'frequency' not in c]
    if missing:
        raise AnalysisError(f'{path}: categories without "frequency" (e.g. id {missing[0]}); '
                            'an LVIS v0.5/v1 train annotation file is needed')
    counts = {}
    for key in ('instance_count', 'image_count'):
        if all(key in c for c in cats):
            counts[key] = np.array([c[key] for c in cats], dtype=np.int64)
        else:  # count from the annotations themselves
            counts[key] = _count(data, cats, key)
    return dict(ids=[c['id'] for c in cats], names=[c['name'] for c in cats],
                frequency=np.array([c['frequency'] for c in cats]), **counts)


def _count(data: dict, cats: list, key: str) -> np.ndarray:
    index = {c['id']: i for i, c in enumerate(cats)}
    out = np.zeros(len(cats), dtype=np.int64)
    if key == 'instance_count':
        for a in data.get('annotations', []):
            out[index[a['category_id']]] += 1
    else:
        seen = {(a['image_id'], a['category_id']) for a in data.get('annotations', [])}
        for _, cid in seen:
            out[index[cid]] += 1
    return out
