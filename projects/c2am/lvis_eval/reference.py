"""The reference backend: lvis-api 0.5.3 itself (``LVISResults`` + ``LVISEval``).

Two deviations from how mmdet 3.3's ``LVISMetric`` drives it, both fixes: the image subset is
set as ``params.img_ids`` (lvis-api's name; mmdet sets ``imgIds``, which lvis-api ignores), and
AP-fixed runs with ``max_dets=-1`` on the per-category top k, as Dave et al.'s
``evaluate_ap_fixed.py`` does.
"""
from __future__ import annotations

import numpy as np

from .detections import Detections


def _allow_np_float() -> None:
    # lvis 0.5.3 (lvis/eval.py) uses np.float, removed in numpy 1.24; the same fix as
    # projects.c2am.compat, without importing torch.
    if 'float' not in np.__dict__:
        np.float = float  # type: ignore[attr-defined]


def as_result_list(dets: Detections, iou_type: str, *, with_bbox: bool = True) -> list:
    """LVIS result dicts (fresh objects: lvis-api writes into them)."""
    out = []
    for i in range(len(dets)):
        d = dict(image_id=int(dets.image_id[i]), category_id=int(dets.category_id[i]),
                 score=float(dets.score[i]))
        if dets.bbox is not None and (with_bbox or iou_type == 'bbox'):
            d['bbox'] = [float(v) for v in dets.bbox[i]]
        if iou_type == 'segm':
            d['segmentation'] = dets.segmentation(i)
        out.append(d)
    return out


def run_lvis_api(lvis_gt, dets: Detections, iou_type: str, img_ids, *, max_dets: int,
                 mask_area: bool = False):
    """Evaluate with lvis-api.

    Args:
        lvis_gt: an ``lvis.LVIS`` object or the annotation file path.
        dets: detections (for AP-fixed: already the per-category top k).
        iou_type: 'bbox' or 'segm'.
        img_ids: image ids to evaluate.
        max_dets: ``LVISResults``' per-image cap; -1 for none (AP-fixed).
        mask_area: segm: leave the boxes out so lvis-api takes areas from the masks.

    Returns:
        tuple: ``(precision, recall, results)`` - LVISEval's arrays and ``get_results()``.
    """
    _allow_np_float()
    from lvis import LVIS, LVISEval, LVISResults
    gt = lvis_gt if isinstance(lvis_gt, LVIS) else LVIS(str(lvis_gt))
    results = LVISResults(gt, as_result_list(dets, iou_type, with_bbox=not mask_area),
                          max_dets=max_dets)
    ev = LVISEval(gt, results, iou_type)
    ev.params.img_ids = [int(i) for i in img_ids]
    ev.params.max_dets = max_dets
    ev.run()
    return ev.eval['precision'], ev.eval['recall'], dict(ev.get_results())
