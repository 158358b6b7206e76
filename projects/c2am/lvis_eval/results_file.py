"""Result files as the tools write them: mmdet's LVIS jsons or a ``tools/test.py --out`` pickle.

mmdet's ``LVISMetric(outfile_prefix=P)`` writes ``P.bbox.json`` and ``P.segm.json``: give either,
the other is found beside it. A pickle is read only through the restricted unpickler of
:mod:`projects.c2am.safe_load` (plain data, never code).
"""
from __future__ import annotations

from pathlib import Path

from .detections import Detections, detections_from_predictions, load_detections
from .errors import EvalInputError
from .groundtruth import GroundTruth
from .protocol import IOU_TYPES

PICKLE_SUFFIXES = ('.pkl', '.pickle')


def load_results(path: str | Path, gt: GroundTruth) -> dict[str, Detections]:
    """Detections per IoU type found at ``path``.

    Returns:
        dict: ``{'bbox': Detections, 'segm': Detections}`` with the types present (a segm json
        also serves bbox when its entries carry boxes, as mmdet's do).

    Raises:
        EvalInputError: missing or unreadable file, unsafe pickle, wrong content.
    """
    path = Path(path)
    if not path.is_file():
        raise EvalInputError(f'result file not found: {path}')
    if path.suffix in PICKLE_SUFFIXES:
        from projects.c2am.safe_load import load_pickle
        samples = load_pickle(path)
        if not isinstance(samples, list):
            raise EvalInputError(f'{path}: expected a list of predictions, got '
                                 f'{type(samples).__name__}')
        out = detections_from_predictions(samples, gt.cat_ids)
        for d in out.values():
            d.source = str(path)
        return out
    stem = str(path)
    for t in IOU_TYPES:
        if stem.endswith(f'.{t}.json'):
            stem = stem[:-len(f'.{t}.json')]
    found = {t: Path(f'{stem}.{t}.json') for t in IOU_TYPES if Path(f'{stem}.{t}.json').is_file()}
    if not found:
        dets = load_detections(path)
        if not len(dets):
            raise EvalInputError(f'{path}: no detections to evaluate (empty results)')
        out = {}
        if dets.bbox is not None:
            out['bbox'] = dets
        if dets.segm is not None:
            out['segm'] = dets
        return out
    return {t: load_detections(p) for t, p in found.items()}


def pick_iou_types(available: dict, wanted: list | None) -> list:
    """The IoU types to evaluate: ``wanted`` (each must be available) or all available.

    Raises:
        EvalInputError: a wanted type has no detections in the results.
    """
    if not wanted:
        return [t for t in IOU_TYPES if t in available]
    for t in wanted:
        if t not in available:
            raise EvalInputError(f'the results hold no {t} detections (found: '
                                 f'{", ".join(available) or "none"})')
    return list(dict.fromkeys(wanted))
