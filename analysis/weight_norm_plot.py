"""Figure 1 of the paper from any checkpoint: classifier weight norm vs frequency (vs AP).

    python analysis/weight_norm_plot.py CKPT [CKPT2] [--ann lvis_v1_train.json]
        [--per-class-ap AP.json [AP2.json]] [--key KEY] [--stage N] [--out STEM] [--force]

CKPT: this project's detectors (CE or C2AM Mask R-CNN: the bbox classifier; Cascade: all
three stages, or --stage), any mmdet checkpoint, or a toy_mnist ``model.pth``. A second
checkpoint is drawn on the same axes (compare mode). Writes STEM.png, STEM.pdf and STEM.json
and prints a summary: Spearman correlation of norm with frequency and with AP, the head/tail
norm ratio, and the C2AM margins these norms imply (Eq. 7, via the loss core).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analysis.checkpoints import detector_extra_rows, load_checkpoint, select_classifiers  # noqa: E402
from analysis.errors import AnalysisError  # noqa: E402
from analysis.frequency import GROUP_NAMES, load_categories  # noqa: E402

GROUP_COLOURS = {'r': '#d62728', 'c': '#ff7f0e', 'f': '#1f77b4', '?': '#7f7f7f'}


def frequency_info(ckpt: Path, num_classes: int, ann: Path | None,
                   cats: dict | None = None) -> dict:
    """Instance counts and r/c/f groups: from --ann, else stored with the checkpoint, else none.

    ``cats`` is ``load_categories(ann)`` when the caller has it already (LVIS v1's train json is
    over 1 GB: parse it once).

    Returns:
        dict: ``counts`` (or None), ``groups`` (array of r/c/f/?), ``names``, ``ids``,
        ``source`` (a sentence for the summary).
    """
    if ann is not None:
        cats = cats or load_categories(ann)
        if len(cats['ids']) != num_classes:
            raise AnalysisError(f'the classifier has {num_classes} classes but {ann} has '
                                f"{len(cats['ids'])} categories (LVIS v1: 1203, v0.5: 1230)")
        return dict(counts=cats['instance_count'], image_counts=cats['image_count'],
                    groups=cats['frequency'], names=cats['names'], ids=cats['ids'],
                    source=f'instance counts from {ann.name}')
    metrics = ckpt.parent / 'metrics.json'  # toy_mnist stores its training counts beside
    if metrics.is_file():
        try:
            counts = np.array(json.loads(metrics.read_text())['train_class_counts'])
        except (ValueError, KeyError):
            counts = None
        if counts is not None and len(counts) == num_classes:
            return dict(counts=counts, image_counts=None, groups=np.array(['?'] * num_classes),
                        names=[str(i) for i in range(num_classes)],
                        ids=list(range(num_classes)),
                        source=f'training counts stored with the checkpoint ({metrics.name})')
    return dict(counts=None, image_counts=None, groups=np.array(['?'] * num_classes),
                names=[str(i) for i in range(num_classes)], ids=list(range(num_classes)),
                source='no frequency known: classes plotted in index order (pass --ann)')


def frequency_order(info: dict) -> np.ndarray:
    """Class indices from most to least frequent (index order when unknown)."""
    if info['counts'] is None:
        return np.arange(len(info['groups']))
    secondary = info['image_counts'] if info['image_counts'] is not None else info['counts']
    return np.lexsort((-secondary, -info['counts']))


def head_tail(info: dict, order: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    groups = info['groups']
    if (groups == 'f').any() and (groups == 'r').any():
        return np.flatnonzero(groups == 'f'), np.flatnonzero(groups == 'r'), 'frequent / rare'
    third = max(1, len(order) // 3)
    return order[:third], order[-third:], 'most / least frequent third'


def summarise(norms: np.ndarray, info: dict, ap: dict | None, alpha: float) -> dict:
    import torch
    from scipy.stats import spearmanr

    from projects.c2am.c2am import c2am_margins
    order = frequency_order(info)
    head, tail, how = head_tail(info, order)
    out = dict(num_classes=int(len(norms)), frequency_source=info['source'],
               head_tail_definition=how,
               norm_ratio_head_tail=float(norms[head].mean() / norms[tail].mean()),
               norm_mean=float(norms.mean()), norm_min=float(norms.min()),
               norm_max=float(norms.max()))
    if info['counts'] is not None:
        out['spearman_norm_frequency'] = float(spearmanr(norms, info['counts'])[0])
    margins = c2am_margins(torch.as_tensor(norms, dtype=torch.float64),
                           torch.as_tensor(head), alpha=alpha)[:, torch.as_tensor(tail)]
    out['implied_margin_head_to_tail'] = dict(alpha=alpha, mean=float(margins.mean()),
                                              max=float(margins.max()),
                                              mean_degrees=float(np.degrees(float(margins.mean()))))
    if ap is not None:
        for t in ('bbox', 'segm'):
            vals = np.array([ap.get(cid, {}).get(f'ap_{t}', np.nan) for cid in info['ids']],
                            dtype=float)
            ok = np.isfinite(vals)
            if ok.sum() > 2:
                out[f'spearman_norm_ap_{t}'] = float(spearmanr(norms[ok], vals[ok])[0])
    return out


def load_ap(path: Path, ids: list) -> dict:
    try:
        data = json.loads(path.read_text())['categories']
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise AnalysisError(f'{path}: not a per_class_ap.py output ({err})') from None
    ap = {int(k): v for k, v in data.items()}
    if not set(ids) <= set(ap):
        raise AnalysisError(f'{path} does not cover the categories of the classifier')
    return ap


def plot(curves: list[dict], info: dict, aps: list, out_stem: Path) -> list[str]:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    order = frequency_order(info)
    n_panels = 1 + (2 if aps and aps[0] is not None else 0)
    fig, axes = plt.subplots(n_panels, 1, figsize=(11, 3.6 * n_panels), squeeze=False)
    ax = axes[0, 0]
    x = np.arange(len(order))
    for c in curves:
        ax.plot(x, c['norms'][order], lw=1.0, label=c['label'])
    ax.set_ylabel('classifier weight norm ‖W_j‖')
    known = info['counts'] is not None
    ax.set_xlabel('categories sorted by training instances (most to least)' if known
                  else 'category index (frequency unknown)')
    if known:
        ax2 = ax.twinx()
        ax2.bar(x, info['counts'][order], color='0.85', width=1.0, zorder=0)
        ax2.set_yscale('log')
        ax2.set_ylabel('training instances (log)')
        ax.set_zorder(ax2.get_zorder() + 1)
        ax.patch.set_visible(False)
    if len(order) <= 30:
        ax.set_xticks(x, [info['names'][j] for j in order], rotation=90 if len(order) > 10 else 0)
    ax.set_title('(a) weight norm vs category frequency')
    ax.legend(loc='upper right', fontsize=8)
    if n_panels == 3:
        k = min(100, len(order) // 2)  # halves when there are fewer than 200 categories
        shades = '' if len(aps) == 1 else ' (solid: ' + ', light: '.join(
            label for _, label in aps) + ')'
        for ax, idx, title in ((axes[1, 0], order[:k], f'(b) AP of the {k} most frequent'),
                               (axes[2, 0], order[-k:], f'(c) AP of the {k} least frequent')):
            title += shades
            width = 0.8 / len(aps)
            for a_i, (ap, label) in enumerate(aps):
                vals = [ap[info['ids'][j]].get('ap_segm', ap[info['ids'][j]].get('ap_bbox'))
                        for j in idx]
                vals = np.nan_to_num(np.array(vals, dtype=float)) * 100
                colours = [GROUP_COLOURS.get(str(info['groups'][j]), '#7f7f7f') for j in idx]
                ax.bar(np.arange(len(idx)) + a_i * width, vals, width=width, color=colours,
                       alpha=1.0 if a_i == 0 else 0.5, label=label)
            ax.set_ylabel('AP (segm, else bbox) %')
            ax.set_title(title)
            handles = [plt.Rectangle((0, 0), 1, 1, color=GROUP_COLOURS[g]) for g in 'fcr']
            ax.legend(handles, [GROUP_NAMES[g] for g in 'fcr'], fontsize=8, loc='upper right')
    fig.tight_layout()
    paths = [f'{out_stem}.png', f'{out_stem}.pdf']
    for p in paths:
        fig.savefig(p, dpi=150)
    plt.close(fig)
    return paths


def run(args) -> dict:
    if len(args.checkpoints) > 2:
        raise AnalysisError('give one checkpoint, or two to compare')
    if args.per_class_ap and len(args.per_class_ap) > len(args.checkpoints):
        raise AnalysisError('one --per-class-ap file per checkpoint at most')
    out_stem = args.out or (ROOT / 'work_dirs' / 'analysis' /
                            f'{args.checkpoints[0].stem}_weight_norm')
    existing = [p for p in (Path(f'{out_stem}.{e}') for e in ('png', 'pdf', 'json'))
                if p.exists()]
    if existing and not args.force:
        raise AnalysisError(f'{existing[0]} exists; pass --force to overwrite it')
    curves, info = [], None
    labels = args.labels or [p.stem for p in args.checkpoints]
    cats = load_categories(args.ann) if args.ann else None
    for ckpt, label in zip(args.checkpoints, labels):
        state, meta = load_checkpoint(ckpt)
        classifiers = select_classifiers(state, args.key, args.stage,
                                         len(cats['ids']) if cats else None,
                                         detector_extra_rows(meta))
        num_classes = {w.shape[0] for w in classifiers.values()}
        if len(num_classes) != 1:
            raise AnalysisError(f'{ckpt}: classifiers of different sizes {sorted(num_classes)}')
        this_info = frequency_info(ckpt, num_classes.pop(), args.ann, cats)
        if info is not None and len(this_info['groups']) != len(info['groups']):
            raise AnalysisError('the two checkpoints have different class counts')
        info = info or this_info
        for key, w in classifiers.items():
            name = label if len(classifiers) == 1 else f'{label} [{key}]'
            curves.append(dict(label=name, key=key, checkpoint=str(ckpt),
                               norms=w.norm(dim=1).numpy().astype(np.float64)))
    aps = []
    for i, _ in enumerate(args.checkpoints):
        path = args.per_class_ap[i] if args.per_class_ap and i < len(args.per_class_ap) \
            else None
        aps.append((load_ap(path, info['ids']), labels[i]) if path else None)
    aps = [a for a in aps if a is not None]
    summary = []
    for c in curves:
        ap = next((a for a, lab in aps if c['label'].startswith(lab)), None)
        summary.append(dict(label=c['label'], checkpoint=c['checkpoint'], key=c['key'],
                            **summarise(c['norms'], info, ap, args.alpha)))
    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = plot(curves, info, aps, out_stem)
    order = frequency_order(info)
    record = dict(summary=summary, figure=paths,
                  categories=dict(order_most_to_least_frequent=order.tolist(),
                                  ids=list(map(int, info['ids'])),
                                  counts=None if info['counts'] is None
                                  else info['counts'].tolist()),
                  norms={c['label']: c['norms'].tolist() for c in curves})
    Path(f'{out_stem}.json').write_text(json.dumps(record, indent=1))
    return record


def print_summary(record: dict) -> None:
    for s in record['summary']:
        print(f"== {s['label']} ({s['num_classes']} classes; {s['frequency_source']})")
        if 'spearman_norm_frequency' in s:
            print(f"  Spearman(norm, frequency)  {s['spearman_norm_frequency']:+.3f}")
        for t in ('bbox', 'segm'):
            if f'spearman_norm_ap_{t}' in s:
                print(f"  Spearman(norm, AP {t}){' ' * (6 - len(t))}"
                      f"{s[f'spearman_norm_ap_{t}']:+.3f}")
        print(f"  norm ratio {s['head_tail_definition']}: {s['norm_ratio_head_tail']:.3f}")
        m = s['implied_margin_head_to_tail']
        print(f"  implied C2AM margin head->tail (alpha {m['alpha']}): mean {m['mean']:.4f} rad "
              f"({m['mean_degrees']:.2f} deg), max {m['max']:.4f} rad")
    print('wrote ' + ', '.join(record['figure']) + f" and {Path(record['figure'][0]).stem}.json")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('checkpoints', type=Path, nargs='+', metavar='CKPT')
    p.add_argument('--ann', type=Path, help='LVIS-format annotation file (training split)')
    p.add_argument('--per-class-ap', type=Path, nargs='+', help='per_class_ap.py output(s)')
    p.add_argument('--key', help='state_dict key of the classifier weight')
    p.add_argument('--stage', type=int, help='Cascade stage (default: all)')
    p.add_argument('--labels', nargs='+', help='legend labels, one per checkpoint')
    p.add_argument('--alpha', type=float, default=0.5, help='alpha for the implied margins')
    p.add_argument('--out', type=Path, help='output stem (writes .png, .pdf, .json)')
    p.add_argument('--force', action='store_true', help='overwrite existing outputs')
    args = p.parse_args(argv)
    try:
        if args.ann is not None and not args.ann.is_file():
            raise AnalysisError(f'annotation file not found: {args.ann}')
        record = run(args)
    except AnalysisError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print_summary(record)
    return 0


if __name__ == '__main__':
    sys.exit(main())
