"""Test (evaluate) a detector checkpoint (mmdet's tools/test.py, with this project's plugin).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
                         [--outfile-prefix PREFIX] [--cfg-options k=v ...] [--launcher ...]

``--outfile-prefix PREFIX`` writes the LVIS-format detections PREFIX.bbox.json /
PREFIX.segm.json that ``analysis/per_class_ap.py`` reads; ``--out`` the results pickle.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from projects.c2am import compat  # noqa: E402  (first: stack fixes)


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='Test (and evaluate) a detector')
    p.add_argument('config', help='test config file path')
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('--work-dir', help='the dir to save logs and metrics')
    p.add_argument('--out', help='dump the predictions to this pickle file')
    p.add_argument('--outfile-prefix', help='write LVIS-format result json with this prefix')
    p.add_argument('--force', action='store_true', help='overwrite --out / result json')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config settings, key=value (mmengine syntax)')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = p.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmengine.config import Config
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            raise SystemExit(f'error: {what} not found: {path}')
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise SystemExit('error: --out must be a .pkl or .pickle file')
    outputs = [args.out] if args.out else []
    if args.outfile_prefix:
        outputs += [f'{args.outfile_prefix}.bbox.json', f'{args.outfile_prefix}.segm.json']
    clash = [p for p in outputs if osp.exists(p)]
    if clash and not args.force:
        raise SystemExit(f'error: {clash[0]} exists; pass --force to overwrite it')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.outfile_prefix:
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) \
            else [cfg.test_evaluator]
        for ev in evaluators:
            ev.outfile_prefix = args.outfile_prefix
    compat.setup_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if args.out is not None:
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    runner.test()
    return 0


if __name__ == '__main__':
    sys.exit(main())
