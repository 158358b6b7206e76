"""Running LT-Digits experiments: the dataset, parallel CPU trainings with progress bars, and
reading their results. Shared by ``tools/demo.py`` and ``benchmarks/lt_detection.py``."""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
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
METRIC_KEYS = {'AP mask': 'lvis/segm_AP', 'AP box': 'lvis/bbox_AP', 'APr': 'lvis/segm_APr',
               'APc': 'lvis/segm_APc', 'APf': 'lvis/segm_APf', 'APr box': 'lvis/bbox_APr',
               'APc box': 'lvis/bbox_APc', 'APf box': 'lvis/bbox_APf'}
ITER_RE = re.compile(r'Iter\(train\) \[\s*(\d+)/(\d+)\]')


def ensure_lt_digits(data_root: Path, seed: int = 0) -> dict:
    """Generate LT-Digits into ``data_root`` unless a dataset of the same seed is there."""
    from lt_digits import make_lt_digits
    train = data_root / 'annotations' / 'lvis_v1_train.json'
    if train.is_file():
        info = json.loads(train.read_text()).get('info', {})
        if info.get('seed') == seed:
            print(f'LT-Digits found in {data_root} (seed {seed})')
            return dict(data_root=str(data_root), train_ann=str(train),
                        val_ann=str(data_root / 'annotations' / 'lvis_v1_val.json'))
        raise FileExistsError(f'{data_root} holds LT-Digits of seed {info.get("seed")}, '
                              f'not {seed}; remove it or choose another --data-root')
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


def run_parallel(jobs: list[TrainJob], max_parallel: int = 2, threads: int = 1) -> None:
    """Run the jobs, ``max_parallel`` at a time, each with ``threads`` CPU threads (one thread
    per process is several times faster than two when the cores are shared), showing one
    progress bar per job from its log. Raises RuntimeError if a job fails (log path given)."""
    from tqdm import tqdm
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
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
                    if proc.returncode != 0:
                        raise RuntimeError(f'{job.name} failed; see {job.work_dir / "train.log"}')
    finally:
        for _, proc, _ in running:
            proc.terminate()
        for bar in bars.values():
            bar.close()


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
    """Final LVIS metrics (percent) and the median logged train step time (s)."""
    rows = _scalars(work_dir)
    val = [r for r in rows if 'lvis/segm_AP' in r]
    if not val:
        raise RuntimeError(f'{work_dir}: no validation metrics logged')
    out = {k: 100 * val[-1][v] for k, v in METRIC_KEYS.items() if v in val[-1]}
    times = [r['time'] for r in rows if 'time' in r and 'iter' in r]
    out['step_s'] = statistics.median(times) if times else float('nan')
    return out


def checkpoint_of(work_dir: Path) -> Path:
    ckpts = sorted(work_dir.glob('iter_*.pth'), key=lambda p: int(p.stem.split('_')[1]))
    if not ckpts:
        raise FileNotFoundError(f'no checkpoint in {work_dir}')
    return ckpts[-1]


def markdown_table(results: dict, columns=('AP mask', 'AP box', 'APr', 'APc', 'APf')) -> str:
    """``results``: name -> metrics (or name -> {col: (mean, std)})."""
    lines = ['| loss | ' + ' | '.join(columns) + ' |', '|---' * (len(columns) + 1) + '|']
    for name, r in results.items():
        cells = []
        for c in columns:
            v = r.get(c)
            d = 2 if c.startswith('norm') else 1
            if isinstance(v, tuple):
                cells.append(f'{v[0]:.{d}f} ± {v[1]:.{d}f}')
            else:
                cells.append('n/a' if v is None else f'{v:.{d}f}')
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)
