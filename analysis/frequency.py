"""Category frequencies in mmdet's label order: from an LVIS-format annotation file, from the
annotation file a checkpoint's config names, or from the LVIS category metadata shipped in
``analysis/data/`` (ids, names, r/c/f groups; no counts).
"""
from __future__ import annotations

import ast
import json
import math
import os
from pathlib import Path

import numpy as np

from .errors import AnalysisError

GROUP_NAMES = {'r': 'rare', 'c': 'common', 'f': 'frequent'}
DATA = Path(__file__).resolve().parent / 'data'
# number of categories -> shipped metadata file
SHIPPED = {1203: ('LVIS v1', DATA / 'lvis_v1_categories.json'),
           1230: ('LVIS v0.5', DATA / 'lvis_v0.5_categories.json')}


def _count_list(path: Path, cats: list, key: str) -> np.ndarray:
    def ok(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    bad = next((c for c in cats if not ok(c[key])), None)
    if bad is not None:
        raise AnalysisError(f'{path}: category {bad["id"]} has {key} {bad[key]!r}; '
                            'expected an integer >= 0')
    return np.array([c[key] for c in cats], dtype=np.int64)


def check_categories(path: Path, cats, *, need_frequency: bool = True) -> None:
    """Raise :class:`AnalysisError` unless ``cats`` is a non-empty list of LVIS categories
    (``id`` int, unique; ``name`` str; ``frequency`` r/c/f when ``need_frequency``)."""
    if not isinstance(cats, list) or not cats:
        raise AnalysisError(f'{path}: "categories" must be a non-empty list')
    for c in cats:
        if not isinstance(c, dict) or not isinstance(c.get('id'), int) \
                or isinstance(c.get('id'), bool) or not isinstance(c.get('name'), str):
            raise AnalysisError(f'{path}: a category must be an object with an integer "id" and '
                                f'a string "name", got {str(c)[:80]}')
        if need_frequency and c.get('frequency') not in GROUP_NAMES:
            what = 'without "frequency"' if 'frequency' not in c else \
                f'with frequency {c["frequency"]!r} (expected r, c or f)'
            raise AnalysisError(f'{path}: categories {what} (e.g. id {c["id"]}); an LVIS '
                                'v0.5/v1 train annotation file is needed')
    ids = [c['id'] for c in cats]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise AnalysisError(f'{path}: category id {dup} appears twice')


def load_categories(ann_file: str | Path) -> dict:
    """Per-category training statistics in label order.

    mmdet's ``LVISV1Dataset`` maps categories to labels in the order of the file's
    ``categories`` list (``LVIS.get_cat_ids()``); the same order is used here.

    Returns:
        dict: ``ids``, ``names``, ``frequency`` (r/c/f), ``instance_count``,
        ``image_count`` (numpy arrays where numeric).

    Raises:
        AnalysisError: the file is missing, not json, or not LVIS-format.
    """
    path = Path(ann_file)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise AnalysisError(f'{path}: not a readable LVIS-format annotation file ({reason})') \
            from None
    if not isinstance(data, dict) or 'categories' not in data:
        raise AnalysisError(f'{path}: not an LVIS-format annotation file (no "categories")')
    cats = data['categories']
    check_categories(path, cats)
    counts = {}
    for key in ('instance_count', 'image_count'):
        if all(key in c for c in cats):
            counts[key] = _count_list(path, cats, key)
        else:  # count from the annotations themselves
            counts[key] = _count(path, data, cats, key)
    return dict(ids=[c['id'] for c in cats], names=[c['name'] for c in cats],
                frequency=np.array([c['frequency'] for c in cats]), **counts)


def _count(path: Path, data: dict, cats: list, key: str) -> np.ndarray:
    index = {c['id']: i for i, c in enumerate(cats)}
    anns = data.get('annotations', [])
    if not isinstance(anns, list) or not all(isinstance(a, dict) for a in anns):
        raise AnalysisError(f'{path}: "annotations" must be a list of objects')
    try:
        unknown = next((a['category_id'] for a in anns if a['category_id'] not in index), None)
        pairs = [(a['image_id'], a['category_id']) for a in anns]
    except (KeyError, TypeError) as err:
        raise AnalysisError(f'{path}: an annotation lacks {err} (need image_id and '
                            'category_id)') from None
    if unknown is not None:
        raise AnalysisError(f'{path}: an annotation has category_id {unknown!r}, which is not '
                            'in "categories"')
    out = np.zeros(len(cats), dtype=np.int64)
    for _, cid in (pairs if key == 'instance_count' else set(pairs)):
        out[index[cid]] += 1
    return out


def shipped_categories(num_classes: int) -> tuple[str, dict] | None:
    """The LVIS metadata shipped with the project for 1203 (v1) or 1230 (v0.5) classes.

    Returns:
        tuple | None: ``(name, categories)``, categories as :func:`load_categories` returns
        them but without counts (``instance_count`` and ``image_count`` are None); None for
        any other class count.
    """
    if num_classes not in SHIPPED:
        return None
    name, path = SHIPPED[num_classes]
    cats = json.loads(path.read_text())['categories']
    return name, dict(ids=[c['id'] for c in cats], names=[c['name'] for c in cats],
                      frequency=np.array([c['frequency'] for c in cats]),
                      instance_count=None, image_count=None)


def _literal(node):
    """Plain data of a config expression: literals and ``dict(...)``; anything else None.
    Nothing is executed (a checkpoint's config text is as untrusted as the checkpoint)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id == 'dict' and not node.args:
        return {kw.arg: _literal(kw.value) for kw in node.keywords if kw.arg}
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)
                if k is not None and isinstance(_literal(k), str)}
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def config_ann_file(cfg_text) -> Path | None:
    """The training annotation file named by a checkpoint's saved config (``meta['cfg']``).

    Follows ``train_dataloader.dataset`` through dataset wrappers (``ClassBalancedDataset``,
    ``RepeatDataset``: nested ``dataset``) to ``data_root`` + ``ann_file``. The text is parsed,
    never executed. A relative path is taken relative to the current directory, as mmengine
    would.

    Returns:
        Path | None: the path when the config names one, whether or not it exists.
    """
    if not isinstance(cfg_text, str):
        return None
    try:
        tree = ast.parse(cfg_text)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    loader = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and
                                                t.id == 'train_dataloader' for t in node.targets):
            loader = _literal(node.value)
    dataset = loader.get('dataset') if isinstance(loader, dict) else None
    root = ''
    for _ in range(8):  # wrappers nest datasets a few levels deep at most
        if not isinstance(dataset, dict):
            return None
        if isinstance(dataset.get('data_root'), str):
            root = dataset['data_root']
        if isinstance(dataset.get('ann_file'), str) and dataset['ann_file']:
            return Path(os.path.join(root, dataset['ann_file']))
        dataset = dataset.get('dataset')
    return None


def finite_or_none(value: float) -> float | None:
    """``value`` as a float, or None where it is NaN / infinite (json has no NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None
