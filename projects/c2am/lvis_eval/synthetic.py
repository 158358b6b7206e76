"""Generated LVIS-format ground truth and detections (tests and benchmarks).

A case has the features the evaluation must get right: r/c/f categories with non-contiguous
ids in shuffled file order, ``neg_category_ids`` and ``not_exhaustive_category_ids``, images
with more detections than the per-image cap, tied scores, categories without ground truth,
zero-area boxes, polygon ground-truth masks and RLE detection masks.
"""
from __future__ import annotations

import numpy as np


def make_case(n_images: int = 40, n_cats: int = 30, dets_per_image: int = 40, *,
              over_cap: int = 0, segm: bool = False, seed: int = 0, gt_per_image: float = 4.0,
              tie_frac: float = 0.3, max_side: int = 160) -> tuple[dict, list]:
    """One generated case.

    Args:
        n_images, n_cats: set size.
        dets_per_image: detections per image (typical).
        over_cap: this many images get ``dets_per_image + 30`` detections (use it with
            ``dets_per_image`` near the cap to exercise it).
        segm: add polygons to the ground truth and RLE masks to the detections.
        seed: random seed.
        gt_per_image: mean ground truths per image.
        tie_frac: fraction of detections whose score is rounded to 2 decimals (ties).
        max_side: largest image side in pixels.

    Returns:
        tuple: (LVIS dataset dict, list of LVIS result dicts).
    """
    rng = np.random.default_rng(seed)
    cat_ids = rng.permutation(np.arange(1, 3 * n_cats + 1))[:n_cats]  # gaps, shuffled
    freq = rng.choice(['r', 'c', 'f'], n_cats, p=[0.28, 0.38, 0.34])
    cats = [dict(id=int(c), name=f'cat{c}', frequency=str(f), synset=f'cat{c}.n.01')
            for c, f in zip(cat_ids, freq)]
    weights = np.where(freq == 'f', 8.0, np.where(freq == 'c', 2.0, 0.4))
    weights /= weights.sum()
    img_ids = rng.choice(np.arange(1, 10 * n_images + 1), n_images, replace=False)
    images, anns, dets = [], [], []
    ann_id = 1
    for k, img in enumerate(img_ids.tolist()):
        h, w = (int(v) for v in rng.integers(max_side // 2, max_side + 1, 2))
        n_gt = int(rng.poisson(gt_per_image))
        g_cat = rng.choice(cat_ids, n_gt, p=weights)
        g_box = _boxes(rng, n_gt, h, w)
        if n_gt and k % 5 == 1:
            g_box[0, 2] = 0.0  # a degenerate box, area 0: lvis-api drops it
        for c, b in zip(g_cat.tolist(), g_box):
            area = float(b[2] * b[3])
            ann = dict(id=ann_id, image_id=img, category_id=int(c), bbox=[float(v) for v in b],
                       area=area)
            if segm:
                ann['segmentation'] = [_polygon(rng, b)]
            anns.append(ann)
            ann_id += 1
        present = set(g_cat.tolist())
        absent = [int(c) for c in cat_ids if c not in present]
        neg = rng.choice(absent, min(len(absent), int(rng.integers(0, 6))), replace=False)
        nel = [c for c in present if rng.random() < 0.2]
        images.append(dict(id=img, height=h, width=w, neg_category_ids=sorted(neg.tolist()),
                           not_exhaustive_category_ids=sorted(nel),
                           file_name=f'{img:012d}.jpg'))
        n_det = dets_per_image + (30 if k < over_cap else 0)
        dets.extend(_detections(rng, img, h, w, n_det, g_box, g_cat, neg, cat_ids, tie_frac,
                                segm, zero_area=k % 5 == 0))
    order = rng.permutation(len(dets))  # images interleaved in the result file
    dets = [dets[i] for i in order]
    gt = dict(images=images, annotations=anns, categories=cats,
              info=dict(description='generated LVIS-format case'), licenses=[])
    return gt, dets


def _boxes(rng, n, h, w) -> np.ndarray:
    bw = rng.uniform(2, w * 0.8, n)
    bh = rng.uniform(2, h * 0.8, n)
    x = rng.uniform(0, w - bw)
    y = rng.uniform(0, h - bh)
    return np.round(np.stack([x, y, bw, bh], 1), 2)


def _polygon(rng, b) -> list:
    x, y, bw, bh = b
    jit = rng.uniform(0, 0.15, 8)
    pts = [x + bw * jit[0], y, x + bw, y + bh * jit[1], x + bw * (1 - jit[2]), y + bh,
           x, y + bh * (1 - jit[3])]
    return [float(round(v, 2)) for v in pts]


def _detections(rng, img, h, w, n, g_box, g_cat, neg, cat_ids, tie_frac, segm, *,
                zero_area) -> list:
    n_true = min(n // 2, 3 * len(g_box))
    src = rng.integers(0, len(g_box), n_true) if len(g_box) else np.zeros(0, np.int64)
    box_t = g_box[src] + rng.normal(0, 0.08, (n_true, 4)) * np.repeat(g_box[src][:, 2:], 2, 1)
    cat_t = g_cat[src].copy() if len(g_box) else np.zeros(0, np.int64)
    flip = rng.random(n_true) < 0.2  # right place, wrong class
    cat_t[flip] = rng.choice(cat_ids, int(flip.sum()))
    n_neg = min(n - n_true, 8 * len(neg)) if len(neg) else 0
    cat_n = rng.choice(neg, n_neg) if n_neg else np.zeros(0, np.int64)
    n_rest = n - n_true - n_neg
    cat_r = rng.choice(cat_ids, n_rest)
    box = np.concatenate([box_t, _boxes(rng, n_neg + n_rest, h, w)])
    box[:, 2:] = np.maximum(box[:, 2:], 0.5)
    box[:, 0] = np.clip(box[:, 0], 0, w - box[:, 2])
    box[:, 1] = np.clip(box[:, 1], 0, h - box[:, 3])
    box = np.round(box, 2)
    if n and zero_area:
        box[-1, 3] = 0.0  # zero-area detection
    cat = np.concatenate([cat_t, cat_n, cat_r])
    score = rng.beta(1.2, 3.0, n)
    score[: n_true] += 0.25
    score = np.clip(score, 1e-4, 1.0)
    ties = rng.random(n) < tie_frac
    score[ties] = np.round(score[ties], 2)
    out = [dict(image_id=img, category_id=int(c), bbox=[float(v) for v in b], score=float(s))
           for c, b, s in zip(cat.tolist(), box, score.tolist())]
    if segm and n:
        from pycocotools import mask as mask_utils
        rles = mask_utils.frPyObjects(box, h, w)
        for d, r in zip(out, rles):
            d['segmentation'] = dict(size=[int(v) for v in r['size']],
                                     counts=r['counts'].decode())
    return out
