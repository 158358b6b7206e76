"""Imbalanced-MNIST benchmark: ce, cosine, fixed and c2am over several seeds.

    python benchmarks/toy_mnist.py [--seeds 0 1 2] [--epochs 5] [--out DIR] [--force]
        [--render-only]

Writes ``results.json`` (every run) and ``table.md`` (mean +- std of tail / head / overall
accuracy) in ``--out`` and prints the table. An existing report is replaced only with
``--force``, and only if this benchmark wrote it. The paper's claim to check (Sec. 3.3): on
the tail, c2am > cosine > ce, without hurting the head.
"""
from __future__ import annotations

import argparse
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

from benchmarks._report import (  # noqa: E402
    add_report_arguments,
    check_report,
    read_report,
    write_report,
)
from projects.c2am.cli import nonnegative_int, positive_int, run_cli  # noqa: E402
from toy_mnist.train import LOSSES, ToyConfig, train_and_evaluate  # noqa: E402

TOOL = 'benchmarks/toy_mnist.py'

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
    p.add_argument('--seeds', type=nonnegative_int, nargs='+', default=[0, 1, 2])
    p.add_argument('--losses', nargs='+', choices=LOSSES, default=list(LOSSES))
    p.add_argument('--epochs', type=positive_int, default=5)
    p.add_argument('--device', default='auto')
    add_report_arguments(p, ROOT / 'work_dirs' / 'benchmarks' / 'toy_mnist')
    args = p.parse_args(argv)
    if args.render_only:
        record = read_report(args.out, TOOL)
        md = markdown(summarise(record['runs']), record['args']['seeds'], record['header'])
        check_report(args.out, TOOL, force=True)
        write_report(args.out, TOOL, record, md)
        return 0
    check_report(args.out, TOOL, force=args.force)
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
    check_report(args.out, TOOL, force=args.force)  # nothing appeared meanwhile
    write_report(args.out, TOOL, record, md)
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
