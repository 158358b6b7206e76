"""Per-category AP (bbox and segm) from a detection result file, via lvis' LVISEval.

    python analysis/per_class_ap.py RESULTS --ann lvis_v1_val.json [--out per_class_ap.json]

RESULTS is the LVIS-format json that mmdet's LVISMetric writes with ``outfile_prefix``
(``<prefix>.bbox.json`` / ``<prefix>.segm.json``: give either, the other is found beside it)
or the results pickle of ``tools/test.py --out results.pkl``. The per-category AP is read from
LVISEval's precision array exactly as LVISEval averages it, so the mean over categories is the
AP that LVISMetric reports.
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analysis.errors import AnalysisError  # noqa: E402
from analysis.frequency import load_categories  # noqa: E402

IOU_TYPES = ('bbox', 'segm')


def _load_json_results(path: Path) -> dict:
    stem = str(path)
    for t in IOU_TYPES:
        if stem.endswith(f'.{t}.json'):
            stem = stem[:-len(f'.{t}.json')]
    out = {}
    for t in IOU_TYPES:
        p = Path(f'{stem}.{t}.json')
        if p.is_file():
            out[t] = _read_json(p)
    if not out:
        out['bbox'] = _read_json(path)  # a single json of unknown type: treat as bbox
    return out


def _read_json(path: Path) -> list:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise AnalysisError(f'{path}: unreadable result file ({err})') from None
    if not isinstance(data, list):
        raise AnalysisError(f'{path}: expected a list of detections, got {type(data).__name__}')
    return data


def _load_pickle_results(path: Path, cat_ids: list) -> dict:
    # tools/test.py --out writes mmdet DetDataSample dicts (plain python/numpy/tensor data)
    try:
        import torch  # noqa: F401  (tensors inside the pickle)
        with open(path, 'rb') as f:
            samples = pickle.load(f)  # noqa: S301 - user's own result file, like mmdet does
    except Exception as err:
        raise AnalysisError(f'{path}: unreadable result file ({err})') from None
    out = {'bbox': [], 'segm': []}
    for s in samples:
        pred = s['pred_instances']
        boxes, scores, labels = (np.asarray(pred[k]) for k in ('bboxes', 'scores', 'labels'))
        masks = pred.get('masks')
        for i in range(len(scores)):
            x0, y0, x1, y1 = (float(v) for v in boxes[i])
            det = dict(image_id=int(s['img_id']), category_id=int(cat_ids[int(labels[i])]),
                       score=float(scores[i]))
            out['bbox'].append(dict(det, bbox=[x0, y0, x1 - x0, y1 - y0]))
            if masks is not None:
                rle = dict(masks[i])
                if isinstance(rle['counts'], bytes):
                    rle['counts'] = rle['counts'].decode()
                out['segm'].append(dict(det, segmentation=rle))
    return {k: v for k, v in out.items() if v}


def load_results(path: str | Path, cat_ids: list) -> dict:
    """Detections per IoU type, LVIS json format: ``{'bbox': [...], 'segm': [...]}``."""
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f'result file not found: {path}')
    if path.suffix in ('.pkl', '.pickle'):
        return _load_pickle_results(path, cat_ids)
    return _load_json_results(path)


def per_class_ap(ann_file: str | Path, results: dict, max_dets: int = 300,
                 cats: dict | None = None) -> dict:
    """Per-category AP with LVISEval.

    Returns:
        dict: ``{'categories': {cat_id: {name, frequency, ap_bbox, ap_segm}},
        'summary': {iou_type: LVISEval's results dict}}``; AP is NaN where LVISEval has no
        valid entry (category absent from the evaluated images).
    """
    from lvis import LVIS, LVISEval, LVISResults

    from projects.c2am import compat  # lvis' np.float  # noqa: F401
    cats = cats or load_categories(ann_file)  # the caller's, if it parsed the file already
    gt = LVIS(str(ann_file))
    per_cat = {cid: dict(name=n, frequency=str(f))
               for cid, n, f in zip(cats['ids'], cats['names'], cats['frequency'])}
    summary = {}
    for iou_type, dets in results.items():
        if not dets:
            continue
        ev = LVISEval(gt, LVISResults(gt, dets, max_dets=max_dets), iou_type)
        ev.run()
        summary[iou_type] = {k: float(v) for k, v in ev.get_results().items()}
        # precision: [T iou, R recall, K categories, A area]; LVISEval averages the entries
        # > -1 of area 'all' (index 0) - do exactly that per category.
        prec = ev.eval['precision'][:, :, :, 0]
        for k, cid in enumerate(ev.params.cat_ids):
            p = prec[:, :, k]
            valid = p[p > -1]
            per_cat[cid][f'ap_{iou_type}'] = float(valid.mean()) if valid.size else float('nan')
    return dict(categories=per_cat, summary=summary)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('results', type=Path, help='LVIS-format result json or tools/test.py pkl')
    p.add_argument('--ann', type=Path, required=True, help='ground-truth LVIS json')
    p.add_argument('--out', type=Path, default=Path('per_class_ap.json'))
    p.add_argument('--force', action='store_true', help='overwrite --out')
    args = p.parse_args(argv)
    try:
        if args.out.exists() and not args.force:
            raise AnalysisError(f'{args.out} exists; pass --force to overwrite it')
        if not args.ann.is_file():
            raise AnalysisError(f'annotation file not found: {args.ann}')
        cats = load_categories(args.ann)
        out = per_class_ap(args.ann, load_results(args.results, cats['ids']), cats=cats)
    except AnalysisError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    for t, s in out['summary'].items():
        print(f"{t}: AP {s['AP']:.4f}  APr {s['APr']:.4f}  APc {s['APc']:.4f}  "
              f"APf {s['APf']:.4f}")
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
