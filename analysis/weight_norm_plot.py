"""Figure 1 of the paper from any checkpoint: classifier weight norm vs frequency (vs AP).

    python analysis/weight_norm_plot.py CKPT [CKPT2] [--ann lvis_v1_train.json]
        [--per-class-ap AP.json [AP2.json]] [--key KEY] [--stage N] [--out STEM] [--force]

CKPT: this project's detectors (CE or C2AM Mask R-CNN: the bbox classifier; Cascade: all
three stages, or --stage), any mmdet checkpoint, or a toy_mnist ``model.pth`` (zip or legacy
``torch.save`` format, loaded without running code). A second checkpoint is drawn on the same
axes (compare mode); ``--per-class-ap`` files pair with the checkpoints by position, and labels
(``--labels``, else the file names, made unique) key every entry of the json. Writes STEM.png,
STEM.pdf and STEM.json together (all three or none; an existing one only with --force) and
prints a summary: Spearman correlation of norm with frequency and with AP, the head/tail norm
ratio, and the C2AM margins these norms imply (Eq. 7, via the loss core).

Category frequencies, first found wins: ``--ann``; the training annotation file named in the
checkpoint's saved config (``meta['cfg']``, parsed, never executed) when it exists; the counts
a toy_mnist run stores beside its checkpoint (``metrics.json``); the LVIS v1 / v0.5 category
groups shipped in ``analysis/data/`` for 1203 / 1230 categories (ordered frequent, common,
rare); else index order, with a warning.

Non-finite input: a classifier row holding NaN/Inf (a diverged run) or of norm 0 is an error;
a statistic that is undefined for valid input (Spearman of a constant) is written as null.
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

from analysis.checkpoints import (  # noqa: E402
    detector_extra_rows,
    is_detector_key,
    load_checkpoint,
    select_classifiers,
)
from analysis.errors import AnalysisError  # noqa: E402
from analysis.frequency import (  # noqa: E402
    GROUP_NAMES,
    config_ann_file,
    finite_or_none,
    load_categories,
    shipped_categories,
)
from projects.c2am.c2am import ALPHA  # noqa: E402
from projects.c2am.cli import (  # noqa: E402
    existing_file,
    nonnegative_float,
    nonnegative_int,
    run_cli,
)
from projects.c2am.outputs import (  # noqa: E402
    atomic_output_files,
    check_output_files,
    dumps_json,
)

GROUP_COLOURS = {'r': '#d62728', 'c': '#ff7f0e', 'f': '#1f77b4', '?': '#7f7f7f'}


GROUP_RANK = {'f': 2, 'c': 1, 'r': 0}
AP_KEYS = ('ap_bbox', 'ap_segm')


def _warn(message: str) -> None:
    print(f'warning: {message}', file=sys.stderr)


def _row_candidates(state: dict, key: str | None, stage: int | None,
                    extra_rows: int | None) -> list[int]:
    """Possible category counts of the classifier before its rows are checked."""
    from analysis.checkpoints import classifier_keys
    keys = [key] if key is not None and key in state else classifier_keys(state)
    if stage is not None and key is None:
        keys = [k for k in keys if f'bbox_head.{stage}.' in k]
    if not keys or state[keys[0]].dim() != 2:
        return []
    rows = state[keys[0]].shape[0]
    if not is_detector_key(keys[0]):
        return [rows]
    return [rows - e for e in ((extra_rows,) if extra_rows else (1, 2))]


def find_categories(state: dict, meta: dict, args, cache: dict) -> tuple[dict | None, str]:
    """The categories of a checkpoint: --ann, else its config's annotation file, else the
    shipped LVIS metadata for 1203 / 1230 categories. ``(None, '')`` when none applies.

    ``cache`` maps annotation paths to parsed categories (LVIS v1's train json is over 1 GB:
    parse it once).
    """
    path, how = args.ann, ''
    if path is None:
        named = config_ann_file(meta.get('cfg'))
        if named is not None and named.is_file():
            path, how = named, " (named in the checkpoint's config)"
    if path is not None:
        if path not in cache:
            cache[path] = load_categories(path)
        return cache[path], f'instance counts from {path.name}{how}'
    for n in _row_candidates(state, args.key, args.stage, detector_extra_rows(meta)):
        shipped = shipped_categories(n)
        if shipped is not None:
            name, cats = shipped
            return cats, (f'{name} frequency groups shipped with the project (no counts; pass '
                          '--ann for instance counts)')
    return None, ''


def _toy_counts(ckpt: Path, num_classes: int) -> np.ndarray | None:
    metrics = ckpt.parent / 'metrics.json'  # toy_mnist stores its training counts beside
    if not metrics.is_file():
        return None
    try:
        counts = json.loads(metrics.read_text())['train_class_counts']
    except (OSError, ValueError, KeyError, TypeError):
        _warn(f'{metrics} holds no readable train_class_counts; ignored')
        return None
    if not isinstance(counts, list) or len(counts) != num_classes or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
        _warn(f'{metrics}: train_class_counts is not {num_classes} integers >= 0; ignored')
        return None
    return np.array(counts, dtype=np.int64)


def frequency_info(ckpt: Path, num_classes: int, cats: dict | None, source: str) -> dict:
    """Instance counts and r/c/f groups of the classifier's categories.

    Args:
        ckpt (Path): the checkpoint (a toy_mnist ``metrics.json`` beside it is used when no
            categories are known).
        num_classes (int): category rows of the classifier.
        cats (dict, optional): :func:`find_categories`' categories.
        source (str): how they were found (a sentence for the summary).

    Returns:
        dict: ``counts`` (or None), ``image_counts`` (or None), ``groups`` (array of
        r/c/f/?), ``names``, ``ids``, ``source``.
    """
    if cats is not None:
        return dict(counts=cats['instance_count'], image_counts=cats['image_count'],
                    groups=cats['frequency'], names=cats['names'], ids=cats['ids'],
                    source=source)
    unknown = dict(image_counts=None, groups=np.array(['?'] * num_classes),
                   names=[str(i) for i in range(num_classes)], ids=list(range(num_classes)))
    counts = _toy_counts(ckpt, num_classes)
    if counts is not None:
        return dict(counts=counts, source='training counts stored with the checkpoint '
                    '(metrics.json)', **unknown)
    _warn(f'{ckpt}: no category frequency known (no --ann, no annotation file in its config, '
          f'{num_classes} classes match no shipped LVIS list): classes plotted in index order')
    return dict(counts=None, source='no frequency known: classes plotted in index order '
                '(pass --ann)', **unknown)


def frequency_order(info: dict) -> np.ndarray:
    """Class indices from most to least frequent: by counts, else by group (frequent, common,
    rare; index order inside a group), else index order."""
    if info['counts'] is None:
        ranks = np.array([GROUP_RANK.get(str(g), 0) for g in info['groups']])
        return np.argsort(-ranks, kind='stable')
    secondary = info['image_counts'] if info['image_counts'] is not None else info['counts']
    return np.lexsort((-secondary, -info['counts']))


def head_tail(info: dict, order: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    groups = info['groups']
    if (groups == 'f').any() and (groups == 'r').any():
        return np.flatnonzero(groups == 'f'), np.flatnonzero(groups == 'r'), 'frequent / rare'
    third = max(1, len(order) // 3)
    return order[:third], order[-third:], 'most / least frequent third'


def _spearman(a, b) -> float | None:
    from scipy.stats import spearmanr
    if len(a) < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return None  # undefined (constant input): null in the json, not NaN
    return finite_or_none(spearmanr(a, b)[0])


def summarise(norms: np.ndarray, info: dict, ap: dict | None, alpha: float) -> dict:
    import torch

    from projects.c2am.c2am import c2am_margins
    order = frequency_order(info)
    head, tail, how = head_tail(info, order)
    out = dict(num_classes=int(len(norms)), frequency_source=info['source'],
               head_tail_definition=how,
               norm_ratio_head_tail=float(norms[head].mean() / norms[tail].mean()),
               norm_mean=float(norms.mean()), norm_min=float(norms.min()),
               norm_max=float(norms.max()))
    if info['counts'] is not None:
        out['spearman_norm_frequency'] = _spearman(norms, info['counts'])
    elif (info['groups'] != '?').any():
        ranks = np.array([GROUP_RANK.get(str(g), 0) for g in info['groups']])
        out['spearman_norm_frequency_group'] = _spearman(norms, ranks)
    margins = c2am_margins(torch.as_tensor(norms, dtype=torch.float64),
                           torch.as_tensor(head), alpha=alpha)[:, torch.as_tensor(tail)]
    out['implied_margin_head_to_tail'] = dict(alpha=alpha, mean=float(margins.mean()),
                                              max=float(margins.max()),
                                              mean_degrees=float(np.degrees(float(margins.mean()))))
    if ap is not None:
        for t in ('bbox', 'segm'):
            vals = np.array([_ap_value(ap.get(cid, {}), f'ap_{t}') for cid in info['ids']],
                            dtype=float)
            ok = np.isfinite(vals)
            if ok.sum() > 2:
                out[f'spearman_norm_ap_{t}'] = _spearman(norms[ok], vals[ok])
    return out


def _ap_value(entry: dict, key: str) -> float:
    value = entry.get(key)
    return np.nan if value is None else float(value)


def load_ap(path: Path, ids: list | None = None) -> dict:
    """A ``per_class_ap.py`` output: ``{category id: {'ap_bbox': .., 'ap_segm': ..}}``.

    AP values are numbers in [0, 1]; null or NaN means "no AP" (category absent from val).

    Args:
        path (Path): the file.
        ids (list, optional): category ids it must cover (those of the classifier).

    Raises:
        AnalysisError: unreadable, of another kind, out-of-range values, or categories of the
            classifier missing.
    """
    what = f'{path}: not a per_class_ap.py output'
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise AnalysisError(f'{what} ({reason})') from None
    cats = data.get('categories') if isinstance(data, dict) else None
    if not isinstance(cats, dict):
        raise AnalysisError(f'{what} (no "categories" object)')
    ap = {}
    for k, v in cats.items():
        try:
            cid = int(k)
        except ValueError:
            raise AnalysisError(f'{what} (category key {k!r} is not an id)') from None
        if not isinstance(v, dict):
            raise AnalysisError(f'{what} (category {k}: expected an object)')
        for key in AP_KEYS:
            x = v.get(key)
            if x is None or (isinstance(x, float) and np.isnan(x)):
                continue
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 <= x <= 1:
                raise AnalysisError(f'{what} (category {k}: {key} {x!r} is not in [0, 1])')
        ap[cid] = v
    require_ids(path, ap, ids or [])
    return ap


def require_ids(path: Path, ap: dict, ids: list) -> None:
    """Raise :class:`AnalysisError` unless the AP file ``path`` covers every id of ``ids``."""
    missing = [i for i in ids if i not in ap]
    if missing:
        raise AnalysisError(f'{path} does not cover the categories of the classifier '
                            f'({len(missing)} missing, e.g. id {missing[0]}); was it computed '
                            'on the same dataset?')


def unique_labels(paths: list[Path], labels: list[str] | None) -> list[str]:
    """One distinct label per checkpoint: ``labels`` as given, else the file names (with
    their folder, then a number, where names repeat: two runs' ``model.pth``)."""
    if labels is not None:
        if len(labels) != len(paths):
            raise AnalysisError(f'--labels gives {len(labels)} label(s) for {len(paths)} '
                                'checkpoint(s); give one per checkpoint')
        if len(set(labels)) != len(labels):
            raise AnalysisError(f'--labels repeats a label ({labels}); labels must differ')
        return list(labels)
    for candidate in ([p.stem for p in paths],
                      [f'{p.absolute().parent.name}/{p.stem}' for p in paths]):
        if len(set(candidate)) == len(candidate):
            return candidate
    return [f'{p.stem} ({i + 1})' for i, p in enumerate(paths)]


def plot(curves: list[dict], info: dict, aps: list, png: Path, pdf: Path) -> None:
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
    grouped = not known and (info['groups'] != '?').any()
    ax.set_xlabel('categories sorted by training instances (most to least)' if known
                  else 'categories by frequency group (frequent, common, rare)' if grouped
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
                vals = []
                for j in idx:
                    entry = ap[info['ids'][j]]
                    segm = _ap_value(entry, 'ap_segm')
                    vals.append(segm if np.isfinite(segm) else _ap_value(entry, 'ap_bbox'))
                vals = np.nan_to_num(np.array(vals, dtype=float)) * 100
                colours = [GROUP_COLOURS.get(str(info['groups'][j]), '#7f7f7f') for j in idx]
                ax.bar(np.arange(len(idx)) + a_i * width, vals, width=width, color=colours,
                       alpha=1.0 if a_i == 0 else 0.5, label=label)
            ax.set_ylabel('AP (segm, else bbox) %')
            ax.set_title(title)
            handles = [plt.Rectangle((0, 0), 1, 1, color=GROUP_COLOURS[g]) for g in 'fcr']
            ax.legend(handles, [GROUP_NAMES[g] for g in 'fcr'], fontsize=8, loc='upper right')
    fig.tight_layout()
    for path in (png, pdf):
        fig.savefig(path, dpi=150)
    plt.close(fig)


def output_paths(out: Path | None, first: Path) -> list[Path]:
    """STEM.png, STEM.pdf, STEM.json (``--out fig.png`` means the stem ``fig``)."""
    stem = out if out is not None else \
        ROOT / 'work_dirs' / 'analysis' / f'{first.stem}_weight_norm'
    if stem.suffix in ('.png', '.pdf', '.json'):
        stem = stem.with_suffix('')
    return [Path(f'{stem}.{e}') for e in ('png', 'pdf', 'json')]


def run(args) -> dict:
    if len(args.checkpoints) > 2:
        raise AnalysisError('give one checkpoint, or two to compare')
    if args.per_class_ap and len(args.per_class_ap) > len(args.checkpoints):
        raise AnalysisError('one --per-class-ap file per checkpoint at most')
    if args.key is not None and args.stage is not None:
        raise AnalysisError('--key and --stage exclude each other: --key names one weight')
    labels = unique_labels(args.checkpoints, args.labels)
    paths = output_paths(args.out, args.checkpoints[0])
    check_output_files(paths, force=args.force)  # before any work
    ap_files = [load_ap(path) for path in args.per_class_ap or []]  # their format, early
    curves, info, cache = [], None, {}
    for index, (ckpt, label) in enumerate(zip(args.checkpoints, labels)):
        state, meta = load_checkpoint(ckpt)
        cats, source = find_categories(state, meta, args, cache)
        classifiers = select_classifiers(state, args.key, args.stage,
                                         len(cats['ids']) if cats else None,
                                         detector_extra_rows(meta))
        num_classes = {w.shape[0] for w in classifiers.values()}
        if len(num_classes) != 1:
            raise AnalysisError(f'{ckpt}: classifiers of different sizes {sorted(num_classes)}')
        this_info = frequency_info(ckpt, num_classes.pop(), cats, source)
        if info is not None and len(this_info['groups']) != len(info['groups']):
            raise AnalysisError(f'the two checkpoints have different class counts '
                                f"({len(info['groups'])} and {len(this_info['groups'])})")
        info = info or this_info
        for key, w in classifiers.items():
            name = label if len(classifiers) == 1 else f'{label} [{key}]'
            curves.append(dict(label=name, key=key, checkpoint=str(ckpt), index=index,
                               norms=w.norm(dim=1).numpy().astype(np.float64)))
    aps = [None] * len(args.checkpoints)  # paired with the checkpoints by position
    for i, path in enumerate(args.per_class_ap or []):
        require_ids(path, ap_files[i], info['ids'])
        aps[i] = (ap_files[i], labels[i])
    summary = []
    for c in curves:
        ap = aps[c['index']][0] if aps[c['index']] is not None else None
        summary.append(dict(label=c['label'], checkpoint=c['checkpoint'], key=c['key'],
                            **summarise(c['norms'], info, ap, args.alpha)))
    order = frequency_order(info)
    record = dict(summary=summary, figure=[str(p) for p in paths[:2]],
                  categories=dict(order_most_to_least_frequent=order.tolist(),
                                  ids=list(map(int, info['ids'])),
                                  groups=[str(g) for g in info['groups']],
                                  counts=None if info['counts'] is None
                                  else info['counts'].tolist()),
                  norms={c['label']: c['norms'].tolist() for c in curves})
    text = dumps_json(record, indent=1)
    with atomic_output_files(paths, force=args.force) as (png, pdf, js):
        plot(curves, info, [a for a in aps if a is not None], png, pdf)
        js.write_text(text)
    return record


def print_summary(record: dict) -> None:
    for s in record['summary']:
        print(f"== {s['label']} ({s['num_classes']} classes; {s['frequency_source']})")
        rows = [('spearman_norm_frequency', 'Spearman(norm, frequency)  '),
                ('spearman_norm_frequency_group', 'Spearman(norm, r/c/f group)'),
                ('spearman_norm_ap_bbox', 'Spearman(norm, AP bbox)    '),
                ('spearman_norm_ap_segm', 'Spearman(norm, AP segm)    ')]
        for key, text in rows:
            if key in s:
                value = 'undefined (constant input)' if s[key] is None else f'{s[key]:+.3f}'
                print(f'  {text} {value}')
        print(f"  norm ratio {s['head_tail_definition']}: {s['norm_ratio_head_tail']:.3f}")
        m = s['implied_margin_head_to_tail']
        print(f"  implied C2AM margin head->tail (alpha {m['alpha']}): mean {m['mean']:.4f} rad "
              f"({m['mean_degrees']:.2f} deg), max {m['max']:.4f} rad")
    print('wrote ' + ', '.join(record['figure']) + ' and '
          + str(Path(record['figure'][0]).with_suffix('.json')))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('checkpoints', type=existing_file, nargs='+', metavar='CKPT')
    p.add_argument('--ann', type=existing_file,
                   help='LVIS-format annotation file (training split)')
    p.add_argument('--per-class-ap', type=existing_file, nargs='+',
                   help='per_class_ap.py output(s), one per checkpoint, in the same order')
    p.add_argument('--key', help='state_dict key of the classifier weight')
    p.add_argument('--stage', type=nonnegative_int, help='Cascade stage (default: all)')
    p.add_argument('--labels', nargs='+', help='legend labels, one per checkpoint')
    p.add_argument('--alpha', type=nonnegative_float, default=ALPHA,
                   help='alpha for the implied margins')
    p.add_argument('--out', type=Path, help='output stem (writes .png, .pdf, .json)')
    p.add_argument('--force', action='store_true', help='overwrite existing outputs')
    args = p.parse_args(argv)
    record = run(args)
    print_summary(record)
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
