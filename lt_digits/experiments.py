"""Running LT-Digits experiments: the dataset, the named methods (peers and ablations), parallel
CPU trainings with progress bars, resumable run folders, and reading their results. Shared by
``tools/demo.py`` and ``benchmarks/lt_detection.py``."""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LT_CONFIGS = {
    'ce': 'configs/lt_digits/mask-rcnn_r18-half_fpn_ce_lt-digits.py',
    'cosine': 'configs/lt_digits/mask-rcnn_r18-half_fpn_cosine_lt-digits.py',
    'seesaw': 'configs/lt_digits/mask-rcnn_r18-half_fpn_seesaw_lt-digits.py',
    'c2am': 'configs/lt_digits/mask-rcnn_r18-half_fpn_c2am_lt-digits.py',
    'c2am-bg': 'configs/lt_digits/mask-rcnn_r18-half_fpn_c2am-bgmargin_lt-digits.py',
}

_LOSS_CLS = 'model.roi_head.bbox_head.loss_cls.'


@dataclass(frozen=True)
class Method:
    """A named LT-Digits variant: a config plus ``--cfg-options`` on top of it.

    Attributes:
        config (str): config path relative to the repository root.
        options (dict): cfg-options that make the variant (ablations); empty for a config.
        wrapped_train (bool): the training dataset sits inside a wrapper (RFS).
        train_ann_option (str, optional): a model option that must name the training
            annotation file (Federated loss reads its image counts from it).
    """
    config: str
    options: dict = field(default_factory=dict)
    wrapped_train: bool = False
    train_ann_option: str | None = None


def _cfg(name: str) -> str:
    return f'configs/lt_digits/mask-rcnn_r18-half_fpn_{name}_lt-digits.py'


METHODS: dict[str, Method] = {
    **{name: Method(path) for name, path in LT_CONFIGS.items()},
    'eqlv2': Method(_cfg('eqlv2')),
    'eqlv2-softmax': Method(_cfg('eqlv2-softmax')),
    'fed': Method(_cfg('fed'), train_ann_option=_LOSS_CLS + 'ann_file'),
    'eql': Method(_cfg('eql'), train_ann_option=_LOSS_CLS + 'ann_file'),
    'bags': Method(_cfg('bags'), train_ann_option=_LOSS_CLS + 'ann_file'),
    'rfs-ce': Method(_cfg('ce_sample3e-2'), wrapped_train=True),
    'rfs-c2am': Method(_cfg('c2am_sample3e-2'), wrapped_train=True),
    # remedies studied against C2AM's frequent-category AP loss (not in the paper)
    'c2am-normcap': Method(_cfg('c2am-normcap')),
    'c2am-clswd': Method(_cfg('c2am-clswd')),
    # the paper's ablations (Tables 3-5) as options on the C2AM config
    **{f'c2am-s{s}': Method(LT_CONFIGS['c2am'], {_LOSS_CLS + 'scale': float(s)})
       for s in (10, 20, 40, 50)},
    **{f'c2am-alpha{a}': Method(LT_CONFIGS['c2am'], {_LOSS_CLS + 'alpha': float(a)})
       for a in ('0', '0.1', '0.3', '0.7', '1.0')},
    'c2am-fixed0.1': Method(LT_CONFIGS['c2am'], {_LOSS_CLS + 'margin': 'fixed',
                                                 _LOSS_CLS + 'fixed_margin': 0.1}),
    # the margin-free control at the scale where C2AM keeps APf here: is it the scale or the
    # margins?
    'cosine-s10': Method(LT_CONFIGS['cosine'], {_LOSS_CLS + 'scale': 10.0}),
}
# Named sets. s = 30 and alpha = 0.5 are the 'c2am' run itself; alpha = 0 is the cosine
# classifier ('cosine': the same logits as alpha 0 with adaptive margins), so the ablations
# share those runs with the peer comparison when both use the same --out.
METHOD_GROUPS: dict[str, list[str]] = {
    'peers': ['ce', 'cosine', 'seesaw', 'c2am', 'c2am-bg', 'eqlv2', 'fed', 'rfs-ce',
              'rfs-c2am', 'eql', 'bags'],
    'table3': ['c2am-s10', 'c2am-s20', 'c2am', 'c2am-s40', 'c2am-s50'],
    'table4': ['cosine', 'c2am-alpha0.1', 'c2am-alpha0.3', 'c2am', 'c2am-alpha0.7',
               'c2am-alpha1.0'],
    'table5': ['cosine', 'c2am-fixed0.1', 'c2am'],
    # C2AM's APf against CE: the margin-free cosine control, background inside the margins,
    # and two remedies acting on the norms Eq. 7 reads
    'apf': ['ce', 'cosine', 'c2am', 'c2am-bg', 'c2am-normcap', 'c2am-clswd', 'c2am-s10',
            'cosine-s10'],
}
METHOD_GROUPS['ablations'] = list(dict.fromkeys(
    METHOD_GROUPS['table3'] + METHOD_GROUPS['table4'] + METHOD_GROUPS['table5']))


def expand_methods(names: list[str]) -> list[str]:
    """Method and group names -> method names, in order, without repeats.

    Raises:
        KeyError: an unknown name.
    """
    out = []
    for name in names:
        for method in METHOD_GROUPS.get(name, [name]):
            if method not in METHODS:
                raise KeyError(name)
            out.append(method)
    return list(dict.fromkeys(out))


def job_options(method: Method, data_root: Path, iters: int, seed: int) -> dict:
    """The cfg-options of one run: schedule, seed, and every path pointed at ``data_root``."""
    root = str(data_root) + '/'
    val_ann = str(data_root / 'annotations' / 'lvis_v1_val.json')
    train = 'train_dataloader.dataset.dataset' if method.wrapped_train else \
        'train_dataloader.dataset'
    opts = {'train_cfg.max_iters': iters, 'train_cfg.val_interval': iters,
            'randomness.seed': seed, 'data_root': root, f'{train}.data_root': root,
            'val_dataloader.dataset.data_root': root,
            'test_dataloader.dataset.data_root': root,
            'val_evaluator.ann_file': val_ann, 'test_evaluator.ann_file': val_ann}
    if method.train_ann_option:
        opts[method.train_ann_option] = str(data_root / 'annotations' / 'lvis_v1_train.json')
    return opts | schedule_options(method.config, iters) | method.options


def schedule_options(config: str, iters: int) -> dict:
    """cfg-options that stretch the config's learning-rate schedule to ``iters`` iterations.

    The configs place the LR steps at fixed iterations (75 % and 92 % of their ``max_iters``);
    ``train_cfg.max_iters`` alone would keep them there (a longer run would spend its extra
    iterations at the final LR, a shorter one would never decay). Every scheduler that ends at
    the config's ``max_iters`` gets ``end = iters`` and its milestones scaled by the same
    factor. Nothing when ``iters`` is the config's own schedule.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(str(ROOT / config), import_custom_modules=False)
    base = cfg.train_cfg.max_iters
    if iters == base:
        return {}
    opts = {}
    for i, sched in enumerate(cfg.get('param_scheduler') or []):
        if sched.get('end') != base:
            continue  # warm-up and other fixed-length phases keep their length
        opts[f'param_scheduler.{i}.end'] = iters
        if 'milestones' in sched:
            scaled = [max(1, round(m * iters / base)) for m in sched['milestones']]
            opts[f'param_scheduler.{i}.milestones'] = scaled
    return opts


METRIC_KEYS = {'AP mask': 'lvis/segm_AP', 'AP box': 'lvis/bbox_AP', 'APr': 'lvis/segm_APr',
               'APc': 'lvis/segm_APc', 'APf': 'lvis/segm_APf', 'APr box': 'lvis/bbox_APr',
               'APc box': 'lvis/bbox_APc', 'APf box': 'lvis/bbox_APf'}
# Metrics read when a run logs them: table column -> key in the final validation row of
# scalars.json. FastLVISMetric computes AP-fixed (fixed_ap=True), but a run evaluates with one
# evaluator, whose keys are the standard ones above; AP-fixed columns need a second evaluator
# (its own prefix, the AP-fixed test settings) in every run, which the harness does not add yet.
EXTRA_METRIC_KEYS: dict[str, str] = {}
# Classifier statistics logged by the ClassifierNormHook: column -> scalar key (last value).
NORM_KEYS = {'norm f/r': 'cls_norm/f_over_r', 'spearman norm-freq': 'cls_norm/spearman_freq',
             'margin f->r': 'c2am_margin/f_to_r'}
ITER_RE = re.compile(r'Iter\(train\) \[\s*(\d+)/(\d+)\]')


def ensure_lt_digits(data_root: Path, seed: int = 0) -> dict:
    """Generate LT-Digits (default settings, ``seed``) into ``data_root`` unless exactly that
    dataset is there already; a folder holding anything else is refused
    (:class:`~lt_digits.generate.GenerationError`, every differing setting named)."""
    from lt_digits import make_lt_digits
    from lt_digits.generate import check_dataset
    annotations = Path(data_root) / 'annotations'
    if check_dataset(data_root, seed=seed):
        print(f'LT-Digits found in {data_root} (seed {seed})')
        return dict(data_root=str(data_root), train_ann=str(annotations / 'lvis_v1_train.json'),
                    val_ann=str(annotations / 'lvis_v1_val.json'))
    print(f'generating LT-Digits (seed {seed}) into {data_root} ...')
    return make_lt_digits(data_root, seed=seed)


@dataclass
class TrainJob:
    """One ``tools/train.py`` run."""
    name: str
    config: str
    work_dir: Path
    options: dict = field(default_factory=dict)

    def command(self) -> list[str]:
        opts = [f'{k}={v}' for k, v in self.options.items()]
        return [sys.executable, str(ROOT / 'tools' / 'train.py'), str(ROOT / self.config),
                '--work-dir', str(self.work_dir)] + (['--cfg-options', *opts] if opts else [])


def tool_env(threads: int) -> dict:
    """Environment of a ``tools/*.py`` child process: ``threads`` CPU threads, this checkout
    first on the import path."""
    return dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")


def run_parallel(jobs: list[TrainJob], max_parallel: int = 2, threads: int = 1,
                 on_finish: Callable[[TrainJob, int], None] | None = None,
                 stop_on_failure: bool = True) -> list[TrainJob]:
    """Run the jobs, ``max_parallel`` at a time, each with ``threads`` CPU threads (one thread
    per process is several times faster than two when the cores are shared), showing one
    progress bar per job from its log.

    Args:
        on_finish: called with each job and its exit status as it ends.
        stop_on_failure: raise RuntimeError at the first failure (log path given); otherwise
            run the others and return the failed jobs.

    Returns:
        list[TrainJob]: the failed jobs (empty with ``stop_on_failure``).

    On an exception (Ctrl-C included) the running jobs are terminated.
    """
    failed = []
    from tqdm import tqdm
    env = tool_env(threads)
    pending, running = list(jobs), []
    bars = {}
    try:
        while pending or running:
            while pending and len(running) < max_parallel:
                job = pending.pop(0)
                job.work_dir.mkdir(parents=True, exist_ok=True)
                log = open(job.work_dir / 'train.log', 'w')
                proc = subprocess.Popen(job.command(), stdout=log, stderr=subprocess.STDOUT,
                                        env=env, cwd=ROOT)
                bars[job.name] = tqdm(total=int(job.options.get('train_cfg.max_iters', 1)),
                                      desc=f'{job.name:<10}', unit='it', position=len(bars),
                                      dynamic_ncols=True)
                running.append((job, proc, log))
            time.sleep(3)
            for job, proc, log in list(running):
                _update_bar(bars[job.name], job.work_dir / 'train.log')
                if proc.poll() is not None:
                    log.close()
                    running.remove((job, proc, log))
                    bars[job.name].set_postfix_str('done' if proc.returncode == 0 else 'FAILED')
                    if on_finish is not None:
                        on_finish(job, proc.returncode)
                    if proc.returncode != 0:
                        if stop_on_failure:
                            raise RuntimeError(
                                f'{job.name} failed; see {job.work_dir / "train.log"}')
                        failed.append(job)
    finally:
        for _, proc, _ in running:
            proc.terminate()
        for _, proc, _ in running:
            proc.wait()
        for bar in bars.values():
            bar.close()
    return failed


def _update_bar(bar, log_path: Path) -> None:
    text = log_path.read_text(errors='ignore')[-20000:]
    hits = ITER_RE.findall(text)
    if hits:
        done, total = (int(v) for v in hits[-1])
        bar.total = total
        bar.n = done
        stage = 'evaluating' if 'Iter(val)' in text[text.rfind('Iter(train)'):] else ''
        bar.set_postfix_str(stage)
        bar.refresh()


def _scalars(work_dir: Path) -> list[dict]:
    files = sorted(work_dir.glob('*/vis_data/scalars.json'))
    if not files:
        raise FileNotFoundError(f'no scalars.json under {work_dir}')
    return [json.loads(line) for line in files[-1].read_text().splitlines() if line.strip()]


def read_results(work_dir: Path) -> dict:
    """Final LVIS metrics (percent), the last classifier statistics of the norm hook (when
    logged) and the median logged train step time (s; NaN when none was logged)."""
    rows = _scalars(work_dir)
    val = [r for r in rows if 'lvis/segm_AP' in r]
    if not val:
        raise RuntimeError(f'{work_dir}: no validation metrics logged')
    keys = METRIC_KEYS | EXTRA_METRIC_KEYS
    out = {k: 100 * val[-1][v] for k, v in keys.items() if v in val[-1]}
    for column, key in NORM_KEYS.items():
        logged = [r[key] for r in rows if key in r]
        if logged:
            out[column] = logged[-1]
    times = [r['time'] for r in rows if 'time' in r and 'iter' in r]
    out['step_s'] = statistics.median(times) if times else float('nan')
    return out


def checkpoint_of(work_dir: Path) -> Path:
    ckpts = sorted(work_dir.glob('iter_*.pth'), key=lambda p: int(p.stem.split('_')[1]))
    if not ckpts:
        raise FileNotFoundError(f'no checkpoint in {work_dir}')
    return ckpts[-1]


def markdown_table(results: dict, columns=('AP mask', 'AP box', 'APr', 'APc', 'APf')) -> str:
    """``results``: name -> metrics (or name -> {col: (mean, std or None)}); ints (counts)
    are printed as they are."""
    lines = ['| loss | ' + ' | '.join(columns) + ' |', '|---' * (len(columns) + 1) + '|']
    for name, r in results.items():
        cells = []
        for c in columns:
            v = r.get(c)
            d = 2 if c.startswith('norm') else 1
            if isinstance(v, tuple):  # (mean, std); std None for a single value
                cells.append(f'{v[0]:.{d}f}' + ('' if v[1] is None else f' ± {v[1]:.{d}f}'))
            elif isinstance(v, int):
                cells.append(str(v))
            else:
                cells.append('n/a' if v is None else f'{v:.{d}f}')
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


# ---------------------------------------------------------------- resumable run folders ------
RUN_MARKER = '.c2am-run.json'  # written when a run starts: its config and options
RESULT_MARKER = 'result.json'  # written atomically once the run finished and its results check
AP_FIXED_FILE = 'ap_fixed.json'  # a finished run's AP-fixed re-test (lt_digits/ap_fixed.py)
_TIMESTAMP_DIR = re.compile(r'\d{8}_\d{6}')
_CHECKPOINT = re.compile(r'iter_\d+\.pth')
REQUIRED_RESULTS = ('AP mask', 'AP box', 'APr', 'APc', 'APf')


def config_digest(config: str) -> str:
    """SHA-256 of the config as mmengine resolves it (its ``_base_`` files included), so that a
    finished run is not reused after its config file changed."""
    import hashlib

    from mmengine.config import Config
    text = Config.fromfile(str(ROOT / config), import_custom_modules=False).pretty_text
    return hashlib.sha256(text.encode()).hexdigest()


DATA_ROOT_PLACEHOLDER = '{data_root}/'


def _portable_options(options: dict, data_root: str | None) -> dict:
    """``options`` with every path under ``data_root`` written from the placeholder, so that a
    recorded run is recognised from another clone or data folder: the harness only trains on
    the LT-Digits it generated or checked (:func:`ensure_lt_digits`), never on other data."""
    if not isinstance(data_root, str) or not data_root:
        return options
    return {k: DATA_ROOT_PLACEHOLDER + v[len(data_root):]
            if isinstance(v, str) and v.startswith(data_root) else v
            for k, v in options.items()}


def local_options(options: dict, data_root: Path) -> dict:
    """Recorded options (:func:`run_settings`) with their data paths pointed at ``data_root``
    (the placeholder, or the absolute data root an older record names)."""
    root = str(data_root) + '/'
    portable = _portable_options(options, options.get('data_root'))
    return {k: root + v[len(DATA_ROOT_PLACEHOLDER):]
            if isinstance(v, str) and v.startswith(DATA_ROOT_PLACEHOLDER) else v
            for k, v in portable.items()}


def run_settings(job: TrainJob) -> dict:
    """What identifies a run: its config (path and resolved content) and options
    (JSON-normalised, paths under the data root written as ``{data_root}/...``)."""
    options = _portable_options(job.options, job.options.get('data_root'))
    return json.loads(json.dumps({'config': job.config, 'options': options,
                                  'config_sha256': config_digest(job.config)}, default=str))


def _same_settings(recorded, job: TrainJob) -> bool:
    """A run's recorded settings equal ``job``'s; runs recorded before the config digest existed
    are compared on path and options only, and those recorded with absolute data paths are
    read with their own data root as the placeholder (the data is the same LT-Digits)."""
    current = run_settings(job)
    if not isinstance(recorded, dict):
        return False
    if 'config_sha256' not in recorded:
        current = {k: v for k, v in current.items() if k != 'config_sha256'}
    options = recorded.get('options')
    if isinstance(options, dict):
        recorded = recorded | {'options': _portable_options(options, options.get('data_root'))}
    return recorded == current


def _written_by_run(entry: Path, job: TrainJob) -> bool:
    """Whether a top-level entry of a run folder is one that the run writes (the markers,
    ``train.log``, mmengine's timestamped log folder, checkpoints, the dumped config)."""
    name = entry.name
    if entry.is_dir() and not entry.is_symlink():
        return bool(_TIMESTAMP_DIR.fullmatch(name))
    markers = (RUN_MARKER, RESULT_MARKER, AP_FIXED_FILE)
    return (name in (*markers, 'train.log', 'last_checkpoint', f'{Path(job.config).stem}.py')
            or bool(_CHECKPOINT.fullmatch(name))
            # write_atomic's temporaries (left by a killed process): .<stem>.tmp-<pid>-<id><ext>
            or any(name.startswith(f'.{Path(m).stem}.tmp-') for m in markers))


def run_state(job: TrainJob, *, force: bool = False) -> str:
    """Where a run stands; touches nothing.

    Returns:
        str: ``'new'`` (no folder or an empty one), ``'finished'`` (its result marker is there
        and its settings match), or ``'restart'`` (interrupted, or finished and ``force``): a
        folder holding only what the run wrote, safe to clear.

    Raises:
        UserError: the folder holds something the benchmark did not write, or a run with other
            settings (without ``force``).
    """
    from projects.c2am.cli import UserError
    folder = job.work_dir
    if not folder.exists():
        return 'new'
    if not folder.is_dir():
        raise UserError(f'{folder} is a file, expected a run folder')
    entries = list(folder.iterdir())
    if not entries:
        return 'new'
    foreign = sorted(e.name for e in entries if not _written_by_run(e, job))
    if not (folder / RUN_MARKER).is_file() or foreign:
        what = foreign[0] if foreign else f'no {RUN_MARKER}'
        raise UserError(f'{folder} holds files this benchmark did not write ({what}); move them '
                        'or choose another --out')
    try:
        recorded = json.loads((folder / RUN_MARKER).read_text())
    except ValueError:
        recorded = None
    same = _same_settings(recorded, job)
    if not same and not force:
        raise UserError(f'{folder} holds a run with other settings than this command (see its '
                        f'{RUN_MARKER}; a changed config file counts); pass --force to re-train '
                        'it or choose another --out')
    if (folder / RESULT_MARKER).is_file() and not force and same:
        return 'finished'
    return 'restart'


def make_record_portable(job: TrainJob) -> bool:
    """Rewrite a finished run's records (its run marker and the settings in its result marker)
    in today's form (:func:`run_settings`) when they were written with absolute data paths;
    call only for a run :func:`run_state` found ``'finished'``. The results are kept as they are.

    Returns:
        bool: whether anything was rewritten.
    """
    from projects.c2am.outputs import dumps_json, write_atomic
    current = run_settings(job)
    recorded = json.loads((job.work_dir / RUN_MARKER).read_text())
    result = json.loads((job.work_dir / RESULT_MARKER).read_text())
    if 'config_sha256' not in recorded:  # recorded before configs were digested: stays so
        current.pop('config_sha256')
    if recorded == current and result.get('settings') == current:
        return False
    write_atomic(job.work_dir / RESULT_MARKER, dumps_json(result | {'settings': current}, indent=1))
    write_atomic(job.work_dir / RUN_MARKER, dumps_json(current, indent=1))
    return True


def start_run(job: TrainJob) -> None:
    """Clear a folder :func:`run_state` called ``'restart'`` (or ``'new'``) and mark the run as
    started with its settings."""
    from projects.c2am.outputs import dumps_json, write_atomic
    if job.work_dir.exists():
        shutil.rmtree(job.work_dir)
    job.work_dir.mkdir(parents=True)
    write_atomic(job.work_dir / RUN_MARKER, dumps_json(run_settings(job), indent=1))


def finite_or_none(obj):
    """``obj`` with every non-finite float replaced by ``None`` (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    return obj


def finish_run(job: TrainJob) -> dict:
    """Read and check a finished run's results, then write its result marker atomically.

    Returns:
        dict: the results (:func:`read_results`, NaN as ``None``).

    Raises:
        RuntimeError: a required metric is missing or not finite (no marker is written).
    """
    from projects.c2am.outputs import dumps_json, write_atomic
    results = read_results(job.work_dir)
    bad = [k for k in REQUIRED_RESULTS if not math.isfinite(results.get(k, float('nan')))]
    if bad:
        raise RuntimeError(f'{job.work_dir}: no finite {", ".join(bad)} in its log')
    results = finite_or_none(results)
    write_atomic(job.work_dir / RESULT_MARKER, dumps_json(
        {'settings': run_settings(job), 'results': results}, indent=1))
    return results


def load_result(job: TrainJob) -> dict:
    """The results a finished run recorded in its marker."""
    return json.loads((job.work_dir / RESULT_MARKER).read_text())['results']
