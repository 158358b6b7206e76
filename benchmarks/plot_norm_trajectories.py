"""Classifier norm trajectories during training (e.g. CE vs C2AM), from the scalars the
``ClassifierNormHook`` logged.

    python benchmarks/plot_norm_trajectories.py CE=work_dirs/.../ce_s0 C2AM=work_dirs/.../c2am_s0
        [--out work_dirs/benchmarks/norm_trajectories] [--force]

Each ``LABEL=WORK_DIR`` is an mmengine work dir (its ``<timestamp>/vis_data/scalars.json``; the
latest when there are several). Writes ``OUT.png``, ``OUT.pdf`` and ``OUT.json`` (the plotted
series): mean norm of the rare / common / frequent categories, the frequent / rare ratio, the
Spearman correlation of norm with training frequency, and, for C2AM runs, the mean margin a
frequent-class sample puts on rare and common classes, and the largest norm over the median
(norm spikes), each against the training iteration.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from projects.c2am.cli import UserError, run_cli  # noqa: E402
from projects.c2am.outputs import (  # noqa: E402
    atomic_output_files,
    check_output_files,
    dumps_json,
    write_atomic,
)

SERIES = ('cls_norm/r', 'cls_norm/c', 'cls_norm/f', 'cls_norm/f_over_r',
          'cls_norm/spearman_freq', 'c2am_margin/f_to_r', 'c2am_margin/f_to_c',
          'cls_norm/max_over_median', 'cls_norm/spikes')


def labelled_dir(text: str) -> tuple[str, Path]:
    """argparse check: ``LABEL=WORK_DIR`` with an existing directory."""
    label, sep, path = text.partition('=')
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f'expected LABEL=WORK_DIR, got {text!r}')
    if not Path(path).is_dir():
        raise argparse.ArgumentTypeError(f'{path}: not a directory')
    return label, Path(path)


def read_series(work_dir: Path) -> dict[str, list[list[float]]]:
    """``key -> [[step, value], ...]`` of the norm statistics in a work dir's scalars.json.

    Raises:
        UserError: no scalars.json, or none of the statistics in it.
    """
    files = sorted(work_dir.glob('*/vis_data/scalars.json'))
    if not files:
        raise UserError(f'{work_dir}: no */vis_data/scalars.json (not an mmengine work dir?)')
    out: dict[str, list[list[float]]] = {}
    for line in files[-1].read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        for key in SERIES:
            if key in row and 'step' in row:
                out.setdefault(key, []).append([row['step'], row[key]])
    if not out:
        raise UserError(f'{files[-1]}: no classifier norm statistics (train with the '
                        'ClassifierNormHook)')
    return out


def plot(runs: dict[str, dict], prefix: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    spikes = any('cls_norm/max_over_median' in series for series in runs.values())
    fig, axes = plt.subplots(1, 5 if spikes else 4, figsize=(22 if spikes else 18, 4))
    single = [(axes[1], 'cls_norm/f_over_r'), (axes[2], 'cls_norm/spearman_freq')]
    if spikes:
        single.append((axes[4], 'cls_norm/max_over_median'))
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for (label, series), colour in zip(runs.items(), colours * 4):
        for group, style in (('f', '-'), ('c', '--'), ('r', ':')):
            if f'cls_norm/{group}' in series:
                x, y = zip(*series[f'cls_norm/{group}'])
                axes[0].plot(x, y, style, color=colour, label=f'{label} {group}')
        for ax, key in single:
            if key in series:
                ax.plot(*zip(*series[key]), color=colour, label=label)
        for key, style in (('c2am_margin/f_to_r', '-'), ('c2am_margin/f_to_c', '--')):
            if key in series:
                axes[3].plot(*zip(*series[key]), style, color=colour,
                             label=f'{label} f->{key[-1]}')
    titles = ('mean classifier norm (f solid, c dashed, r dotted)', 'norm frequent / rare',
              'Spearman(norm, training frequency)', 'C2AM mean margin (rad)',
              'largest norm / median (runs that logged it)')
    for ax, title in zip(axes, titles):  # the spike panel's title only when it is drawn
        ax.set_title(title, fontsize=9)
        ax.set_xlabel('iteration')
        if ax.lines:
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
    p.add_argument('runs', type=labelled_dir, nargs='+', metavar='LABEL=WORK_DIR')
    p.add_argument('--out', type=Path,
                   default=ROOT / 'work_dirs' / 'benchmarks' / 'norm_trajectories',
                   help='output prefix (.png, .pdf, .json are added)')
    p.add_argument('--force', action='store_true', help='overwrite existing outputs')
    args = p.parse_args(argv)
    labels = [label for label, _ in args.runs]
    if len(set(labels)) != len(labels):
        raise UserError(f'labels must differ, got {labels}')
    check_output_files([args.out.with_suffix(f'.{e}') for e in ('png', 'pdf', 'json')],
                       force=args.force)
    runs = {label: read_series(path) for label, path in args.runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot(runs, args.out)
    write_atomic(args.out.with_suffix('.json'), dumps_json(
        {label: {'work_dir': str(path), 'series': runs[label]} for label, path in args.runs},
        indent=1))
    print(f'wrote {args.out}.png, .pdf, .json')
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
