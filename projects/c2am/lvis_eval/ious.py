"""IoU of each (detection, ground truth) combination inside an (image, category) pair.

Boxes: vectorised numpy that performs pycocotools' ``bbIou`` float64 operations in the same
order, so every IoU is bit-identical to lvis-api's. Masks: pycocotools' own ``iou`` on RLEs,
converted exactly as ``LVIS.ann_to_rle`` converts them, one call per pair (only pairs with both
a detection and a ground truth).
"""
from __future__ import annotations

import numpy as np


def bbox_iou(dt: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Elementwise IoU of boxes ``dt[i]`` and ``gt[i]`` (x, y, w, h; float64 [M, 4])."""
    da = dt[:, 2] * dt[:, 3]
    ga = gt[:, 2] * gt[:, 3]
    w = np.minimum(dt[:, 2] + dt[:, 0], gt[:, 2] + gt[:, 0]) - np.maximum(dt[:, 0], gt[:, 0])
    h = np.minimum(dt[:, 3] + dt[:, 1], gt[:, 3] + gt[:, 1]) - np.maximum(dt[:, 1], gt[:, 1])
    inter = w * h
    with np.errstate(divide='ignore', invalid='ignore'):
        out = inter / (da + ga - inter)
    return np.where((w > 0) & (h > 0), out, 0.0)


def to_rle(segm, height: int, width: int):
    """A mask as a compressed RLE, as ``LVIS.ann_to_rle`` converts polygons and raw RLEs."""
    from pycocotools import mask as mask_utils
    if isinstance(segm, list):
        return mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
    if isinstance(segm.get('counts'), list):
        return mask_utils.frPyObjects(segm, height, width)
    return segm


def segm_iou_blocks(dt_rles: list, gt_rles: list, det_start: np.ndarray, det_count: np.ndarray,
                    gt_start: np.ndarray, gt_count: np.ndarray) -> np.ndarray:
    """Mask IoUs of every pair's block [nd, ng], flattened pair by pair, row-major.

    Args:
        dt_rles, gt_rles: RLEs in pair order (rows ``start:start+count`` belong to one pair).
        det_start, det_count, gt_start, gt_count: int [P] per pair.

    Returns:
        np.ndarray: float64 [sum(nd * ng)].
    """
    from pycocotools import mask as mask_utils
    out = []
    for ds, dn, gs, gn in zip(det_start.tolist(), det_count.tolist(), gt_start.tolist(),
                              gt_count.tolist()):
        out.append(np.asarray(mask_utils.iou(dt_rles[ds:ds + dn], gt_rles[gs:gs + gn],
                                             [0] * gn), np.float64).reshape(-1))
    return np.concatenate(out) if out else np.zeros(0)
