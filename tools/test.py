"""Test (evaluate) a detector checkpoint (mmdet's tools/test.py, with this project's plugin).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
                         [--outfile-prefix PREFIX] [--allow-partial-load] [--force]
                         [--cfg-options k=v ...] [--launcher ...]

``--outfile-prefix PREFIX`` writes the LVIS-format detections PREFIX.bbox.json /
PREFIX.segm.json (those of the evaluator's metrics) that ``analysis/per_class_ap.py`` reads;
``--out`` the results pickle.

Checked before anything runs (one ``error:`` line and exit status 2 otherwise): the config
loads, merges with ``--cfg-options`` and builds a model; the checkpoint is a real checkpoint
(loaded without running code) whose keys and shapes fit that model exactly; a partial fit is
evaluated only with ``--allow-partial-load`` (it prints how many keys matched); outputs can be
written and do not exist yet (``--force`` to replace them). Outputs are written under
temporary names and renamed only when the evaluation has finished: an interrupted or failed
run leaves earlier results as they were.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from projects.c2am import compat  # noqa: E402  (first: stack fixes)
from projects.c2am.cli import UserError, check_output_location, existing_file, run_cli  # noqa: E402
from projects.c2am.outputs import atomic_output_files, check_output_files  # noqa: E402
from projects.c2am.run_checks import (  # noqa: E402
    build_model,
    cfg_options_action,
    check_checkpoint_fits,
    load_config,
)

RESULT_TYPES = ('bbox', 'segm')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Test (and evaluate) a detector')
    p.add_argument('config', type=existing_file, help='test config file path')
    p.add_argument('checkpoint', type=existing_file, help='checkpoint file')
    p.add_argument('--work-dir', help='the dir to save logs and metrics')
    p.add_argument('--out', help='dump the predictions to this pickle file')
    p.add_argument('--outfile-prefix', help='write LVIS-format result json with this prefix')
    p.add_argument('--allow-partial-load', action='store_true',
                   help='evaluate a checkpoint that fits the model only in part')
    p.add_argument('--force', action='store_true', help='overwrite --out / result json')
    p.add_argument('--cfg-options', nargs='+', action=cfg_options_action(),
                   help='override config settings, key=value (mmengine syntax)')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = p.parse_args(argv)
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        p.error('--out must be a .pkl or .pickle file')
    if args.outfile_prefix is not None and (not args.outfile_prefix
                                            or args.outfile_prefix.endswith(os.sep)):
        p.error('--outfile-prefix needs a file name prefix (e.g. results/c2am)')
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def _evaluators(cfg) -> list:
    ev = cfg.get('test_evaluator')
    if ev is None:
        raise UserError('the config has no test_evaluator')
    return list(ev) if isinstance(ev, (list, tuple)) else [ev]


def result_types(cfg) -> list[str]:
    """bbox / segm: the LVIS-format result files ``--outfile-prefix`` will produce."""
    from mmdet.evaluation import CocoMetric, LVISMetric
    from mmdet.registry import METRICS
    types = []
    for ev in _evaluators(cfg):
        kind = ev.get('type') if isinstance(ev, dict) else type(ev).__name__
        # by class, so that subclasses (FastLVISMetric) qualify too
        cls = METRICS.get(kind) if isinstance(kind, str) else kind
        if not (isinstance(cls, type) and issubclass(cls, (LVISMetric, CocoMetric))):
            raise UserError(f'--outfile-prefix needs an LVISMetric or CocoMetric (or subclass) '
                            f'test_evaluator, the config has {getattr(kind, "__name__", kind)}')
        metric = ev.get('metric', 'bbox')
        for t in [metric] if isinstance(metric, str) else list(metric):
            if t in RESULT_TYPES and t not in types:
                types.append(t)
    return types


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    check_output_location(cfg.work_dir, is_dir=True)
    outputs = [args.out] if args.out else []
    types = result_types(cfg) if args.outfile_prefix else []
    outputs += [f'{args.outfile_prefix}.{t}.json' for t in types]
    check_output_files(outputs, force=args.force)
    print(check_checkpoint_fits(build_model(cfg), args.checkpoint,
                                allow_partial=args.allow_partial_load), file=sys.stderr)
    cfg.load_from = str(args.checkpoint)
    compat.setup_cpu_distributed(cfg)
    rank = int(os.environ.get('RANK', os.environ.get('SLURM_PROCID', '0')))
    with atomic_output_files(outputs if rank == 0 else [], force=args.force) as tmps:
        scratch = None
        if args.outfile_prefix:
            parent = Path(args.outfile_prefix).absolute().parent
            scratch = Path(tempfile.mkdtemp(prefix=f'.{Path(args.outfile_prefix).name}.tmp-',
                                            dir=parent))
            for ev in _evaluators(cfg):
                ev.outfile_prefix = str(scratch / 'results')
        try:
            try:
                runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
            except Exception as err:  # the config's dataset / evaluator: the user's to fix
                first = str(err).strip().splitlines()
                raise UserError(f'the runner does not build from {args.config} '
                                f'({type(err).__name__}'
                                f'{": " + first[0][:200] if first else ""})') from None
            if args.out is not None and rank == 0:
                from mmdet.evaluation import DumpDetResults
                runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=str(tmps[0])))
            runner.test()
            for t, tmp in zip(types, tmps[1 if args.out else 0:]):  # rank 0 only
                produced = scratch / f'results.{t}.json'
                if produced.is_file():
                    os.replace(produced, tmp)
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
