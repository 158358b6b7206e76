"""The fast backend: lvis-api's evaluation on arrays, touching only non-empty pairs.

lvis-api builds a dict entry, an IoU call and an ``evaluate_img`` call for every (image,
category) pair of the set - about 24 M at LVIS v1 val scale - and loops in Python over each
detection. Here the pairs that hold a ground truth or a detection are found with sorts, the
IoUs are computed only where a pair holds both, the greedy matching runs vectorised over pairs
(:mod:`.matching`), and the precision arrays come out of the same accumulation
(:mod:`.accumulate`). Every number equals lvis-api's; see ``tests/test_lvis_eval.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .accumulate import accumulate, area_out_of_range, freq_groups
from .detections import Detections
from .groundtruth import GroundTruth
from .ious import bbox_iou, segm_iou_blocks, to_rle
from .matching import match_pairs
from .protocol import AREA_RNG, IOU_THRS


@dataclass
class Evaluated:
    """Per-detection outcome of matching, the input of accumulation.

    Attributes:
        cat_ids (np.ndarray): int64 [K] sorted (lvis-api's ``params.cat_ids``).
        det_cat, det_img (np.ndarray): int64 [N] category / image rank of each kept detection.
        det_score (np.ndarray): float64 [N]; ``det_order`` int64 [N] result-file index.
        tp, fp (np.ndarray): bool [A, T, N].
        num_gt (np.ndarray): int64 [K, A] ground truths not ignored.
        freq_groups (list): category indices per frequency group.
    """

    cat_ids: np.ndarray
    det_cat: np.ndarray
    det_img: np.ndarray
    det_score: np.ndarray
    det_order: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    num_gt: np.ndarray
    freq_groups: list


def _keys(groups: list, rows: np.ndarray, cat_sorted: np.ndarray, n_cat: int) -> np.ndarray:
    """Pair keys ``img_rank * n_cat + cat_rank`` of the category sets ``groups[row]``."""
    lens = np.fromiter((len(groups[r]) for r in rows), np.int64, len(rows))
    if not lens.sum():
        return np.zeros(0, np.int64)
    cats = np.fromiter((c for r in rows for c in groups[r]), np.int64, int(lens.sum()))
    imgs = np.repeat(np.arange(len(rows)), lens)
    pos = np.clip(np.searchsorted(cat_sorted, cats), 0, len(cat_sorted) - 1)
    known = cat_sorted[pos] == cats
    return np.unique(imgs[known] * n_cat + pos[known])


def evaluate_fast(gt: GroundTruth, dets: Detections, iou_type: str, img_ids: np.ndarray, *,
                  mask_area: bool = False) -> Evaluated:
    """Match ``dets`` (already capped or top-k selected) against ``gt`` on ``img_ids``.

    Args:
        gt: the ground truth.
        dets: the detections that take part, result-file order.
        iou_type: 'bbox' or 'segm'.
        img_ids: sorted unique image ids to evaluate (all of ``gt`` or a subset).
        mask_area: segm only; area ranges of detections from their masks instead of lvis-api's
            box area (used when the results carry boxes).
    """
    cat_sorted = np.sort(gt.cat_ids)
    n_cat = len(cat_sorted)
    cat_freq = dict(zip(gt.cat_ids.tolist(), gt.cat_freq))
    img_rows = gt.image_rows(img_ids)

    # ground truth of the evaluated images with 0 < area < inf (lvis-api's get_ann_ids)
    g_sel = np.flatnonzero(np.isin(gt.ann_img, img_ids) & (gt.ann_area > 0)
                           & (gt.ann_area < np.inf))
    g_img = np.searchsorted(img_ids, gt.ann_img[g_sel])
    g_cat = np.searchsorted(cat_sorted, gt.ann_cat[g_sel])
    g_key = g_img * n_cat + g_cat
    g_perm = np.argsort(g_key, kind='stable')  # pair by pair, file order inside
    g_sel, g_key, g_cat = g_sel[g_perm], g_key[g_perm], g_cat[g_perm]
    g_ig = gt.ann_ignore[g_sel][None, :] | area_out_of_range(gt.ann_area[g_sel])  # [A, G]
    num_gt = np.zeros((n_cat, len(AREA_RNG)), np.int64)
    for a in range(len(AREA_RNG)):
        num_gt[:, a] = np.bincount(g_cat[~g_ig[a]], minlength=n_cat)

    # detection areas: lvis-api takes w * h of the result's box when it has one
    if iou_type == 'bbox' or (dets.bbox is not None and not mask_area):
        d_area = dets.bbox[:, 2] * dets.bbox[:, 3]
    else:
        d_area = _mask_areas(gt, dets)
    d_sel = np.isin(dets.image_id, img_ids) & (d_area > 0) & (d_area < np.inf)
    d_idx = np.flatnonzero(d_sel)
    d_img = np.searchsorted(img_ids, dets.image_id[d_idx])
    d_cat = np.searchsorted(cat_sorted, dets.category_id[d_idx])
    d_key = d_img * n_cat + d_cat
    # federated filter: keep a detection if its category is verified present or absent
    neg_keys = _keys(gt.neg, img_rows, cat_sorted, n_cat)
    keep = np.isin(d_key, g_key) | np.isin(d_key, neg_keys)
    d_idx, d_img, d_cat, d_key = d_idx[keep], d_img[keep], d_cat[keep], d_key[keep]
    d_score = dets.score[d_idx]
    d_perm = np.lexsort((d_idx, -d_score, d_key))  # pair by pair, score order inside
    d_idx, d_img, d_cat, d_key, d_score = (x[d_perm] for x in (d_idx, d_img, d_cat, d_key,
                                                                d_score))
    d_nel = np.isin(d_key, _keys(gt.nel, img_rows, cat_sorted, n_cat))

    # pairs holding both a detection and a ground truth
    d_pairs, d_first, d_count = np.unique(d_key, return_index=True, return_counts=True)
    g_pairs, g_first, g_count = np.unique(g_key, return_index=True, return_counts=True)
    both, di, gi = np.intersect1d(d_pairs, g_pairs, assume_unique=True, return_indices=True)
    nd, ng = d_count[di], g_count[gi]
    ds, gs = d_first[di], g_first[gi]
    det_rows = _ranges(ds, nd)  # rows of d_* in matched pairs, pair by pair
    gt_rows = _ranges(gs, ng)
    if iou_type == 'bbox':
        owner = np.repeat(np.arange(len(both)), nd * ng)
        local = np.arange(int((nd * ng).sum())) - np.repeat(np.r_[0, np.cumsum(nd * ng)[:-1]],
                                                            nd * ng)
        dr = ds[owner] + local // ng[owner]
        gr = gs[owner] + local % ng[owner]
        iou = bbox_iou(dets.bbox[d_idx[dr]], gt.ann_bbox[g_sel[gr]])
    else:
        dt_rles = [_det_rle(gt, dets, int(i)) for i in d_idx[det_rows]]
        gt_rles = [_gt_rle(gt, int(k)) for k in g_sel[gt_rows]]
        iou = segm_iou_blocks(dt_rles, gt_rles, np.r_[0, np.cumsum(nd)[:-1]], nd,
                              np.r_[0, np.cumsum(ng)[:-1]], ng)
    thrs = np.minimum(IOU_THRS, 1 - 1e-10)
    m, ig = match_pairs(iou, nd, ng, g_ig[:, gt_rows], gt.ann_ids[g_sel[gt_rows]] == 0, thrs)
    a_n, t_n = len(AREA_RNG), len(thrs)
    matched = np.zeros((a_n, t_n, len(d_idx)), bool)
    ignored = np.zeros((a_n, t_n, len(d_idx)), bool)
    matched[:, :, det_rows] = m.transpose(1, 2, 0)
    ignored[:, :, det_rows] = ig.transpose(1, 2, 0)
    # unmatched detections outside the area range or of a not-exhaustive category are ignored
    d_mask = area_out_of_range(d_area[d_idx]) | d_nel[None, :]  # [A, N]
    ignored |= ~matched & d_mask[:, None, :]
    tp = matched & ~ignored
    fp = ~matched & ~ignored
    freq = [cat_freq[int(c)] for c in cat_sorted]
    return Evaluated(cat_sorted, d_cat, d_img, d_score, d_idx, tp, fp, num_gt,
                     freq_groups(freq))


def _ranges(start: np.ndarray, count: np.ndarray) -> np.ndarray:
    total = int(count.sum())
    if not total:
        return np.zeros(0, np.int64)
    offs = np.arange(total) - np.repeat(np.r_[0, np.cumsum(count)[:-1]], count)
    return np.repeat(start, count) + offs


def _det_rle(gt: GroundTruth, dets: Detections, i: int):
    row = gt.image_rows(dets.image_id[i:i + 1])[0]
    return to_rle(dets.segmentation(i), int(gt.heights[row]), int(gt.widths[row]))


def _gt_rle(gt: GroundTruth, k: int):
    row = gt.image_rows(gt.ann_img[k:k + 1])[0]
    return to_rle(gt.segmentation(k), int(gt.heights[row]), int(gt.widths[row]))


def _mask_areas(gt: GroundTruth, dets: Detections) -> np.ndarray:
    from pycocotools import mask as mask_utils
    rles = [_det_rle(gt, dets, i) for i in range(len(dets))]
    # pycocotools' area() sizes a scratch array as uint8(n): it fails above 255 RLEs per call
    # under numpy 2, so call it in chunks
    parts = [np.asarray(mask_utils.area(rles[i:i + 255]), np.float64).reshape(-1)
             for i in range(0, len(rles), 255)]
    return np.concatenate(parts) if parts else np.zeros(0)


def precision_per_category(ev: Evaluated) -> tuple[np.ndarray, np.ndarray]:
    """lvis-api's precision [T, R, K, A] and recall [T, K, A] per category."""
    order = np.lexsort((ev.det_order, ev.det_img, -ev.det_score, ev.det_cat))
    counts = np.bincount(ev.det_cat, minlength=len(ev.cat_ids))
    start = np.r_[0, np.cumsum(counts)]
    return accumulate(start, ev.tp[:, :, order], ev.fp[:, :, order], ev.num_gt)


def precision_per_pool(ev: Evaluated, pools: list) -> tuple[np.ndarray, np.ndarray]:
    """AP-pool (Dave et al. 2021): each pool of categories accumulated as one category.

    Detections of a pool are ranked by score, ties by image, category and file order (the
    order of ``LVISPooledEval``'s concatenation); only the area range 'all' is evaluated.

    Args:
        pools: lists of category indices (into ``ev.cat_ids``).

    Returns:
        tuple: precision [T, R, P, 1] and recall [T, P, 1].
    """
    sel, start, num_gt = [], [0], []
    for cats in pools:
        idx = np.flatnonzero(np.isin(ev.det_cat, cats))
        order = np.lexsort((ev.det_order[idx], ev.det_cat[idx], ev.det_img[idx],
                            -ev.det_score[idx]))
        sel.append(idx[order])
        start.append(start[-1] + len(idx))
        num_gt.append(ev.num_gt[cats, :1].sum(0))
    idx = np.concatenate(sel) if sel else np.zeros(0, np.int64)
    return accumulate(np.asarray(start), ev.tp[:1][:, :, idx], ev.fp[:1][:, :, idx],
                      np.asarray(num_gt, np.int64).reshape(len(pools), 1))
