"""Which detections take part: lvis-api's per-image cap, or AP-fixed's per-category top k.

Both keep the highest scores and break ties by result-file order, as Python's stable
``sorted(..., reverse=True)`` does in lvis-api (``LVISResults.limit_dets_per_image``) and in
Dave et al.'s ``evaluate_ap_fixed.py``.
"""
from __future__ import annotations

import numpy as np


def top_k_per_group(group: np.ndarray, score: np.ndarray, k: int) -> np.ndarray:
    """Indices (ascending) of the ``k`` best-scored entries of each group.

    Args:
        group: int [N] group key (image id or category id).
        score: float [N].
        k: entries kept per group; ``k < 0`` keeps everything.

    Returns:
        np.ndarray: int64 indices into the inputs, in their original order.
    """
    n = len(score)
    if k < 0:
        return np.arange(n)
    order = np.lexsort((np.arange(n), -score, group))  # group, then score desc, then index
    g = group[order]
    start = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    counts = np.diff(np.r_[start, n])
    rank = np.arange(n) - np.repeat(start, counts)
    return np.sort(order[rank < k])


def cap_per_image(image_id: np.ndarray, score: np.ndarray, max_dets: int) -> np.ndarray:
    """lvis-api's cap: the top ``max_dets`` detections of each image (all categories)."""
    return top_k_per_group(image_id, score, max_dets)


def top_k_per_category(category_id: np.ndarray, score: np.ndarray, k: int) -> np.ndarray:
    """AP-fixed's selection: the top ``k`` detections of each category over the whole set."""
    return top_k_per_group(category_id, score, k)
