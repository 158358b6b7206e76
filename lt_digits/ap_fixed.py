"""Box AP-fixed (Dave et al. 2021) of finished LT-Digits runs: the run's last checkpoint
re-tested with ``tools/test.py`` under the AP-fixed test settings of
``configs/_base_/lvis_ap_fixed_test.py`` (up to 1,000 detections per image, scores down to 1e-7,
the top 10,000 detections of each category over the set), kept beside the run's ``result.json``
as ``ap_fixed.json``.

A run evaluates itself with the standard protocol while it trains (LT-Digits emits at most 100
detections per image above a score of 0.001); a category whose scores sit below the others'
loses detections to that cap and threshold, which AP-fixed does not count against it.

Boxes only: the mask head would run on every one of the 1,000 detections of an image, which
makes a CPU re-test about ten times slower than the whole standard test; AP-fixed is about how
the scores rank across categories, which box AP measures as well. The re-test drops the mask
branch from the model (its checkpoint keys are the only ones not loaded, which is checked).
"""
from __future__ import annotations

import functools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from .experiments import (
    AP_FIXED_FILE,
    RESULT_MARKER,
    ROOT,
    TrainJob,
    checkpoint_of,
    local_options,
    tool_env,
)

AP_FIXED_TEST = 'configs/_base_/lvis_ap_fixed_test.py'
# table column -> key of the test's metrics
AP_FIXED_KEYS = {'AP-fixed box': 'lvis/bbox_AP', 'APr-fixed box': 'lvis/bbox_APr',
                 'APc-fixed box': 'lvis/bbox_APc', 'APf-fixed box': 'lvis/bbox_APf'}
BOX_ONLY = {'model.roi_head.mask_roi_extractor': None, 'model.roi_head.mask_head': None,
            'test_evaluator.metric': 'bbox'}
MASK_PREFIX = 'roi_head.mask_'


def ap_fixed_options() -> dict:
    """The AP-fixed test settings as cfg-options, read from :data:`AP_FIXED_TEST`, for boxes
    only (:data:`BOX_ONLY`)."""
    return dict(_read_options())


@functools.lru_cache(maxsize=1)
def _read_options() -> tuple:
    # parsed once per process: every run's kept result is compared against these settings
    from mmengine.config import Config
    cfg = Config.fromfile(str(ROOT / AP_FIXED_TEST), import_custom_modules=False)
    opts = {f'model.test_cfg.rcnn.{k}': v for k, v in cfg.model.test_cfg.rcnn.items()}
    opts |= {f'test_evaluator.{k}': v for k, v in cfg.test_evaluator.items()} | BOX_ONLY
    return tuple(json.loads(json.dumps(opts, default=str)).items())


def _settings(job: TrainJob, checkpoint: Path) -> dict:
    """What an AP-fixed result was measured on: the run (its recorded settings), its
    checkpoint and the test settings."""
    run = json.loads((job.work_dir / RESULT_MARKER).read_text())['settings']
    return {'run': run, 'checkpoint': checkpoint.name, 'test_options': ap_fixed_options()}


def has_checkpoint(job: TrainJob) -> bool:
    try:
        checkpoint_of(job.work_dir)
    except FileNotFoundError:
        return False
    return True


def load_ap_fixed(job: TrainJob) -> dict | None:
    """The run's kept AP-fixed results (percent), or None when there are none for the run as it
    is now (never measured, or measured under other test settings)."""
    path = job.work_dir / AP_FIXED_FILE
    if not path.is_file():
        return None
    try:
        kept = json.loads(path.read_text())
        settings, results = kept['settings'], kept['results']
    except (OSError, ValueError, KeyError, TypeError):
        return None
    current = dict(settings, test_options=ap_fixed_options())
    if settings != current or not isinstance(results, dict):
        return None
    return results


def _check_only_masks_left_out(log: str, checkpoint: Path) -> None:
    """tools/test.py's checkpoint check (``partial load: ...``) must leave out exactly the
    checkpoint's mask-branch keys: nothing missing, nothing of another shape."""
    from projects.c2am.run_checks import checkpoint_state_dict
    masks = sum(k.startswith(MASK_PREFIX) for k in checkpoint_state_dict(checkpoint))
    line = next((x for x in log.splitlines() if x.startswith('partial load: ')), None)
    if line is None or 'missing' in line or 'another shape' in line \
            or f'({masks} not in the model (e.g. {MASK_PREFIX}' not in line:
        raise RuntimeError(f'the box-only model does not load as expected: {line}')


def measure_ap_fixed(job: TrainJob, data_root: Path) -> dict:
    """Re-test a finished run's last checkpoint under the AP-fixed settings (one CPU thread)
    and keep the results in its folder (written atomically).

    Returns:
        dict: column (:data:`AP_FIXED_KEYS`) -> AP in percent (None for a frequency group
        without categories in the evaluated set).

    Raises:
        FileNotFoundError: the run kept no checkpoint.
        RuntimeError: ``tools/test.py`` failed (the last line of its log given) or logged no
            metrics.
    """
    from projects.c2am.outputs import dumps_json, write_atomic
    checkpoint = checkpoint_of(job.work_dir)
    settings = _settings(job, checkpoint)
    options = local_options(settings['run']['options'], data_root) | ap_fixed_options()
    with tempfile.TemporaryDirectory(prefix='c2am-ap-fixed-') as tmp:
        cmd = [sys.executable, str(ROOT / 'tools' / 'test.py'), str(ROOT / job.config),
               str(checkpoint), '--work-dir', tmp, '--allow-partial-load',
               '--cfg-options', *[f'{k}={v}' for k, v in options.items()]]
        log = Path(tmp) / 'test.log'
        with open(log, 'w') as out:
            code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, env=tool_env(1),
                                   cwd=ROOT)
        if code != 0:
            tail = log.read_text(errors='replace').strip().splitlines()[-1:]
            raise RuntimeError(f'tools/test.py failed (exit {code}): '
                               f'{tail[0] if tail else "no output"}')
        _check_only_masks_left_out(log.read_text(errors='replace'), checkpoint)
        # mmengine's LoggerHook dumps the test metrics to <work_dir>/<timestamp>/<timestamp>.json
        dumps = sorted(Path(tmp).glob('*/*.json'))
        metrics = json.loads(dumps[-1].read_text()) if dumps else {}
    missing = [k for k in AP_FIXED_KEYS.values() if k not in metrics]
    if missing:
        raise RuntimeError(f'the AP-fixed test logged no {", ".join(missing)}')
    # lvis-api reports -1 for a group without categories in the evaluated set
    results = {col: None if metrics[key] < 0 else 100 * metrics[key]
               for col, key in AP_FIXED_KEYS.items()}
    write_atomic(job.work_dir / AP_FIXED_FILE,
                 dumps_json({'settings': settings, 'results': results}, indent=1))
    return results
