"""lvis-api's greedy matching (``LVISEval.evaluate_img``), run for many pairs at once.

For one (image, category) pair, area range and IoU threshold t, lvis-api visits the detections
by decreasing score (ties: result-file order) and gives each the ground truth that, among those
not matched yet, has the highest IoU >= min(t, 1 - 1e-10) - preferring ground truths inside the
area range (``_ignore == 0``) over the others, and the last one in file order among equal IoUs.
Here the same rule runs on padded blocks of pairs of similar size: one numpy step per detection
rank updates every pair, area range and threshold together.
"""
from __future__ import annotations

import numpy as np

#: at most this many pairs, and this many IoU cells, per padded block
_CHUNK = 8192
_CELLS = 2_000_000


def _last_argmax(v: np.ndarray) -> np.ndarray:
    g = v.shape[-1]
    return g - 1 - np.argmax(v[..., ::-1], axis=-1)


def match_block(iou: np.ndarray, nd: np.ndarray, gt_ig: np.ndarray, gt_zero_id: np.ndarray,
                thrs: np.ndarray):
    """Match a block of pairs, sorted by decreasing detection count.

    Args:
        iou: float64 [P, D, G], -inf where a detection or ground truth does not exist.
        nd: int [P] detections per pair (non-increasing).
        gt_ig: bool [P, A, G] ground truth outside the area range (or flagged ``ignore``).
        gt_zero_id: bool [P, G] ground truth whose id is 0 (lvis-api then records no match).
        thrs: float64 [T] effective thresholds ``min(t, 1 - 1e-10)``.

    Returns:
        tuple: ``matched`` bool [P, D, A, T] (lvis-api's ``dt_m != 0``) and ``ignored`` bool
        [P, D, A, T] (the matched ground truth is ignored).
    """
    p_all, d_max, g_max = iou.shape
    a_n, t_n = gt_ig.shape[1], len(thrs)
    gt_taken = np.zeros((p_all, a_n, t_n, g_max), bool)
    matched = np.zeros((p_all, d_max, a_n, t_n), bool)
    ignored = np.zeros((p_all, d_max, a_n, t_n), bool)
    ig = gt_ig[:, :, None, :]
    for r in range(d_max):
        k = int(np.count_nonzero(nd > r))
        if k == 0:
            break
        row = iou[:k, r][:, None, None, :]                        # [k, 1, 1, G]
        cand = (row >= thrs[None, None, :, None]) & ~gt_taken[:k]  # [k, A, T, G]
        reg = np.where(cand & ~ig[:k], row, -np.inf)
        alt = np.where(cand & ig[:k], row, -np.inf)
        has_reg = reg.max(-1) > -np.inf
        has_alt = alt.max(-1) > -np.inf
        m = np.where(has_reg, _last_argmax(reg), _last_argmax(alt))  # [k, A, T]
        has = has_reg | has_alt
        pk, ak, tk = np.nonzero(has)
        mk = m[pk, ak, tk]
        gt_taken[pk, ak, tk, mk] = True
        matched[pk, r, ak, tk] = ~gt_zero_id[pk, mk]
        ignored[pk, r, ak, tk] = gt_ig[pk, ak, mk]
    return matched, ignored


def match_pairs(iou_flat: np.ndarray, nd: np.ndarray, ng: np.ndarray, gt_ig: np.ndarray,
                gt_zero_id: np.ndarray, thrs: np.ndarray):
    """Match every pair.

    Args:
        iou_flat: float64 [sum(nd * ng)] each pair's [nd, ng] block, row-major, pair by pair.
        nd, ng: int [P] detections / ground truths per pair (both >= 1).
        gt_ig: bool [A, sum(ng)] per ground truth (pair by pair, file order inside a pair).
        gt_zero_id: bool [sum(ng)].
        thrs: float64 [T].

    Returns:
        tuple: ``matched``, ``ignored``: bool [sum(nd), A, T] per detection (pair by pair,
        score order inside a pair).
    """
    a_n, t_n = gt_ig.shape[0], len(thrs)
    n_det = int(nd.sum())
    matched = np.zeros((n_det, a_n, t_n), bool)
    ignored = np.zeros((n_det, a_n, t_n), bool)
    if not len(nd):
        return matched, ignored
    det_start = np.r_[0, np.cumsum(nd)[:-1]]
    gt_start = np.r_[0, np.cumsum(ng)[:-1]]
    iou_start = np.r_[0, np.cumsum(nd * ng)[:-1]]
    # blocks of similar size: ceil to powers of two
    d_bin = np.ceil(np.log2(nd)).astype(np.int64)
    g_bin = np.ceil(np.log2(ng)).astype(np.int64)
    for key in np.unique(d_bin * 64 + g_bin):
        sel = np.flatnonzero(d_bin * 64 + g_bin == key)
        sel = sel[np.argsort(-nd[sel], kind='stable')]
        size = max(1, min(_CHUNK, _CELLS // int(nd[sel].max() * ng[sel].max())))
        for c0 in range(0, len(sel), size):
            ps = sel[c0:c0 + size]
            _match_chunk(ps, iou_flat, nd, ng, det_start, gt_start, iou_start, gt_ig,
                         gt_zero_id, thrs, matched, ignored)
    return matched, ignored


def _match_chunk(ps, iou_flat, nd, ng, det_start, gt_start, iou_start, gt_ig, gt_zero_id,
                 thrs, matched_out, ignored_out):
    p_n = len(ps)
    d_max, g_max = int(nd[ps].max()), int(ng[ps].max())
    a_n = gt_ig.shape[0]
    # scatter the flat IoU blocks into [P, D, G]
    sizes = nd[ps] * ng[ps]
    owner = np.repeat(np.arange(p_n), sizes)
    local = np.arange(int(sizes.sum())) - np.repeat(np.r_[0, np.cumsum(sizes)[:-1]], sizes)
    ngo = ng[ps][owner]
    iou = np.full((p_n, d_max, g_max), -np.inf)
    iou[owner, local // ngo, local % ngo] = iou_flat[iou_start[ps][owner] + local]
    # ground-truth flags, padded
    g_owner = np.repeat(np.arange(p_n), ng[ps])
    g_local = np.arange(int(ng[ps].sum())) - np.repeat(np.r_[0, np.cumsum(ng[ps])[:-1]], ng[ps])
    g_rows = gt_start[ps][g_owner] + g_local
    ig = np.zeros((p_n, a_n, g_max), bool)
    ig[g_owner, :, g_local] = gt_ig[:, g_rows].T
    zero = np.zeros((p_n, g_max), bool)
    zero[g_owner, g_local] = gt_zero_id[g_rows]
    m, i = match_block(iou, nd[ps], ig, zero, thrs)
    d_owner = np.repeat(np.arange(p_n), nd[ps])
    d_local = np.arange(int(nd[ps].sum())) - np.repeat(np.r_[0, np.cumsum(nd[ps])[:-1]], nd[ps])
    rows = det_start[ps][d_owner] + d_local
    matched_out[rows] = m[d_owner, d_local]
    ignored_out[rows] = i[d_owner, d_local]
