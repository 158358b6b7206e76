"""The paper's ablations on LT-Digits as a figure: AP against the scale s (Table 3), against alpha
(Table 4) and per margin type (Table 5), from a ``benchmarks/lt_detection.py`` report.

    python benchmarks/plot_ablations.py RUNS [--out benchmarks/figures/lt_digits_ablations]
        [--force]

RUNS is a ``benchmarks/lt_detection.py --out`` folder whose ``results.json`` holds the runs of
the ``table3`` / ``table4`` / ``table5`` methods (e.g. rendered with ``--methods ablations``).
Each method's s, alpha and margin type are read from its config and options, so a table's
x-axis is what the runs trained with. Writes ``OUT.png``, ``OUT.pdf`` and ``OUT.json`` (every
plotted value: mean and per seed of AP mask, APr, APc, APf).
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._report import read_report  # noqa: E402
from lt_digits.experiments import METHOD_GROUPS, METHODS  # noqa: E402
from projects.c2am.c2am import ALPHA, SCALE  # noqa: E402
from projects.c2am.cli import UserError, run_cli  # noqa: E402
from projects.c2am.outputs import (  # noqa: E402
    atomic_output_files,
    check_output_files,
    dumps_json,
    write_atomic,
)

METRICS = ('AP mask', 'APr', 'APc', 'APf')
LOSS = 'model.roi_head.bbox_head.loss_cls'
TABLES = {'table3': 'scale s (Table 3)', 'table4': 'alpha (Table 4)',
          'table5': 'margin type (Table 5)'}


def margin_setting(method: str) -> dict:
    """The ``scale``, ``alpha`` and ``margin`` a method trains with (its config's loss, then its
    options; no margin counts as alpha = 0, as in the paper's Table 4)."""
    from mmengine.config import Config
    m = METHODS[method]
    loss = Config.fromfile(str(ROOT / m.config)).model.roi_head.bbox_head.get('loss_cls', {})
    setting = {'scale': loss.get('scale', SCALE), 'alpha': loss.get('alpha', ALPHA),
               'margin': loss.get('margin', 'adaptive'),
               'fixed_margin': loss.get('fixed_margin')}
    for key in setting:
        setting[key] = m.options.get(f'{LOSS}.{key}', setting[key])
    if setting['margin'] == 'none':
        setting['alpha'] = 0.0
    return setting


def x_value(table: str, setting: dict):
    if table == 'table3':
        return float(setting['scale'])
    if table == 'table4':
        return float(setting['alpha'])
    if setting['margin'] == 'fixed':
        return f"fixed {setting['fixed_margin']:g}"
    return setting['margin']


def collect(record: dict) -> dict:
    """Per table, its points (one per method with finished runs) sorted along the x-axis.

    Raises:
        UserError: the report holds no run of any ablation method.
    """
    runs, seeds = record.get('runs', {}), record.get('seeds', [])
    out = {}
    for table, label in TABLES.items():
        points = []
        for method in METHOD_GROUPS[table]:
            per_seed = {s: runs[f'{method}_s{s}'] for s in seeds if f'{method}_s{s}' in runs}
            if not per_seed:
                continue
            point = {'method': method, 'x': x_value(table, margin_setting(method)),
                     'seeds': sorted(per_seed)}
            for metric in METRICS:
                values = {str(s): r[metric] for s, r in per_seed.items()
                          if r.get(metric) is not None}
                point[metric] = {'mean': statistics.mean(values.values()) if values else None,
                                 'per_seed': values}
            points.append(point)
        if table != 'table5':
            points.sort(key=lambda p: p['x'])
        if points:
            out[table] = {'axis': label, 'points': points}
    if not out:
        raise UserError('the report holds no run of the ablation methods (table3 / table4 / '
                        'table5); render it with --methods ablations')
    return out


def plot(tables: dict, prefix: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(tables), figsize=(5.5 * len(tables), 4), squeeze=False)
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for ax, (table, data) in zip(axes[0], tables.items()):
        points = data['points']
        categorical = table == 'table5'
        xs = list(range(len(points))) if categorical else [p['x'] for p in points]
        for metric, colour in zip(METRICS, colours):
            means = [p[metric]['mean'] for p in points]
            ax.plot(xs, means, 'o-' if not categorical else 'o', color=colour, label=metric)
            for x, p in zip(xs, points):
                seed_values = list(p[metric]['per_seed'].values())
                ax.scatter([x] * len(seed_values), seed_values, color=colour, s=10, alpha=0.4)
        if categorical:
            ax.set_xticks(xs, [str(p['x']) for p in points])
        ax.set_xlabel(data['axis'])
        ax.set_ylabel('mask AP (dots: seeds)')
        ax.legend(fontsize=7)
    fig.tight_layout()
    # the outputs were checked (--force) before anything was computed
    with atomic_output_files([prefix.with_suffix('.png'), prefix.with_suffix('.pdf')],
                             force=True) as (png, pdf):
        fig.savefig(png, dpi=150)
        fig.savefig(pdf)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('runs', type=Path, help='a benchmarks/lt_detection.py --out folder')
    p.add_argument('--out', type=Path, default=ROOT / 'work_dirs' / 'benchmarks' / 'ablations',
                   help='output prefix (.png, .pdf, .json are added)')
    p.add_argument('--force', action='store_true', help='overwrite existing outputs')
    args = p.parse_args(argv)
    record = read_report(args.runs, 'benchmarks/lt_detection.py')
    check_output_files([args.out.with_suffix(f'.{e}') for e in ('png', 'pdf', 'json')],
                       force=args.force)
    tables = collect(record)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot(tables, args.out)
    write_atomic(args.out.with_suffix('.json'), dumps_json(
        {'report': str(args.runs / 'results.json'), 'header': record.get('header'),
         'tables': tables}, indent=1))
    print(f'wrote {args.out}.png, .pdf, .json')
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
