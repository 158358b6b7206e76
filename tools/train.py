"""Train a detector (mmdet's tools/train.py, with this project's plugin and stack fixes).

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--auto-scale-lr] [--resume [CKPT]]
                                 [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]

Multi-GPU / multi-node: tools/dist_train.sh (torchrun), tools/slurm_train.sh.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # configs import projects.* through custom_imports
    sys.path.insert(0, str(ROOT))
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from projects.c2am import compat  # noqa: E402  (first: stack fixes)


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='Train a detector')
    p.add_argument('config', help='train config file path')
    p.add_argument('--work-dir', help='the dir to save logs and models')
    p.add_argument('--amp', action='store_true', help='automatic mixed precision')
    p.add_argument('--auto-scale-lr', action='store_true',
                   help='scale the lr by (total batch size / auto_scale_lr.base_batch_size)')
    p.add_argument('--resume', nargs='?', type=str, const='auto',
                   help='resume from CKPT, or from the latest checkpoint of the work dir')
    p.add_argument('--force', action='store_true',
                   help='start afresh in a work dir that already holds checkpoints')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config settings, key=value (mmengine syntax)')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = p.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_config(args):
    from mmengine.config import Config
    if not osp.isfile(args.config):
        raise SystemExit(f'error: config not found: {args.config}')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise SystemExit('error: --auto-scale-lr needs auto_scale_lr.base_batch_size in '
                             'the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    existing = sorted(Path(cfg.work_dir).glob('*.pth')) if osp.isdir(cfg.work_dir) else []
    if existing and args.resume is None and not args.force:
        raise SystemExit(f'error: {cfg.work_dir} already holds checkpoints ({existing[0].name}); '
                         'pass --resume to continue, --force to start afresh there, or '
                         'another --work-dir')
    return cfg


def report_rank_agreement(runner) -> None:
    """After distributed training, check that every rank ends with the same parameters."""
    import torch
    from mmengine.dist import all_gather, get_rank, get_world_size, is_distributed
    if not is_distributed():
        return
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum()
    sums = [float(s) for s in all_gather(checksum.reshape(1).to(checksum.device))]
    agree = max(sums) - min(sums) <= 1e-9 * max(1.0, abs(sums[0]))
    if get_rank() == 0:
        runner.logger.info(f'parameter checksums of {get_world_size()} ranks: {sums}; '
                           f'ranks agree: {agree}')


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmdet.utils import setup_cache_size_limit_of_dynamo
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    setup_cache_size_limit_of_dynamo()
    cfg = build_config(args)
    compat.setup_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()
    report_rank_agreement(runner)
    return 0


if __name__ == '__main__':
    sys.exit(main())
