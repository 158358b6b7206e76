"""LT-Digits benchmark: CE, cosine, Seesaw and C2AM (and C2AM without background margins) on
the generated long-tail detection benchmark, several training seeds, on the CPU.

    python benchmarks/lt_detection.py [--losses ce cosine seesaw c2am c2am-bg] [--seeds 0 1]
        [--iters 700] [--parallel 2] [--out work_dirs/benchmarks/lt_detection] [--force]

Each run is ``tools/train.py`` on ``configs/lt_digits/*`` (identical but for the classifier and
its loss) followed by LVISMetric on the val split. ``c2am`` is the project default (background
outside the margins), ``c2am-bg`` puts background inside them. Writes ``results.json`` and
``table.md`` (mean ± std of AP mask, AP box, APr, APc, APf, the classifier norm ratio frequent /
rare, and the median train step time relative to CE measured in the same benchmark run).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lt_digits.experiments import (  # noqa: E402
    LT_CONFIGS,
    TrainJob,
    ensure_lt_digits,
    markdown_table,
    read_results,
    run_parallel,
)

COLUMNS = ('AP mask', 'AP box', 'APr', 'APc', 'APf', 'APr box', 'norm f/r')


def norm_stats(work_dir: Path, train_ann: Path) -> dict:
    """Classifier norm ratio frequent / rare and Spearman(norm, frequency) of a run."""
    from scipy.stats import spearmanr

    from analysis.checkpoints import load_checkpoint, select_classifiers
    from analysis.frequency import load_categories
    from lt_digits.experiments import checkpoint_of
    state, _ = load_checkpoint(checkpoint_of(work_dir))
    cats = load_categories(train_ann)
    (w,) = select_classifiers(state, num_classes=len(cats['ids'])).values()
    norms = w.norm(dim=1).numpy()
    f, r = cats['frequency'] == 'f', cats['frequency'] == 'r'
    return {'norm f/r': float(norms[f].mean() / norms[r].mean()),
            'spearman norm-freq': float(spearmanr(norms, cats['instance_count'])[0])}


def summarise(runs: dict, losses: list, seeds: list) -> dict:
    table = {}
    ce_step = statistics.mean(runs[f'ce_s{s}']['step_s'] for s in seeds) \
        if all(f'ce_s{s}' in runs for s in seeds) else None
    for loss in losses:
        rows = [runs[f'{loss}_s{s}'] for s in seeds]
        entry = {}
        for c in COLUMNS:
            vals = [r[c] for r in rows]
            entry[c] = (statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0)
        if ce_step:
            entry['step vs CE'] = statistics.mean(r['step_s'] for r in rows) / ce_step
        table[loss] = entry
    return table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # the recorded run (README) predates the default switch and names the variants 'c2am'
    # (background in the margins, now 'c2am-bg') and 'c2am-nobg' (now 'c2am')
    p.add_argument('--losses', nargs='+', choices=list(LT_CONFIGS) + ['c2am-nobg'],
                   default=['ce', 'cosine', 'seesaw', 'c2am', 'c2am-bg'])
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    p.add_argument('--iters', type=int, default=700)
    p.add_argument('--parallel', type=int, default=2)
    p.add_argument('--data-root', type=Path, default=ROOT / 'data' / 'lt_digits')
    p.add_argument('--out', type=Path, default=ROOT / 'work_dirs' / 'benchmarks' / 'lt_detection')
    p.add_argument('--force', action='store_true', help='overwrite an existing benchmark')
    p.add_argument('--render-only', action='store_true', help='re-write table.md from results')
    args = p.parse_args(argv)
    train_ann = args.data_root / 'annotations' / 'lvis_v1_train.json'
    if args.render_only:
        record = json.loads((args.out / 'results.json').read_text())
        for name, run in record['runs'].items():
            run.update(norm_stats(args.out / name, train_ann))
        table = summarise(record['runs'], record['losses'], record['seeds'])
        md = render(table, record['header'])
        record['summary'] = {k: {c: list(v) if isinstance(v, tuple) else v for c, v in e.items()}
                             for k, e in table.items()}
        (args.out / 'results.json').write_text(json.dumps(record, indent=2))
        (args.out / 'table.md').write_text(md + '\n')
        print(md)
        return 0
    if (args.out / 'results.json').exists() and not args.force:
        print(f'error: {args.out}/results.json exists; pass --force or another --out',
              file=sys.stderr)
        return 2
    try:
        ensure_lt_digits(args.data_root)
    except FileExistsError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    config_of = dict(LT_CONFIGS, **{'c2am-nobg': LT_CONFIGS['c2am']})
    jobs = [TrainJob(f'{loss}_s{seed}', config_of[loss], args.out / f'{loss}_s{seed}',
                     {'train_cfg.max_iters': args.iters, 'train_cfg.val_interval': args.iters,
                      'randomness.seed': seed,
                      'data_root': str(args.data_root) + '/',
                      'train_dataloader.dataset.data_root': str(args.data_root) + '/',
                      'val_dataloader.dataset.data_root': str(args.data_root) + '/',
                      'test_dataloader.dataset.data_root': str(args.data_root) + '/',
                      'val_evaluator.ann_file':
                          str(args.data_root / 'annotations' / 'lvis_v1_val.json'),
                      'test_evaluator.ann_file':
                          str(args.data_root / 'annotations' / 'lvis_v1_val.json')})
            for seed in args.seeds for loss in args.losses]
    if args.out.exists() and args.force:
        import shutil
        shutil.rmtree(args.out)
    t0 = time.time()
    run_parallel(jobs, max_parallel=args.parallel)
    runs = {job.name: read_results(job.work_dir) | norm_stats(job.work_dir, train_ann)
            for job in jobs}
    header = (f'LT-Digits (100 categories; seed-0 data), {args.iters} iterations, batch 8, '
              f'training seeds {args.seeds}; `python benchmarks/lt_detection.py`; '
              f'{platform.machine()} {os.cpu_count()} cores, {args.parallel} runs in parallel '
              f'(1 thread each), {time.strftime("%Y-%m-%d")}; {(time.time() - t0) / 60:.0f} min')
    table = summarise(runs, args.losses, args.seeds)
    md = render(table, header)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'results.json').write_text(json.dumps(
        dict(header=header, losses=args.losses, seeds=args.seeds, runs=runs,
             summary={k: {c: list(v) if isinstance(v, tuple) else v for c, v in e.items()}
                      for k, e in table.items()}), indent=2))
    (args.out / 'table.md').write_text(md + '\n')
    print('\n' + md)
    return 0


def render(table: dict, header: str) -> str:
    md = markdown_table(table, COLUMNS)
    steps = ', '.join(f"{k} {v['step vs CE']:.2f}" for k, v in table.items() if 'step vs CE' in v)
    return (f'{header}\n\n{md}\n\nmean ± std over training seeds; APr/APc/APf are mask AP, '
            f'"APr box" the box APr; "norm f/r": mean classifier norm of frequent over rare '
            f'categories.\nmedian train step time relative to CE: {steps}')


if __name__ == '__main__':
    sys.exit(main())
