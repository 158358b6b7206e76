"""Precision / recall per category (or per pool of categories) and lvis-api's summaries.

Mirrors ``LVISEval.accumulate`` and ``LVISEval._summarize``: the same cumulative sums, the same
float64 expressions in the same order, the same right-to-left maximum and recall sampling, so
the precision array and every mean over it are identical to lvis-api's.
"""
from __future__ import annotations

import numpy as np

from .protocol import AREA_LBL, AREA_RNG, FREQ_LBL, IOU_THRS, REC_THRS


def accumulate(group_start: np.ndarray, tp: np.ndarray, fp: np.ndarray,
               num_gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall of K groups of detections.

    Args:
        group_start: int [K + 1] detections ``group_start[k]:group_start[k+1]`` belong to group
            k, already in lvis-api's order (decreasing score, then image, then file order).
        tp, fp: bool [A, T, N] true / false positives (not ignored) per detection.
        num_gt: int [K, A] ground truths not ignored; 0 leaves the entry at -1.

    Returns:
        tuple: ``precision`` float64 [T, R, K, A] and ``recall`` float64 [T, K, A], -1 where
        undefined (lvis-api's layout).
    """
    a_n, t_n = tp.shape[0], tp.shape[1]
    k_n, r_n = len(group_start) - 1, len(REC_THRS)
    precision = -np.ones((t_n, r_n, k_n, a_n))
    recall = -np.ones((t_n, k_n, a_n))
    for k in range(k_n):
        s, e = int(group_start[k]), int(group_start[k + 1])
        n = e - s
        for a in range(a_n):
            gts = num_gt[k, a]
            if gts == 0:
                continue
            tp_sum = np.cumsum(tp[a, :, s:e], axis=1).astype(np.float64)
            fp_sum = np.cumsum(fp[a, :, s:e], axis=1).astype(np.float64)
            if n == 0:
                recall[:, k, a] = 0
                precision[:, :, k, a] = 0.0
                continue
            rc = tp_sum / gts
            recall[:, k, a] = rc[:, -1]
            pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
            pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
            for t in range(t_n):
                idx = np.searchsorted(rc[t], REC_THRS, side='left')
                q = np.zeros(r_n)
                ok = idx < n
                q[ok] = pr[t, idx[ok]]
                precision[t, :, k, a] = q
    return precision, recall


def _mean_valid(s: np.ndarray) -> float:
    valid = s[s > -1]
    return -1 if len(valid) == 0 else np.mean(valid)


def summarize(precision: np.ndarray, recall: np.ndarray, freq_groups: list,
              max_dets: int) -> dict:
    """lvis-api's ``results`` dict (AP, AP50, AP75, APs/m/l, APr/c/f, AR@max_dets, ARs/m/l).

    Args:
        precision, recall: from :func:`accumulate`, all four area ranges.
        freq_groups: three lists of category indices (r, c, f).
        max_dets: the per-image cap, only for the AR key names (lvis-api's ``params.max_dets``).
    """
    def ap(iou_thr=None, area='all', group=None):
        aidx = [i for i, lbl in enumerate(AREA_LBL) if lbl == area]
        s = precision
        if iou_thr is not None:
            s = s[np.where(iou_thr == IOU_THRS)[0]]
        s = s[:, :, freq_groups[group], aidx] if group is not None else s[:, :, :, aidx]
        return _mean_valid(s)

    def ar(area='all'):
        aidx = [i for i, lbl in enumerate(AREA_LBL) if lbl == area]
        return _mean_valid(recall[:, :, aidx])

    out = {'AP': ap(), 'AP50': ap(iou_thr=0.50), 'AP75': ap(iou_thr=0.75),
           'APs': ap(area='small'), 'APm': ap(area='medium'), 'APl': ap(area='large'),
           'APr': ap(group=0), 'APc': ap(group=1), 'APf': ap(group=2),
           f'AR@{max_dets}': ar()}
    for area in ('small', 'medium', 'large'):
        out[f'AR{area[0]}@{max_dets}'] = ar(area)
    return {k: float(v) for k, v in out.items()}


def per_category_ap(precision: np.ndarray) -> np.ndarray:
    """AP of each category: mean of its precision entries > -1 (area 'all'), NaN if none.

    Returns:
        np.ndarray: float64 [K].
    """
    out = np.full(precision.shape[2], np.nan)
    for k in range(precision.shape[2]):
        p = precision[:, :, k, 0]
        valid = p[p > -1]
        if valid.size:
            out[k] = valid.mean()
    return out


def freq_groups(frequencies: list) -> list:
    """Category indices per frequency group, lvis-api's ``_prepare_freq_group``."""
    groups = [[] for _ in FREQ_LBL]
    for k, f in enumerate(frequencies):
        groups[FREQ_LBL.index(f)].append(k)
    return groups


def area_out_of_range(area: np.ndarray) -> np.ndarray:
    """bool [A, N]: ``area < lo or area > hi`` per area range (lvis-api's ignore test)."""
    return np.stack([(area < lo) | (area > hi) for lo, hi in AREA_RNG])
