"""The demo (``make demo``): C2AM vs CE on LT-Digits, a long-tail detection benchmark that
runs on a laptop CPU, then Figure 1 (weight norms) and Figure 3 (imbalanced-MNIST toy).

    python tools/demo.py [--quick] [--out DIR] [--iters N] [--toy-epochs N]

Steps: generate LT-Digits if needed (data/lt_digits), train the CE and C2AM Mask R-CNN configs
of configs/lt_digits/ side by side (one CPU thread each), evaluate with LVISMetric, print the
table, draw the Figure-1 comparison of both checkpoints with analysis/, run the toy's Figure 3,
and write an index of everything to DIR/index.md. Full: ~15 min on 2 cores; --quick: ~4 min
(150 iterations, 150 val images, 1 toy epoch: shows the pipeline, not the effect).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from lt_digits.experiments import (  # noqa: E402
    LT_CONFIGS,
    TrainJob,
    checkpoint_of,
    ensure_lt_digits,
    markdown_table,
    read_results,
    run_parallel,
    schedule_options,
)
from lt_digits.generate import check_dataset  # noqa: E402
from projects.c2am.cli import (  # noqa: E402
    ArgumentParser,
    UserError,
    check_output_location,
    positive_int,
    run_cli,
)
from projects.c2am.outputs import (  # noqa: E402
    atomic_output_dir,
    dumps_json,
    nan_to_none,
    prepare_output_dir,
    repoint,
)

LOSSES = ('ce', 'c2am')
DATA_SEED = 0  # the demo's LT-Digits: every other generation setting at its default


def val_subset(data: dict, num_images: int | None, out: Path) -> str:
    """The val annotation file to use: all of val, or its first ``num_images`` images (written
    into ``out``; the dataset folder is never modified)."""
    if not num_images:
        return data['val_ann']
    path = out / f'lvis_v1_val_first{num_images}.json'
    val = json.loads(Path(data['val_ann']).read_text())
    keep = {img['id'] for img in val['images'][:num_images]}
    val['images'] = [i for i in val['images'] if i['id'] in keep]
    val['annotations'] = [a for a in val['annotations'] if a['image_id'] in keep]
    path.write_text(json.dumps(val))
    return str(path)


def python(*args: str) -> None:
    """Run a project script; a failure becomes one :class:`UserError` line."""
    res = subprocess.run([sys.executable, *args], cwd=ROOT)
    if res.returncode != 0:
        raise UserError(f'{args[0]} failed (exit status {res.returncode}; its output is above)')


def build_parser() -> ArgumentParser:
    """The command line; every value is type- and range-checked as it is parsed."""
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='~5 min: shows the pipeline only')
    p.add_argument('--out', type=Path, help='default work_dirs/demo/<time>[_quick]')
    p.add_argument('--force', action='store_true',
                   help='replace a demo folder this tool wrote (other files are never deleted)')
    p.add_argument('--data-root', type=Path, default=ROOT / 'data' / 'lt_digits',
                   help='LT-Digits of the default settings (generated there when missing)')
    p.add_argument('--iters', type=positive_int, help='training iterations (700; quick 150)')
    p.add_argument('--val-images', type=positive_int, help='evaluate on the first N val images')
    p.add_argument('--toy-epochs', type=positive_int, help='toy epochs (5; quick 1)')
    p.add_argument('--no-toy', action='store_true', help='skip the toy (Figure 3)')
    return p


def check_args(args) -> Path:
    """Check the output folder and the dataset folder before anything is written.

    Returns:
        Path: the absolute output folder.

    Raises:
        UserError: the output can not be written or already holds results (without
            ``--force``), or the data root holds anything but the demo's LT-Digits.
    """
    out = args.out or ROOT / 'work_dirs' / 'demo' / (time.strftime('%Y%m%d_%H%M%S') +
                                                     ('_quick' if args.quick else ''))
    out = prepare_output_dir(out, force=args.force).absolute()
    args.data_root = check_output_location(args.data_root, is_dir=True).absolute()
    if out == args.data_root or args.data_root in out.parents or out in args.data_root.parents:
        raise UserError(f'--out {out} and --data-root {args.data_root} must not contain each '
                        'other')
    check_dataset(args.data_root, seed=DATA_SEED)
    return out


def main(argv=None) -> int:
    """Check everything, then run the demo into a temporary folder and swap it in."""
    args = build_parser().parse_args(argv)
    final = check_args(args)
    iters = args.iters or (150 if args.quick else 700)
    val_images = args.val_images or (150 if args.quick else None)
    toy_epochs = args.toy_epochs or (1 if args.quick else 5)
    t0 = time.time()
    with atomic_output_dir(final, force=args.force) as out:
        print(f'== C2AM demo -> {final}\n== 1/5 data')
        data = ensure_lt_digits(args.data_root, seed=DATA_SEED)
        try:
            run_demo(args, data, out, final, iters, val_images, toy_epochs, t0)
            repoint(out, final)
        except (RuntimeError, FileNotFoundError) as err:  # a training job or its results
            raise UserError(f'{err}; {final} was left as it was') from None
    print(f'done in {(time.time() - t0) / 60:.1f} min: {final / "index.md"}')
    return 0


def run_demo(args, data: dict, out: Path, final: Path, iters: int, val_images: int | None,
             toy_epochs: int, t0: float) -> None:
    """Steps 2-5 into ``out``, the temporary folder that becomes ``final``."""
    val_ann = val_subset(data, val_images, out)
    root = str(Path(data['data_root'])) + '/'

    print(f'== 2/5 training CE and C2AM Mask R-CNN side by side ({iters} iterations each, '
          f'then LVISMetric on {val_images or "all"} val images)')
    jobs = [TrainJob(loss, LT_CONFIGS[loss], out / loss, {
        'train_cfg.max_iters': iters, 'train_cfg.val_interval': iters,
        'train_dataloader.dataset.data_root': root,
        'val_dataloader.dataset.data_root': root,
        'val_dataloader.dataset.ann_file': val_ann,
        'val_evaluator.ann_file': val_ann,
        'val_evaluator.outfile_prefix': str(out / loss / 'val_results')}
        | schedule_options(LT_CONFIGS[loss], iters)) for loss in LOSSES]
    run_parallel(jobs, max_parallel=2)
    results = {loss: read_results(out / loss) for loss in LOSSES}
    table = markdown_table({k.upper() if k == 'ce' else 'C2AM': v for k, v in results.items()},
                           ('AP mask', 'AP box', 'APr', 'APc', 'APf', 'APr box'))
    print('\n' + table)
    recorded_val = final / Path(val_ann).name if Path(val_ann).parent == out else val_ann
    (out / 'results.json').write_text(dumps_json(nan_to_none(dict(
        iters=iters, val_ann=str(recorded_val), results=results)), indent=2))

    print('== 3/5 per-category AP and Figure 1 (weight norm vs frequency vs AP)')
    for loss in LOSSES:
        python('analysis/per_class_ap.py', str(out / loss / 'val_results.segm.json'),
               '--ann', val_ann, '--out', str(out / f'per_class_ap_{loss}.json'))
    python('analysis/weight_norm_plot.py', str(checkpoint_of(out / 'ce')),
           str(checkpoint_of(out / 'c2am')), '--labels', 'CE', 'C2AM', '--ann',
           data['train_ann'], '--per-class-ap', str(out / 'per_class_ap_ce.json'),
           str(out / 'per_class_ap_c2am.json'), '--out', str(out / 'figure1'))

    if not args.no_toy:
        print(f'== 4/5 toy: imbalanced MNIST, Figure 3 ({toy_epochs} epochs per run)')
        python('toy_mnist/run.py', '--figure3', '--epochs', str(toy_epochs), '--out',
               str(out / 'toy_figure3'), '--tsne-samples', '1000' if args.quick else '3000',
               '--quiet')

    print('== 5/5 index')
    write_index(out, table, iters, val_ann, args, time.time() - t0)


def write_index(out: Path, table: str, iters: int, val_ann: str, args, seconds: float) -> None:
    fig = json.loads((out / 'figure1.json').read_text())['summary']
    lines = [f'# C2AM demo ({time.strftime("%Y-%m-%d %H:%M")}, {seconds / 60:.1f} min'
             f"{', quick' if args.quick else ''})", '',
             f'LT-Digits, CPU Mask R-CNN, {iters} iterations per model; val: '
             f'`{Path(val_ann).name}`. AP in %, APr/APc/APf are mask AP.', '', table, '',
             '## Outputs', '',
             '| file | what |', '|---|---|',
             '| `results.json` | the metrics above |',
             '| `ce/`, `c2am/` | work dirs: `train.log`, checkpoint, config, '
             '`val_results.*.json` |',
             '| `per_class_ap_ce.json`, `per_class_ap_c2am.json` | per-category AP '
             '(analysis/per_class_ap.py) |',
             '| `figure1.png`, `figure1.pdf`, `figure1.json` | weight norm vs frequency vs AP, '
             'CE and C2AM (analysis/weight_norm_plot.py) |']
    if (out / 'toy_figure3').is_dir():
        lines += ['| `toy_figure3/figure3.png`, `.pdf`, `figure3.json` | imbalanced-MNIST '
                  't-SNE panels (toy_mnist/run.py --figure3) |']
    lines += ['', '## Weight norms (Figure 1 summary)', '']
    for s in fig:
        lines.append(f"- {s['label']}: Spearman(norm, frequency) "
                     f"{s.get('spearman_norm_frequency', float('nan')):+.2f}, norm ratio "
                     f"{s['head_tail_definition']} {s['norm_ratio_head_tail']:.2f}, implied "
                     f"C2AM margin head->tail {s['implied_margin_head_to_tail']['mean']:.3f} rad")
    if (out / 'toy_figure3' / 'figure3.json').is_file():
        toy = json.loads((out / 'toy_figure3' / 'figure3.json').read_text())
        lines += ['', '## Toy (Figure 3)', '']
        lines += [f"- {k}: tail acc {100 * v['tail_accuracy']:.1f}%, head acc "
                  f"{100 * v['head_accuracy']:.1f}%" for k, v in toy.items()]
    (out / 'index.md').write_text('\n'.join(lines) + '\n')


if __name__ == '__main__':
    sys.exit(run_cli(main))
