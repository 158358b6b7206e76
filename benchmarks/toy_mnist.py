"""Imbalanced-MNIST benchmark: ce, cosine, fixed and c2am over several seeds.

    python benchmarks/toy_mnist.py [--seeds 0 1 2] [--epochs 5] [--out DIR]

Writes ``results.json`` (every run) and ``table.md`` (mean +- std of tail / head / overall
accuracy) in ``--out`` and prints the table. The paper's claim to check (Sec. 3.3): on the tail,
c2am > cosine > ce, without hurting the head.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from toy_mnist.train import LOSSES, ToyConfig, train_and_evaluate  # noqa: E402

METRICS = ('tail_accuracy', 'head_accuracy', 'overall_accuracy')


def summarise(runs: list[dict]) -> dict:
    table = {}
    for loss in LOSSES:
        sel = [r for r in runs if r['loss'] == loss]
        if not sel:
            continue
        row = {}
        for m in METRICS + ('tail_norm_ratio',):
            vals = np.array([r[m] for r in sel]) * (1 if m == 'tail_norm_ratio' else 100)
            row[m] = dict(mean=float(vals.mean()), std=float(vals.std(ddof=1)) if len(vals) > 1
                          else 0.0)
        table[loss] = row
    return table


def markdown(table: dict, seeds: list[int], header: str) -> str:
    lines = [header, '',
             '| loss | tail acc (7-9) % | head acc (0-6) % | overall % | mean ‖W‖ head / tail |',
             '|---|---|---|---|---|']
    for loss, row in table.items():
        cells = [f"{row[m]['mean']:.2f} ± {row[m]['std']:.2f}" for m in METRICS]
        ratio = row['tail_norm_ratio']
        lines.append(f"| {loss} | {' | '.join(cells)} | {ratio['mean']:.2f} ± "
                     f"{ratio['std']:.2f} |")
    lines.append('')
    lines.append(f'mean ± std over seeds {seeds}')
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--losses', nargs='+', choices=LOSSES, default=list(LOSSES))
    p.add_argument('--epochs', type=int, default=5)
    p.add_argument('--device', default='auto')
    p.add_argument('--out', type=Path, default=ROOT / 'work_dirs' / 'benchmarks' / 'toy_mnist')
    p.add_argument('--force', action='store_true', help='overwrite existing results')
    p.add_argument('--render-only', action='store_true',
                   help='re-write table.md from an existing results.json, no training')
    args = p.parse_args(argv)
    if args.render_only:
        record = json.loads((args.out / 'results.json').read_text())
        md = markdown(summarise(record['runs']), record['args']['seeds'], record['header'])
        (args.out / 'table.md').write_text(md + '\n')
        print(md)
        return 0
    if (args.out / 'results.json').exists() and not args.force:
        print(f'error: {args.out}/results.json exists; pass --force or another --out',
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    base = ToyConfig(epochs=args.epochs, device=args.device)
    runs = []
    for seed in args.seeds:
        for loss in args.losses:
            t0 = time.time()
            m = train_and_evaluate(replace(base, loss=loss, seed=seed), progress=False)['metrics']
            norms = np.array(m['weight_norms'])
            runs.append(dict(loss=loss, seed=seed, seconds=time.time() - t0,
                             tail_norm_ratio=float(norms[m['head_classes']].mean() /
                                                   norms[m['tail_classes']].mean()),
                             **{k: m[k] for k in METRICS},
                             per_class_accuracy=m['per_class_accuracy'],
                             per_class_precision=m['per_class_precision'],
                             weight_norms=m['weight_norms']))
            print(f"seed {seed} {loss:<6} tail {100 * m['tail_accuracy']:.2f}%  head "
                  f"{100 * m['head_accuracy']:.2f}%  ({runs[-1]['seconds']:.0f} s)", flush=True)
    table = summarise(runs)
    header = (f"Imbalanced MNIST (7, 8, 9 reduced to 100 training images), {args.epochs} "
              f"epochs; `python benchmarks/toy_mnist.py`; {platform.machine()} "
              f"({os.cpu_count()} cores, device {args.device}), {time.strftime('%Y-%m-%d')}")
    md = markdown(table, args.seeds, header)
    record = dict(runs=runs, summary=table, header=header,
                  args=vars(args) | {'out': str(args.out)})
    (args.out / 'results.json').write_text(json.dumps(record, indent=2))
    (args.out / 'table.md').write_text(md + '\n')
    print('\n' + md)
    return 0


if __name__ == '__main__':
    sys.exit(main())
