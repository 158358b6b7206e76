"""Where the frequent-category AP goes: per-category AP and classifier norms of paired
LT-Digits runs (a method against a baseline, seed by seed), and test-time score calibration.

    python benchmarks/apf_study.py RUNS [--seeds 0 1 2] [--baseline ce] [--methods c2am]
        [--test-scales 15 60] [--out RUNS/apf_study] [--data-root data/lt_digits] [--force]

RUNS is a ``benchmarks/lt_detection.py --out`` folder; its finished runs ``<method>_s<seed>``
(``result.json``) are re-tested once with ``tools/test.py`` under the settings they trained with,
writing LVIS-format detections, and evaluated per category (``analysis/per_class_ap.py``, mask
and box). ``--test-scales`` re-tests the cosine-classifier methods with another softmax scale at
test time only (the weights are the trained ones): a temperature calibration of their scores.

Per seed and frequency group (r / c / f) it reports: the method's AP change against the
baseline (mean over the group = the change of APr / APc / APf), how many categories lose, the
categories whose classifier norm is more than twice the median ("spikes"), the Spearman
correlation of the method's norm with the per-category AP change, and whether the spiking
categories are the same across seeds. Writes ``apf_study.json`` (every number), ``apf_study.md``
and ``apf_study.png`` / ``.pdf`` (norm against AP change, one panel per group) into ``--out``.

Resumable: each test is kept in ``OUT/tests/<run>[@s<scale>]/`` once its per-category AP is
written (an interrupted one leaves only a temporary folder, removed on the next start);
``--force`` re-writes the report, never the kept tests.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analysis.checkpoints import load_checkpoint, select_classifiers  # noqa: E402
from analysis.per_class_ap import per_class_ap  # noqa: E402
from lt_digits.experiments import (  # noqa: E402
    METHODS,
    RESULT_MARKER,
    checkpoint_of,
    local_options,
    tool_env,
)
from projects.c2am.cli import (  # noqa: E402
    ArgumentParser,
    UserError,
    nonnegative_int,
    positive_float,
    run_cli,
)
from projects.c2am.mmdet_plugin.classifier_norm_hook import (  # noqa: E402
    SPIKE,
    average_ranks,
)
from projects.c2am.mmdet_plugin.classifier_norm_hook import spearman as hook_spearman  # noqa: E402,E501
from projects.c2am.outputs import (  # noqa: E402
    atomic_output_dir,
    atomic_output_files,
    check_output_files,
    dumps_json,
    write_atomic,
)

TOOL = 'benchmarks/apf_study.py'
GROUPS = ('r', 'c', 'f')
SCALE_OPTION = 'model.roi_head.bbox_head.loss_cls.scale'
PER_CATEGORY = 'per_category.json'
LOG_TOLERANCE = 0.15  # AP points: the training log rounds AP to 3 decimals of a fraction


# ---------------------------------------------------------------- statistics

def spearman(a, b) -> float | None:
    """Spearman's rho (the hook's, ties at their average rank); ``None`` below 3 pairs or for
    a constant series."""
    if len(a) < 3:
        return None
    rho = hook_spearman(torch.as_tensor(np.asarray(a, dtype=float)),
                        average_ranks(torch.as_tensor(np.asarray(b, dtype=float))))
    return rho if rho == rho else None


def paired_seed(norms: np.ndarray, ap: np.ndarray, base_ap: np.ndarray,
                groups: np.ndarray) -> dict:
    """One seed of a method against the baseline, per frequency group.

    Args:
        norms (ndarray): ``[C]`` the method's classifier norms.
        ap, base_ap (ndarray): ``[C]`` per-category AP (percent) of the method and of the
            baseline; NaN where a category has no valid AP (left out).
        groups (ndarray): ``[C]`` frequency group of each category (``'r'``/``'c'``/``'f'``).

    Returns:
        dict: group -> ``n``, ``ap``, ``base_ap`` (group means), ``delta`` (their difference),
        ``losing`` (categories whose AP drops), ``spikes`` (indices with a norm above
        ``SPIKE`` x the median), ``delta_spikes`` / ``delta_rest`` (mean change of those and
        of the others), ``spearman_norm_delta``.
    """
    spike = norms > SPIKE * np.median(norms)
    out = {}
    for g in GROUPS:
        keep = (groups == g) & np.isfinite(ap) & np.isfinite(base_ap)
        delta = ap[keep] - base_ap[keep]
        s = spike[keep]
        out[g] = dict(
            n=int(keep.sum()),
            ap=float(ap[keep].mean()) if keep.any() else None,
            base_ap=float(base_ap[keep].mean()) if keep.any() else None,
            delta=float(delta.mean()) if keep.any() else None,
            losing=int((delta < 0).sum()),
            spikes=[int(i) for i in np.flatnonzero(keep & spike)],
            delta_spikes=float(delta[s].mean()) if s.any() else None,
            delta_rest=float(delta[~s].mean()) if (~s).any() else None,
            spearman_norm_delta=spearman(norms[keep], delta))
    return out


def spike_overlap(spikes_by_seed: list[set]) -> float | None:
    """Mean Jaccard overlap of the spiking categories between every pair of seeds."""
    pairs = [(a, b) for i, a in enumerate(spikes_by_seed) for b in spikes_by_seed[i + 1:]]
    values = [len(a & b) / len(a | b) for a, b in pairs if a | b]
    return statistics.mean(values) if values else None


# ---------------------------------------------------------------- runs and tests

def finished_run(runs: Path, method: str, seed: int) -> tuple[Path, dict]:
    """A finished run's folder and its record (``settings`` and the logged ``results``).

    Raises:
        UserError: the run is not there or not finished.
    """
    folder = runs / 'runs' / f'{method}_s{seed}'
    marker = folder / RESULT_MARKER
    if not marker.is_file():
        raise UserError(f'{folder}: no finished run ({RESULT_MARKER} missing); train it with '
                        f'benchmarks/lt_detection.py --methods {method} --seeds {seed} '
                        f'--out {runs}')
    try:
        record = json.loads(marker.read_text())
        record = dict(settings=record['settings'], results=record['results'])
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f'{marker}: not a result this benchmark wrote') from None
    return folder, record


def checkpoint(folder: Path) -> Path:
    """The run's last checkpoint."""
    try:
        return checkpoint_of(folder)
    except FileNotFoundError:
        raise UserError(f'{folder}: the run kept no checkpoint') from None


def test_name(method: str, seed: int, scale: float | None) -> str:
    return f'{method}_s{seed}' + ('' if scale is None else f'@s{scale:g}')


def run_test(folder: Path, record: dict, dest: Path, scale: float | None,
             data_root: Path) -> None:
    """``tools/test.py`` on the run's checkpoint with its training settings (one CPU thread),
    then per-category AP; kept in ``dest`` (written atomically)."""
    settings = record['settings']
    options = local_options(settings['options'], data_root)
    if scale is not None:
        options[SCALE_OPTION] = scale
    ann = options.get('val_evaluator.ann_file')
    with atomic_output_dir(dest, force=False) as tmp:
        cmd = [sys.executable, str(ROOT / 'tools' / 'test.py'), str(ROOT / settings['config']),
               str(checkpoint(folder)), '--work-dir', str(tmp / 'test'),
               '--outfile-prefix', str(tmp / 'results'),
               '--cfg-options', *[f'{k}={v}' for k, v in options.items()]]
        with open(tmp / 'test.log', 'w') as log:
            code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=tool_env(1),
                                   cwd=ROOT)
        if code != 0:
            tail = (tmp / 'test.log').read_text(errors='replace').strip().splitlines()[-1:]
            raise UserError(f'tools/test.py failed for {dest.name} (exit {code}): '
                            f'{tail[0] if tail else "no output"}')
        result = per_class_ap(ann, tmp / 'results.segm.json')
        write_atomic(tmp / PER_CATEGORY, dumps_json(result, indent=1))


def tested(folder: Path, record: dict, tests: Path, name: str, scale: float | None,
           data_root: Path) -> dict:
    """The kept per-category AP of a test, running it first when it is not kept yet."""
    dest = tests / name
    if not (dest / PER_CATEGORY).is_file():
        print(f'testing {name} ...', flush=True)
        run_test(folder, record, dest, scale, data_root)
    return json.loads((dest / PER_CATEGORY).read_text())


def check_against_log(record: dict, result: dict, name: str) -> None:
    """The re-test must give the APr / APc / APf (mask) the run logged when it trained.

    Raises:
        UserError: a difference beyond the log's rounding (the checkpoint, the data or the
            evaluation changed since).
    """
    logged = record['results']
    summary = result['summary'].get('segm') or {}
    for key in ('APr', 'APc', 'APf'):
        if summary.get(key) is None or logged.get(key) is None:
            continue
        if abs(100 * summary[key] - logged[key]) > LOG_TOLERANCE:
            raise UserError(f'{name}: the re-test gives {key} {100 * summary[key]:.1f}, the run '
                            f'logged {logged[key]:.1f}; its checkpoint, data or evaluation '
                            'changed since it trained')


def category_arrays(result: dict) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """``(ids, groups, mask AP %, box AP %)`` in the order of the result's categories."""
    cats = result['categories']
    ids = sorted(int(k) for k in cats)
    entry = [cats[str(i)] if str(i) in cats else cats[i] for i in ids]

    def ap(key):
        return np.array([np.nan if e.get(key) is None else 100 * e[key] for e in entry])

    return ids, np.array([e['frequency'] for e in entry]), ap('ap_segm'), ap('ap_bbox')


def classifier_norms(folder: Path, num_classes: int) -> np.ndarray:
    """``[C]`` norms of the run's box classifier (background / objectness rows dropped)."""
    state, meta = load_checkpoint(checkpoint(folder))
    weights = select_classifiers(state, num_classes=num_classes)
    if len(weights) != 1:
        raise UserError(f'{folder}: expected one box classifier, found {sorted(weights)}')
    return next(iter(weights.values())).norm(dim=1).numpy()


# ---------------------------------------------------------------- report

def fmt(value, spec='+.1f') -> str:
    return '-' if value is None else format(value, spec)


def summarise_method(per_seed: dict) -> dict:
    """Over seeds: mean change per group with the seeds that share its sign, mean Spearman,
    spike counts and the spike overlap between seeds."""
    out = {}
    for g in GROUPS:
        deltas = [s[g]['delta'] for s in per_seed.values() if s[g]['delta'] is not None]
        rhos = [s[g]['spearman_norm_delta'] for s in per_seed.values()
                if s[g]['spearman_norm_delta'] is not None]
        mean = statistics.mean(deltas) if deltas else None
        out[g] = dict(
            delta=mean, same_sign=sum((d > 0) == (mean > 0) for d in deltas if d) if deltas
            else 0, seeds=len(deltas),
            spearman_norm_delta=statistics.mean(rhos) if rhos else None,
            spearman_negative=sum(r < 0 for r in rhos),
            spikes=[len(s[g]['spikes']) for s in per_seed.values()])
    out['spike_overlap'] = spike_overlap(
        [{i for g in GROUPS for i in s[g]['spikes']} for s in per_seed.values()])
    return out


def markdown(doc: dict) -> str:
    lines = [f"`{doc['command']}`; baseline `{doc['baseline']}`, seeds {doc['seeds']}, "
             f"mask AP per category, spikes: norm > {SPIKE:g} x median.", '',
             '| method | seed | APr | APc | APf | losing r/c/f | spikes r/c/f | '
             'spike vs rest ΔAP (f) | Spearman(norm, ΔAP) r / c / f |',
             '|---|---|---|---|---|---|---|---|---|']
    for name, entry in doc['methods'].items():
        for seed, s in entry['per_seed'].items():
            lines.append(
                f"| {name} | {seed} | " + ' | '.join(
                    f"{fmt(s[g]['ap'], '.1f')} ({fmt(s[g]['delta'])})" for g in GROUPS)
                + ' | ' + '/'.join(f"{s[g]['losing']} of {s[g]['n']}" for g in GROUPS)
                + ' | ' + '/'.join(str(len(s[g]['spikes'])) for g in GROUPS)
                + f" | {fmt(s['f']['delta_spikes'])} vs {fmt(s['f']['delta_rest'])} | "
                + ' / '.join(fmt(s[g]['spearman_norm_delta'], '+.2f') for g in GROUPS) + ' |')
        m = entry['summary']
        lines.append(
            f"| {name} | mean | " + ' | '.join(
                f"({fmt(m[g]['delta'])}, {m[g]['same_sign']}/{m[g]['seeds']})" for g in GROUPS)
            + ' | | spike overlap between seeds '
            + fmt(m['spike_overlap'], '.2f') + ' | | '
            + ' / '.join(fmt(m[g]['spearman_norm_delta'], '+.2f') for g in GROUPS) + ' |')
    lines += ['', 'APr/APc/APf: the method (its change against the baseline); mean rows: mean '
              'change, seeds sharing its sign. Spearman < 0: larger norms lose more AP.']
    return '\n'.join(lines) + '\n'


def plot(doc: dict, png: Path, pdf: Path) -> None:
    """Norm / median against the per-category AP change, one panel per frequency group: a
    colour per method (as trained; the test-scale variants are in the tables), a marker per
    seed."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharey=True)
    markers = 'os^dv<>'
    trained = [name for name in doc['methods'] if '@' not in name]
    for mi, name in enumerate(trained):
        for si, (seed, pts) in enumerate(doc['methods'][name]['points'].items()):
            groups = np.array(pts['groups'])
            rel = np.array(pts['norm_over_median'])
            delta = np.array([np.nan if d is None else d for d in pts['delta']])
            for ax, g in zip(axes, GROUPS):
                keep = groups == g
                ax.scatter(rel[keep], delta[keep], s=14, alpha=0.6, marker=markers[si % 7],
                           color=f'C{mi}', label=f'{name} seed {seed}' if g == 'r' else None)
    for ax, g in zip(axes, GROUPS):
        ax.axhline(0, color='0.6', lw=0.8)
        ax.axvline(SPIKE, color='0.6', lw=0.8, ls='--')
        ax.set_xscale('log')
        ax.xaxis.set_major_locator(FixedLocator([0.25, 0.5, 1, 2, 4, 8, 16]))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_xlabel('classifier norm / median (all categories)')
        ax.set_title({'r': 'rare', 'c': 'common', 'f': 'frequent'}[g])
    axes[0].set_ylabel(f"mask AP change vs {doc['baseline']}")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    # the outputs were checked (--force) before anything was computed
    with atomic_output_files([png, pdf], force=True) as (png_tmp, pdf_tmp):
        fig.savefig(png_tmp, dpi=150)
        fig.savefig(pdf_tmp)
    plt.close(fig)


# ---------------------------------------------------------------- CLI

def build_parser() -> ArgumentParser:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('runs', type=Path, help='a benchmarks/lt_detection.py --out folder')
    p.add_argument('--seeds', type=nonnegative_int, nargs='+', default=[0, 1, 2])
    p.add_argument('--baseline', default='ce', help='method to compare against (default: ce)')
    p.add_argument('--methods', nargs='+', default=['c2am'], help='methods (default: c2am)')
    p.add_argument('--test-scales', type=positive_float, nargs='*', default=[],
                   help='also test the cosine-classifier methods with these softmax scales')
    p.add_argument('--out', type=Path, help='output folder (default: RUNS/apf_study)')
    p.add_argument('--data-root', type=Path, default=ROOT / 'data' / 'lt_digits',
                   help='the LT-Digits the runs trained on (default: data/lt_digits)')
    p.add_argument('--force', action='store_true', help='re-write an existing report')
    return p


def uses_cosine_head(method: str) -> bool:
    """Whether the method's detector scores with ``softmax(scale * cos)`` (C2AMBBoxHead)."""
    from mmengine.config import Config
    cfg = Config.fromfile(ROOT / METHODS[method].config)
    return cfg.model.roi_head.bbox_head.type == 'C2AMBBoxHead'


def check_methods(args) -> None:
    for name in [args.baseline, *args.methods]:
        if name not in METHODS:
            raise UserError(f'unknown method {name!r}; methods: {", ".join(METHODS)}')
    if args.baseline in args.methods:
        raise UserError(f'{args.baseline!r} is the baseline; compare other methods to it')
    if not args.runs.is_dir():
        raise UserError(f'{args.runs}: not a directory')


def _main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    check_methods(args)
    out = args.out or args.runs / 'apf_study'
    files = [out / f'apf_study.{ext}' for ext in ('json', 'md', 'png', 'pdf')]
    check_output_files(files, force=args.force)
    seeds = list(dict.fromkeys(args.seeds))
    runs = {(m, s): finished_run(args.runs, m, s)
            for m in [args.baseline, *args.methods] for s in seeds}  # all checked first
    tests = out / 'tests'
    variants = [(m, None) for m in args.methods]
    variants += [(m, x) for m in args.methods if args.test_scales and uses_cosine_head(m)
                 for x in args.test_scales]
    base = {}
    for s in seeds:
        name = test_name(args.baseline, s, None)
        result = tested(*runs[args.baseline, s], tests, name, None, args.data_root)
        check_against_log(runs[args.baseline, s][1], result, name)
        base[s] = category_arrays(result)
    doc = dict(tool=TOOL, command=' '.join(['python', TOOL, *(argv or sys.argv[1:])]),
               baseline=args.baseline, seeds=seeds, spike=SPIKE, methods={})
    for method, scale in variants:
        name = method if scale is None else f'{method}@s{scale:g}'
        per_seed, points = {}, {}
        for s in seeds:
            folder, record = runs[method, s]
            result = tested(folder, record, tests, test_name(method, s, scale), scale,
                            args.data_root)
            if scale is None:
                check_against_log(record, result, test_name(method, s, scale))
            ids, groups, ap, _ = category_arrays(result)
            if ids != base[s][0]:
                raise UserError(f'{name} seed {s} and {args.baseline} were evaluated on '
                                'different categories')
            norms = classifier_norms(folder, len(ids))
            per_seed[s] = paired_seed(norms, ap, base[s][2], groups)
            delta = ap - base[s][2]
            points[s] = dict(groups=groups.tolist(),
                             norm_over_median=(norms / np.median(norms)).tolist(),
                             delta=[None if not np.isfinite(d) else float(d) for d in delta])
        doc['methods'][name] = dict(per_seed=per_seed, summary=summarise_method(per_seed),
                                    points=points)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(files[0], dumps_json(doc, indent=1))
    write_atomic(files[1], markdown(doc))
    plot(doc, files[2], files[3])
    print(markdown(doc))
    print(f'wrote {", ".join(map(str, files))}')
    return 0


def main(argv=None) -> int:
    """Run the CLI; bad input prints one line ``error: ...`` and returns 2."""
    return run_cli(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
