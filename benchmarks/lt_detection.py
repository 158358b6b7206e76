"""LT-Digits benchmark: C2AM against its peers and its own ablations, several training seeds, on
the CPU; resumable.

    python benchmarks/lt_detection.py [--methods peers] [--seeds 0 1 2] [--iters 700]
        [--parallel 2] [--out work_dirs/benchmarks/lt_detection] [--cfg-options K=V ...]
        [--baselines ce c2am] [--ap-fixed] [--dry-run] [--force] [--render-only]

``--methods`` takes method names and groups (``lt_digits/experiments.py``, METHODS and
METHOD_GROUPS): ``peers`` (CE, cosine, Seesaw, C2AM, C2AM with background margins, EQLv2,
Federated loss, RFS with CE and with C2AM, EQL), ``table3`` (s), ``table4`` (alpha), ``table5``
(fixed margin), ``ablations`` (all three), ``apf`` (CE, the cosine control, C2AM, background
inside the margins, and two remedies for C2AM's frequent-category AP: norms capped for Eq. 7,
classifier weight decay; C2AM and the cosine classifier at s = 10). Each run is
``tools/train.py`` on a ``configs/lt_digits/*`` config (identical but for the classifier loss /
head, or the sampler for RFS) plus the variant's cfg-options, followed by LVISMetric on the val
split, in ``OUT/runs/<method>_s<seed>/``, ``--parallel`` runs at a time with one CPU thread
each.

Resuming: a run is finished when its folder holds ``result.json`` (written atomically once its
metrics were read and checked); a rerun of the same command skips it. A folder without it (an
interrupted run) is cleared and the run restarted, but only if it holds nothing but what the
run writes; anything else in the way stops the benchmark before it starts. ``--force``
re-trains finished runs too. Runs record the paths under the data root as ``{data_root}/...``,
so a sweep recorded elsewhere (another clone, another ``--data-root``) resumes too; finished
runs recorded with absolute paths get their records rewritten in that form. The report
(``results.json``, ``table.md``) is re-written from every finished run of the requested methods
and seeds: mean ± std, and for each method against each baseline (``--baselines``; by default
CE and C2AM, those of them requested) the per-seed paired difference of AP, APr, APc, APf with
its sign consistency ("+3.1, 3/3": mean difference, seeds whose difference has that sign).
``--ap-fixed`` also re-tests every finished run that kept its checkpoint under the AP-fixed
settings (``lt_digits/ap_fixed.py``; once per run, kept as ``ap_fixed.json`` in its folder) and
adds AP-fixed tables to the report.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._report import (  # noqa: E402
    add_report_arguments,
    check_report,
    read_report,
    write_report,
)
from lt_digits.ap_fixed import (  # noqa: E402
    AP_FIXED_KEYS,
    has_checkpoint,
    load_ap_fixed,
    measure_ap_fixed,
)
from lt_digits.experiments import (  # noqa: E402
    METHOD_GROUPS,
    METHODS,
    RESULT_MARKER,
    TrainJob,
    ensure_lt_digits,
    expand_methods,
    finish_run,
    job_options,
    load_result,
    make_record_portable,
    markdown_table,
    run_parallel,
    run_state,
    start_run,
)
from projects.c2am.cli import (  # noqa: E402
    UserError,
    nonnegative_int,
    positive_int,
    run_cli,
)

TOOL = 'benchmarks/lt_detection.py'
COLUMNS = ('AP mask', 'AP box', 'APr', 'APc', 'APf', 'APr box', 'norm f/r')
PAIRED = ('AP mask', 'APr', 'APc', 'APf', 'AP box')
AP_FIXED_COLUMNS = tuple(AP_FIXED_KEYS)
# the AP-fixed table: each box AP beside its AP-fixed, on the same (measured) runs
AP_FIXED_TABLE = tuple(c for fixed in AP_FIXED_COLUMNS
                       for c in (fixed.replace('-fixed', ''), fixed))
BASELINES = ('ce', 'c2am')
LEGACY = {'c2am-nobg': 'c2am'}  # the recorded README run's name for today's default


def method_list(text: str) -> str:
    """argparse check: a method or group name."""
    name = LEGACY.get(text, text)
    if name not in METHODS and name not in METHOD_GROUPS:
        raise argparse.ArgumentTypeError(
            f'unknown method {text!r}; methods: {", ".join(METHODS)}; groups: '
            f'{", ".join(METHOD_GROUPS)}')
    return name


def method_name(text: str) -> str:
    """argparse check: a method name (not a group)."""
    name = LEGACY.get(text, text)
    if name not in METHODS:
        raise argparse.ArgumentTypeError(
            f'unknown method {text!r}; methods: {", ".join(METHODS)}')
    return name


def cfg_option(text: str) -> str:
    """argparse check: ``KEY=VALUE``."""
    if '=' not in text or text.startswith('='):
        raise argparse.ArgumentTypeError(f'expected KEY=VALUE, got {text!r}')
    return text


def plan(methods: list[str], seeds: list[int], args) -> list[TrainJob]:
    """One job per method and seed, in seed-major order (every method gets seed 0 first)."""
    extra = dict(opt.split('=', 1) for opt in args.cfg_options)
    return [TrainJob(f'{m}_s{seed}', METHODS[m].config, args.out / 'runs' / f'{m}_s{seed}',
                     job_options(METHODS[m], args.data_root, args.iters, seed) | extra)
            for seed in seeds for m in methods]


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample std; no std (``None``) for a single value."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None


def summarise(runs: dict, methods: list[str], seeds: list[int],
              columns: tuple = COLUMNS, require: str | None = None) -> dict:
    """Mean ± std per method over the finished seeds, and the train step time vs CE.

    Args:
        runs (dict): ``<method>_s<seed>`` -> results of the finished runs.
        columns (tuple): the columns.
        require (str, optional): only runs that have this column count (AP-fixed is measured
            on the runs that kept a checkpoint).

    Returns:
        dict: method -> column -> ``(mean, std)`` (``n`` seeds, ``step vs CE``).
    """
    table = {}
    ce = [runs[f'ce_s{s}']['step_s'] for s in seeds
          if f'ce_s{s}' in runs and runs[f'ce_s{s}'].get('step_s') is not None]
    for method in methods:
        rows = [runs[f'{method}_s{s}'] for s in seeds if f'{method}_s{s}' in runs
                and (require is None or runs[f'{method}_s{s}'].get(require) is not None)]
        if not rows:
            continue
        entry = {'n': len(rows)}
        for c in columns:
            vals = [r[c] for r in rows if r.get(c) is not None]
            if vals:
                entry[c] = _mean_std(vals)
        steps = [r['step_s'] for r in rows if r.get('step_s') is not None]
        if ce and steps:
            entry['step vs CE'] = statistics.mean(steps) / statistics.mean(ce)
        table[method] = entry
    return table


def paired(runs: dict, methods: list[str], seeds: list[int], baseline: str,
           columns: tuple = PAIRED) -> dict:
    """Per-seed paired differences ``method - baseline`` on the seeds both have ``columns``
    for (finished; for AP-fixed: measured).

    Returns:
        dict: method -> column -> ``{'mean', 'per_seed', 'consistent', 'n'}``, where
        ``consistent`` counts the seeds whose difference has the sign of the mean (a zero
        difference never counts).
    """
    out = {}
    for method in methods:
        if method == baseline:
            continue
        both = [s for s in seeds if all(runs.get(f'{m}_s{s}', {}).get(c) is not None
                                        for m in (method, baseline) for c in columns)]
        if not both:
            continue
        entry = {}
        for c in columns:
            diffs = [runs[f'{method}_s{s}'][c] - runs[f'{baseline}_s{s}'][c] for s in both]
            mean = statistics.mean(diffs)
            sign = (mean > 0) - (mean < 0)
            entry[c] = dict(mean=mean, per_seed=dict(zip(map(str, both), diffs)), n=len(diffs),
                            consistent=sum(1 for d in diffs if sign and (d > 0) - (d < 0) == sign))
        out[method] = entry
    return out


def header(args, methods: list[str], seeds: list[int], jobs: list[TrainJob]) -> str:
    """What the table holds and how it was made. The runs may come from several invocations
    (a resumed sweep); each one's settings are in its ``result.json``."""
    finished = sum((job.work_dir / RESULT_MARKER).is_file() for job in jobs)
    baselines = f' --baselines {" ".join(args.baselines)}' if args.baselines else ''
    return (f'LT-Digits (100 categories; seed-0 data), {args.iters} iterations, batch 8; '
            f'`python benchmarks/lt_detection.py --methods {" ".join(args.methods)} --seeds '
            f'{" ".join(map(str, seeds))}{baselines}`: {finished} of {len(jobs)} runs finished; '
            f'{platform.machine()} {os.cpu_count()} cores, one CPU thread per run; '
            f'{time.strftime("%Y-%m-%d")}')


def render(record: dict) -> str:
    table = {m: {c: tuple(v) if isinstance(v, list) else v for c, v in e.items()}
             for m, e in record['summary'].items()}
    lines = [record['header'], '', markdown_table(table, COLUMNS + ('n',)).replace(
        '| n |', '| seeds |'), '',
             'mean ± std over the training seeds a method has finished (one seed: its value); '
             'AP/APr/APc/APf are mask AP, "APr box" the box APr; "norm f/r": mean classifier '
             'norm of frequent over rare categories (end of training).']
    steps = ', '.join(f"{k} {v['step vs CE']:.2f}" for k, v in table.items() if 'step vs CE' in v)
    if steps:
        lines.append(f'median train step time relative to CE: {steps}')
    lines += _paired_lines(record['paired'], PAIRED)
    fixed = record.get('ap_fixed')
    if fixed:
        table = {m: {c: tuple(v) if isinstance(v, list) else v for c, v in e.items()}
                 for m, e in fixed['summary'].items()}
        lines += ['', 'Box AP (standard: at most 100 detections per image, score >= 0.001) '
                  'beside box AP-fixed (the same checkpoints re-tested with up to 1,000 '
                  'detections per image, scores down to 1e-7, the top 10,000 of each category; '
                  'configs/_base_/lvis_ap_fixed_test.py) on the runs measured:',
                  '', markdown_table(table, AP_FIXED_TABLE + ('n',)).replace(
                      '| n |', '| seeds |')]
        lines += _paired_lines(fixed['paired'], AP_FIXED_COLUMNS)
    if record.get('missing'):
        lines += ['', f"not finished (not in the table): {', '.join(record['missing'])}"]
    return '\n'.join(lines)


def _paired_lines(pairs: dict, columns: tuple) -> list[str]:
    lines = []
    for baseline, diffs in pairs.items():
        if not diffs:
            continue
        lines += ['', f'Paired difference against {baseline} (mean over seeds, seeds with that '
                  'sign):', '', '| method | ' + ' | '.join(columns) + ' |',
                  '|---' * (len(columns) + 1) + '|']
        for method, entry in diffs.items():
            cells = [f"{e['mean']:+.1f}, {e['consistent']}/{e['n']}"
                     for e in (entry[c] for c in columns)]
            lines.append(f'| {method} | ' + ' | '.join(cells) + ' |')
    return lines


def _as_lists(summary: dict) -> dict:
    return {m: {c: list(v) if isinstance(v, tuple) else v for c, v in e.items()}
            for m, e in summary.items()}


def baselines_of(methods: list[str], requested: list[str] | None) -> list[str]:
    """The methods the paired differences are taken against: the requested ones (each must
    be among ``methods``), or by default those of CE and C2AM that are."""
    if requested is None:
        return [b for b in BASELINES if b in methods]
    absent = [b for b in requested if b not in methods]
    if absent:
        raise UserError(f'--baselines {" ".join(absent)}: not among the methods requested '
                        f'({", ".join(methods)})')
    return list(dict.fromkeys(requested))


def build_record(jobs: list[TrainJob], methods: list[str], seeds: list[int],
                 header: str, baselines: list[str]) -> dict:
    runs, missing = {}, []
    for job in jobs:
        if (job.work_dir / RESULT_MARKER).is_file():
            runs[job.name] = load_result(job) | (load_ap_fixed(job) or {})
        else:
            missing.append(job.name)
    pairs = {b: paired(runs, methods, seeds, b) for b in baselines}
    record = dict(header=header, methods=methods, seeds=seeds, runs=runs, missing=missing,
                  summary=_as_lists(summarise(runs, methods, seeds)), paired=pairs)
    if any(AP_FIXED_COLUMNS[0] in r for r in runs.values()):
        record['ap_fixed'] = dict(
            summary=_as_lists(summarise(runs, methods, seeds, AP_FIXED_TABLE,
                                        require=AP_FIXED_COLUMNS[0])),
            paired={b: paired(runs, methods, seeds, b, AP_FIXED_COLUMNS)
                    for b in baselines})
    return record


def measure_all_ap_fixed(jobs: list[TrainJob], args, errors: list[str]) -> None:
    """AP-fixed of every finished run that kept its checkpoint and has no kept AP-fixed
    result yet, ``--parallel`` re-tests at a time (each one CPU thread)."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm
    unmeasured = [j for j in jobs
                  if (j.work_dir / RESULT_MARKER).is_file() and load_ap_fixed(j) is None]
    no_checkpoint = [j.name for j in unmeasured if not has_checkpoint(j)]
    if no_checkpoint:
        print(f'AP-fixed not measured (no checkpoint kept): {", ".join(no_checkpoint)}')
    todo = [j for j in unmeasured if j.name not in no_checkpoint]
    if not todo:
        return

    def measure(job: TrainJob) -> None:
        try:
            measure_ap_fixed(job, args.data_root)
        except (RuntimeError, FileNotFoundError, ValueError) as err:
            errors.append(f'{job.name} AP-fixed: {err}')

    with ThreadPoolExecutor(max_workers=args.parallel) as pool, \
            tqdm(total=len(todo), desc='AP-fixed re-tests', unit='run') as bar:
        for _ in pool.map(measure, todo):
            bar.update()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--methods', '--losses', dest='methods', type=method_list, nargs='+',
                   default=['peers'], help='method and group names (default: peers)')
    p.add_argument('--seeds', type=nonnegative_int, nargs='+', default=[0, 1, 2])
    p.add_argument('--iters', type=positive_int, default=700)
    p.add_argument('--parallel', type=positive_int, default=2,
                   help='runs at a time, one CPU thread each')
    p.add_argument('--data-root', type=Path, default=ROOT / 'data' / 'lt_digits')
    p.add_argument('--cfg-options', type=cfg_option, nargs='+', default=[],
                   help='KEY=VALUE options for every run (e.g. an extra evaluator)')
    p.add_argument('--baselines', type=method_name, nargs='+',
                   help='methods the paired differences are taken against (default: ce and '
                   'c2am, those of them requested)')
    p.add_argument('--ap-fixed', action='store_true',
                   help='also re-test each finished run that kept its checkpoint under the '
                   'AP-fixed settings (once; kept as ap_fixed.json in its folder)')
    p.add_argument('--dry-run', action='store_true', help='print the plan, touch nothing')
    add_report_arguments(p, ROOT / 'work_dirs' / 'benchmarks' / 'lt_detection',
                         force_help='re-train finished runs too')
    args = p.parse_args(argv)
    methods = expand_methods(args.methods)
    seeds = list(dict.fromkeys(args.seeds))
    args.out = args.out.absolute()
    args.data_root = args.data_root.absolute()
    baselines = baselines_of(methods, args.baselines)
    jobs = plan(methods, seeds, args)

    if args.render_only:
        read_report(args.out, TOOL)  # there must be a report of this benchmark
        record = build_record(jobs, methods, seeds, header(args, methods, seeds, jobs),
                              baselines)
        check_report(args.out, TOOL, force=True)
        write_report(args.out, TOOL, record, render(record))
        return 0
    # everything is checked before anything is written
    check_report(args.out, TOOL, force=args.force, replace_own=True)
    states = {job.name: run_state(job, force=args.force) for job in jobs}
    todo = [job for job in jobs if states[job.name] != 'finished']
    print(f'{len(jobs)} runs: {len(jobs) - len(todo)} finished, '
          f'{sum(states[j.name] == "restart" for j in todo)} to restart, '
          f'{sum(states[j.name] == "new" for j in todo)} new')
    if args.dry_run:
        for job in jobs:
            print(f'  {job.name:<22} {states[job.name]:<9} {job.config} '
                  + ' '.join(f'{k}={v}' for k, v in METHODS[job.name.rsplit("_s", 1)[0]]
                             .options.items()))
        return 0
    try:
        ensure_lt_digits(args.data_root)
    except FileExistsError as err:
        raise UserError(str(err)) from None
    t0 = time.time()
    errors = []

    def on_finish(job: TrainJob, returncode: int) -> None:
        if returncode == 0:
            try:
                finish_run(job)
            except (RuntimeError, FileNotFoundError, ValueError) as err:
                errors.append(f'{job.name}: {err}')
        else:
            errors.append(f'{job.name}: training failed, see {job.work_dir / "train.log"}')

    for job in jobs:
        if states[job.name] == 'finished' and make_record_portable(job):
            print(f'{job.name}: record rewritten with portable data paths')
    for job in todo:
        start_run(job)
    run_parallel(todo, max_parallel=args.parallel, on_finish=on_finish, stop_on_failure=False)
    trained = (f'; this invocation trained {len(todo)} runs in '
               f'{(time.time() - t0) / 60:.0f} min, {args.parallel} at a time')
    if args.ap_fixed:
        measure_all_ap_fixed(jobs, args, errors)
    record = build_record(jobs, methods, seeds, header(args, methods, seeds, jobs) + trained,
                          baselines)
    check_report(args.out, TOOL, force=args.force, replace_own=True)
    write_report(args.out, TOOL, record, render(record))
    for line in errors:
        print(f'error: {line}', file=sys.stderr)
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
