"""One entry point for both backends: :func:`evaluate`."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .accumulate import per_category_ap, summarize
from .detections import Detections
from .errors import EvalInputError
from .groundtruth import GroundTruth
from .protocol import AP_KEYS, FIXED_TOPK, FREQ_LBL, IOU_TYPES, MAX_DETS, POOL_KEYS
from .select import cap_per_image, top_k_per_category

BACKENDS = ('fast', 'lvis')


@dataclass
class EvalResult:
    """The outcome of one evaluation (one IoU type).

    Attributes:
        iou_type (str): 'bbox' or 'segm'.
        metrics (dict): lvis-api's ``get_results()`` keys (AP ... APf, AR@...), fractions;
            -1 where undefined, as lvis-api; AP-pool keys added with ``pool``.
        per_category (dict): ``{cat_id: AP or NaN}``, the mean of the category's valid
            precision entries (area 'all'), exactly as lvis-api averages them.
        precision (np.ndarray): [T, R, K, A] lvis-api's layout, K = sorted category ids.
        protocol (dict): backend, fixed, max_dets, topk, images, mask_area.
    """

    iou_type: str
    metrics: dict
    per_category: dict
    precision: np.ndarray
    protocol: dict = field(default_factory=dict)

    def to_json_dict(self, gt: GroundTruth | None = None) -> dict:
        """Plain JSON data; undefined values (-1, NaN) become ``None``."""
        names = dict(zip(gt.cat_ids.tolist(), gt.cat_names)) if gt is not None else {}
        freq = dict(zip(gt.cat_ids.tolist(), gt.cat_freq)) if gt is not None else {}
        out = {k: _defined(v) for k, v in self.metrics.items()}
        out['per_category'] = [
            dict(id=int(c), name=names.get(c, ''), frequency=freq.get(c, ''), AP=_defined(ap))
            for c, ap in self.per_category.items()]
        return out


def _defined(v):
    v = float(v)
    return None if (math.isnan(v) or v == -1) else v


def check_img_ids(gt: GroundTruth, img_ids) -> np.ndarray:
    """Sorted unique image ids to evaluate (all of ``gt`` when None).

    Raises:
        EvalInputError: empty, or an id the annotation file does not have.
    """
    if img_ids is None:
        return np.unique(gt.img_ids)
    ids = np.unique(np.asarray(list(img_ids), np.int64))
    if not ids.size:
        raise EvalInputError('the image subset is empty')
    unknown = ids[~np.isin(ids, gt.img_ids)]
    if unknown.size:
        raise EvalInputError(f'image id {int(unknown[0])} of the subset is not in the '
                             'annotation file')
    return ids


def select_detections(dets: Detections, img_ids: np.ndarray, *, fixed: bool,
                      max_dets: int = MAX_DETS, topk: int = FIXED_TOPK) -> Detections:
    """The detections that take part: per-image cap, or (``fixed``) the per-category top k of
    the evaluated images."""
    if fixed:
        dets = dets.take(np.flatnonzero(np.isin(dets.image_id, img_ids)))
        return dets.take(top_k_per_category(dets.category_id, dets.score, topk))
    return dets.take(cap_per_image(dets.image_id, dets.score, max_dets))


def evaluate(gt: GroundTruth, dets: Detections, iou_type: str = 'bbox', *,
             backend: str = 'fast', fixed: bool = False, pool: bool = False, img_ids=None,
             mask_area: bool = False, max_dets: int = MAX_DETS, topk: int = FIXED_TOPK,
             lvis_gt=None) -> EvalResult:
    """LVIS evaluation of one IoU type.

    Args:
        gt: the ground truth.
        dets: the detections (result-file order; ties in score are broken by it).
        iou_type: 'bbox' or 'segm'.
        backend: 'fast' (arrays, this package) or 'lvis' (lvis-api, the reference).
        fixed: AP-fixed (Dave et al. 2021): the top ``topk`` detections per category over the
            evaluated images, no per-image cap. Otherwise lvis-api's standard protocol: the top
            ``max_dets`` detections per image.
        pool: add AP-pool (Dave et al. 2021: each frequency group, and all categories,
            accumulated as one category; area 'all'), computed on the same detections.
        img_ids: evaluate only these images (default: all images of ``gt``).
        mask_area: segm only: area ranges (APs/APm/APl) of detections from their masks, not from
            their boxes. lvis-api uses the box area whenever a result has a box; the default
            keeps that rule so numbers compare with published ones.
        max_dets, topk: the cap and AP-fixed's k.
        lvis_gt: backend 'lvis': an ``lvis.LVIS`` object or the annotation path.

    Returns:
        EvalResult.

    Raises:
        EvalInputError: empty detections, unknown image / category ids, missing masks or boxes,
            an unknown backend or IoU type.
    """
    if iou_type not in IOU_TYPES:
        raise EvalInputError(f'unknown IoU type {iou_type!r} (expected one of {IOU_TYPES})')
    if backend not in BACKENDS:
        raise EvalInputError(f'unknown backend {backend!r} (expected one of {BACKENDS})')
    dets.for_iou_type(iou_type).check(gt)
    ids = check_img_ids(gt, img_ids)
    sel = select_detections(dets, ids, fixed=fixed, max_dets=max_dets, topk=topk)
    cap = -1 if fixed else max_dets
    protocol = dict(backend=backend, fixed=fixed, max_dets=cap, topk=topk if fixed else None,
                    images=int(len(ids)), detections=int(len(sel)), mask_area=mask_area)
    if backend == 'lvis':
        if pool:
            raise EvalInputError('AP-pool is computed by the fast backend only')
        if lvis_gt is None:
            raise EvalInputError("backend 'lvis' needs the annotation file")
        from .reference import run_lvis_api
        precision, _, metrics = run_lvis_api(lvis_gt, sel, iou_type, ids, max_dets=cap,
                                             mask_area=mask_area)
        metrics = {k: float(v) for k, v in metrics.items()}
    else:
        from .fast import evaluate_fast, precision_per_category, precision_per_pool
        ev = evaluate_fast(gt, sel, iou_type, ids, mask_area=mask_area)
        precision, recall = precision_per_category(ev)
        metrics = summarize(precision, recall, ev.freq_groups, cap)
        if pool:
            pools = [list(range(len(ev.cat_ids)))] + [ev.freq_groups[i]
                                                       for i in range(len(FREQ_LBL))]
            p_prec, _ = precision_per_pool(ev, pools)
            for j, key in enumerate(POOL_KEYS):
                s = p_prec[:, :, j, 0]
                metrics[key] = float(s[s > -1].mean()) if (s > -1).any() else -1.0
    cat_sorted = np.sort(gt.cat_ids)
    per_cat = dict(zip(cat_sorted.tolist(), per_category_ap(precision).tolist()))
    return EvalResult(iou_type, metrics, per_cat, precision, protocol)


__all__ = ['AP_KEYS', 'BACKENDS', 'EvalResult', 'check_img_ids', 'evaluate',
           'select_detections']
