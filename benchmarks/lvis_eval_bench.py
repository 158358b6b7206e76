"""LVIS evaluation: lvis-api vs the fast backend, side by side on one generated case.

    python benchmarks/lvis_eval_bench.py [--images 20000] [--cats 1203] [--dets 300]
        [--iou-type bbox segm] [--fixed] [--backends fast lvis]

Generates LVIS-format ground truth and detections (r/c/f categories, negatives, not-exhaustive
categories, ``--dets`` detections per image and 10% of the images 30 above the cap), writes
them as json, then runs each backend in its own process on the files: the time is the whole
evaluation (process start, imports, loading, evaluation), the memory is the process's peak
RSS. Prints the speed-up and the largest difference over every metric and every per-category AP.
``--backends fast`` measures the fast backend alone (lvis-api needs about 1.5 GB per 1,000
images of this case, more than a 24 GiB machine has at LVIS v1 val scale).
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from projects.c2am.cli import UserError, nonnegative_int, positive_int, run_cli  # noqa: E402

_RUN = r'''
import json, resource, sys
sys.path.insert(0, {root!r})
from projects.c2am.lvis_eval import evaluate, load_detections, load_groundtruth
gt = load_groundtruth({ann!r})
res = evaluate(gt, load_detections({dets!r}), {iou!r}, backend={backend!r}, fixed={fixed},
               lvis_gt={ann!r})
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
cats = {{str(k): v for k, v in res.per_category.items()}}
print(json.dumps(dict(metrics=res.metrics, per_category=cats, rss_mb=rss)))
'''


def run_backend(backend: str, ann: Path, dets: Path, iou_type: str, fixed: bool) -> dict:
    code = _RUN.format(root=str(ROOT), ann=str(ann), dets=str(dets), iou=iou_type,
                       backend=backend, fixed=fixed)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                       env={'OMP_NUM_THREADS': '1', 'PATH': '/usr/bin:/bin'})
    seconds = time.perf_counter() - t0
    if p.returncode:
        raise UserError(f'{backend} backend failed: {p.stderr.strip().splitlines()[-1:]}')
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out['seconds'] = seconds
    return out


def max_diff(a: dict, b: dict) -> float:
    """Largest |a - b| over every metric and every per-category AP (NaN == NaN)."""
    diffs = [abs(a['metrics'][k] - b['metrics'][k]) for k in b['metrics']]
    for k, v in b['per_category'].items():
        w = a['per_category'][k]
        if (v != v) != (w != w):
            return float('inf')
        if v == v:
            diffs.append(abs(v - w))
    return max(diffs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--images', type=positive_int, default=20000)
    p.add_argument('--cats', type=positive_int, default=1203)
    p.add_argument('--dets', type=positive_int, default=300, help='detections per image')
    p.add_argument('--iou-type', nargs='+', default=['bbox', 'segm'], choices=['bbox', 'segm'])
    p.add_argument('--fixed', action='store_true', help='AP-fixed protocol')
    p.add_argument('--backends', nargs='+', default=['fast', 'lvis'], choices=['fast', 'lvis'],
                   help='which backends to run (the speed-up needs both)')
    p.add_argument('--seed', type=nonnegative_int, default=0)
    args = p.parse_args(argv)
    import msgspec

    from projects.c2am.lvis_eval.synthetic import make_case
    print(f'# {time.strftime("%Y-%m-%d")}, {platform.processor() or platform.machine()}, '
          f'python {platform.python_version()}; {args.images} images, {args.cats} categories, '
          f'{args.dets} detections per image, {"AP-fixed" if args.fixed else "standard"}')
    print('| type | detections | lvis-api s | fast s | speed-up | lvis-api MB | fast MB '
          '| max diff |')
    print('|---|---|---|---|---|---|---|---|')
    with tempfile.TemporaryDirectory() as tmp:
        for iou_type in args.iou_type:
            gt, dets = make_case(args.images, args.cats, args.dets, over_cap=args.images // 10,
                                 segm=iou_type == 'segm', seed=args.seed, gt_per_image=8,
                                 max_side=640)
            ann, res = Path(tmp, 'gt.json'), Path(tmp, 'dets.json')
            ann.write_bytes(msgspec.json.encode(gt))
            res.write_bytes(msgspec.json.encode(dets))
            n = len(dets)
            del gt, dets
            got = {b: run_backend(b, ann, res, iou_type, args.fixed) for b in args.backends}
            fast, ref = got.get('fast'), got.get('lvis')

            def cell(r, key, fmt):
                return format(r[key], fmt) if r else '-'
            speedup = f"{ref['seconds'] / fast['seconds']:.1f}x" if fast and ref else '-'
            diff = f'{max_diff(fast, ref):.1e}' if fast and ref else '-'
            print(f'| {iou_type} | {n} | {cell(ref, "seconds", ".1f")} | '
                  f'{cell(fast, "seconds", ".1f")} | {speedup} | {cell(ref, "rss_mb", ".0f")} | '
                  f'{cell(fast, "rss_mb", ".0f")} | {diff} |', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
