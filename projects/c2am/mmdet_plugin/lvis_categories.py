"""Category statistics of an LVIS-format annotation file, in the detector's label order."""
from __future__ import annotations

import json
import os
from collections import Counter

import torch

GROUPS = ('r', 'c', 'f')


def load_lvis_categories(ann_file: str | os.PathLike) -> dict:
    """Read the categories of an LVIS-format annotation file.

    Label ``k`` is the ``k``-th category of the file, the order mmdet's ``LVISV1Dataset``
    uses (``lvis.LVIS.get_cat_ids()``). The file may also be a bare JSON list of categories
    (a small extract of a large annotation file).

    Args:
        ann_file (str | PathLike): the annotation file (``categories`` with ``id``, ``name``,
            ``frequency`` in ``r``/``c``/``f`` and ``image_count``, as in LVIS v0.5 / v1).

    Returns:
        dict: ``ids`` (list[int]), ``names`` (list[str]), ``frequency`` (list[str]),
        ``image_count`` (Tensor ``[C]``, float32), ``instance_count`` (Tensor ``[C]``, float32:
        the categories' ``instance_count`` field, else counted over the file's
        ``annotations``; ``None`` when the file has neither) and ``num_images`` (the length of
        the file's ``images`` list; ``None`` for a bare list of categories).

    Raises:
        ValueError: a category lacks ``frequency`` or ``image_count``, or has an unknown group.
    """
    with open(ann_file) as f:
        data = json.load(f)
    cats = data if isinstance(data, list) else data.get('categories')
    if not cats:
        raise ValueError(f'{ann_file}: no categories')
    for cat in cats:
        missing = {'id', 'frequency', 'image_count'} - set(cat)
        if missing:
            raise ValueError(f'{ann_file}: category {cat.get("id")} lacks {sorted(missing)} '
                             '(LVIS-format frequency fields)')
        if cat['frequency'] not in GROUPS:
            raise ValueError(f'{ann_file}: category {cat["id"]} has frequency '
                             f'{cat["frequency"]!r}, expected one of {GROUPS}')
    ids = [c['id'] for c in cats]
    return dict(ids=ids, names=[c.get('name', '') for c in cats],
                frequency=[c['frequency'] for c in cats],
                image_count=torch.tensor([float(c['image_count']) for c in cats]),
                instance_count=_instance_count(cats, data, ids),
                num_images=len(data.get('images') or []) if isinstance(data, dict) else None)


def _instance_count(cats: list[dict], data, ids: list[int]) -> torch.Tensor | None:
    """``[C]`` instances per category: the ``instance_count`` fields when every category has
    one, else counted over the file's annotations, else ``None``."""
    if all('instance_count' in c for c in cats):
        return torch.tensor([float(c['instance_count']) for c in cats])
    annotations = data.get('annotations') if isinstance(data, dict) else None
    if not annotations:
        return None
    counts = Counter(a.get('category_id') for a in annotations)
    return torch.tensor([float(counts[i]) for i in ids])
