"""Per-category AP (bbox and segm) from a detection result file, as lvis-api averages it.

    python analysis/per_class_ap.py RESULTS --ann lvis_v1_val.json [--out per_class_ap.json]
        [--backend fast|lvis] [--fixed]

RESULTS is the LVIS-format json that mmdet's LVISMetric writes with ``outfile_prefix``
(``<prefix>.bbox.json`` / ``<prefix>.segm.json``: give either, the other is found beside it)
or the results pickle of ``tools/test.py --out results.pkl`` (read with the restricted
unpickler: plain data only). A category's AP is the mean of its valid precision entries, so
the mean over categories is the AP that lvis-api reports; the evaluation is the one of
``analysis/lvis_eval.py`` (:mod:`projects.c2am.lvis_eval`). Categories without a valid entry
(absent from the evaluated images) get ``null``.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from projects.c2am.cli import existing_file, run_cli  # noqa: E402
from projects.c2am.lvis_eval import BACKENDS, evaluate, load_groundtruth  # noqa: E402
from projects.c2am.lvis_eval.results_file import load_results, pick_iou_types  # noqa: E402
from projects.c2am.outputs import check_output_files, dumps_json, write_atomic  # noqa: E402


def per_class_ap(ann_file: str | Path, results: str | Path, *, backend: str = 'fast',
                 fixed: bool = False) -> dict:
    """Per-category AP of every IoU type the results hold.

    Returns:
        dict: ``{'categories': {cat_id: {name, frequency, ap_bbox, ap_segm}},
        'summary': {iou_type: lvis-api's results dict}}``; AP is ``None`` where lvis-api has no
        valid entry.
    """
    gt = load_groundtruth(ann_file)
    available = load_results(results, gt)
    per_cat = {int(c): dict(name=n, frequency=f)
               for c, n, f in zip(gt.cat_ids.tolist(), gt.cat_names, gt.cat_freq)}
    summary = {}
    for iou_type in pick_iou_types(available, None):
        res = evaluate(gt, available[iou_type], iou_type, backend=backend, fixed=fixed,
                       lvis_gt=ann_file)
        summary[iou_type] = {k: (None if v == -1 else v) for k, v in res.metrics.items()}
        for cid, ap in res.per_category.items():
            per_cat[cid][f'ap_{iou_type}'] = None if math.isnan(ap) else ap
    return dict(categories=per_cat, summary=summary)


def _main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('results', type=Path, help='LVIS-format result json or tools/test.py pkl')
    p.add_argument('--ann', type=existing_file, required=True, help='ground-truth LVIS json')
    p.add_argument('--out', type=Path, default=Path('per_class_ap.json'))
    p.add_argument('--force', action='store_true', help='overwrite --out')
    p.add_argument('--backend', choices=BACKENDS, default='fast',
                   help='fast (default) or lvis (lvis-api itself)')
    p.add_argument('--fixed', action='store_true', help='AP-fixed protocol (Dave et al. 2021)')
    args = p.parse_args(argv)
    check_output_files([args.out], force=args.force)
    out = per_class_ap(args.ann, args.results, backend=args.backend, fixed=args.fixed)
    write_atomic(args.out, dumps_json(out, indent=1))
    for t, s in out['summary'].items():
        print(t + ': ' + '  '.join(f'{k} {"-" if s[k] is None else f"{s[k]:.4f}"}'
                                   for k in ('AP', 'APr', 'APc', 'APf')))
    print(f'wrote {args.out}')
    return 0


def main(argv=None) -> int:
    """Run the CLI; problems with the inputs print one line ``error: ...`` and return 2."""
    return run_cli(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
