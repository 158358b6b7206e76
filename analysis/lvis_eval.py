"""LVIS evaluation of a result file: lvis-api's numbers, fast; AP-fixed and AP-pool on request.

    python analysis/lvis_eval.py RESULTS --ann lvis_v1_val.json [--iou-type bbox segm]
        [--backend fast|lvis] [--fixed] [--pool] [--mask-area] [--out metrics.json [--force]]

RESULTS is mmdet's LVIS result json (``<prefix>.bbox.json`` / ``<prefix>.segm.json``: give
either, the other is found beside it) or the pickle of ``tools/test.py --out`` (read safely).
``--backend lvis`` runs lvis-api itself (the reference); the default fast backend gives the same
numbers. ``--fixed`` is AP-fixed (Dave et al. 2021): the top 10,000 detections per category over
the set, no per-image cap - the detector must emit that many (see
``configs/_base_/lvis_ap_fixed_test.py``). The JSON holds, per IoU type, lvis-api's metrics as
fractions (null where undefined) and the AP of every category.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from projects.c2am.cli import check_output_location, existing_file, run_cli  # noqa: E402
from projects.c2am.lvis_eval import (  # noqa: E402
    AP_KEYS,
    BACKENDS,
    IOU_TYPES,
    POOL_KEYS,
    evaluate,
    load_groundtruth,
)
from projects.c2am.lvis_eval.results_file import load_results, pick_iou_types  # noqa: E402
from projects.c2am.outputs import check_output_files, dumps_json, write_atomic  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('results', type=existing_file, help='LVIS result json or tools/test.py pkl')
    p.add_argument('--ann', type=existing_file, required=True, help='LVIS annotation json')
    p.add_argument('--iou-type', nargs='+', choices=IOU_TYPES, default=None,
                   help='default: every type the results hold')
    p.add_argument('--backend', choices=BACKENDS, default='fast',
                   help='fast (default) or lvis (lvis-api itself, the reference)')
    p.add_argument('--fixed', action='store_true',
                   help='AP-fixed: top 10,000 detections per category, no per-image cap')
    p.add_argument('--pool', action='store_true', help='also AP-pool (fast backend)')
    p.add_argument('--mask-area', action='store_true',
                   help='segm: APs/APm/APl from mask areas (lvis-api uses the box area)')
    p.add_argument('--out', type=Path, default=None, help='metrics json to write')
    p.add_argument('--force', action='store_true', help='overwrite --out')
    return p


def run(args) -> dict:
    """Evaluate; returns the JSON document."""
    gt = load_groundtruth(args.ann)
    available = load_results(args.results, gt)
    doc = dict(annotations=str(args.ann), results=str(args.results))
    for iou_type in pick_iou_types(available, args.iou_type):
        t0 = time.perf_counter()
        res = evaluate(gt, available[iou_type], iou_type, backend=args.backend,
                       fixed=args.fixed, pool=args.pool, mask_area=args.mask_area,
                       lvis_gt=args.ann)
        doc.setdefault('protocol', dict(res.protocol, seconds={}))
        doc['protocol']['seconds'][iou_type] = round(time.perf_counter() - t0, 3)
        doc['protocol'].pop('detections', None)
        doc[iou_type] = res.to_json_dict(gt)
        doc[iou_type]['detections'] = res.protocol['detections']
    types = [t for t in IOU_TYPES if t in doc]
    if len(types) == 1:
        doc.update({k: v for k, v in doc[types[0]].items() if k in AP_KEYS + POOL_KEYS})
    return doc


def format_table(doc: dict) -> str:
    """Metrics in percent, one row per IoU type."""
    keys = list(AP_KEYS) + [k for k in POOL_KEYS if any(k in doc.get(t, {}) for t in IOU_TYPES)]
    lines = ['type  ' + ' '.join(f'{k:>7}' for k in keys)]
    for t in IOU_TYPES:
        if t in doc:
            cells = [doc[t].get(k) for k in keys]
            lines.append(f'{t:<5} ' + ' '.join(f'{"-":>7}' if v is None else f'{100 * v:7.2f}'
                                               for v in cells))
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.out is not None:
        check_output_files([args.out], force=args.force)
        check_output_location(args.out)
    doc = run(args)
    print(format_table(doc))
    if args.out is not None:
        write_atomic(args.out, dumps_json(doc, indent=1))
        print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
