"""Train a detector (mmdet's tools/train.py, with this project's plugin and stack fixes).

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--auto-scale-lr] [--resume [CKPT]]
                                 [--allow-partial-load] [--force]
                                 [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]

Multi-GPU / multi-node: tools/dist_train.sh (torchrun), tools/slurm_train.sh.

Checked before anything is written (one ``error:`` line and exit status 2 otherwise): the
config loads and merges with ``--cfg-options`` and defines a model that builds; the work dir
can be created; a checkpoint to start from (``--resume CKPT``, the work dir's last checkpoint
for ``--resume``, or the config's ``load_from``) is a real checkpoint (loaded without running
code) whose keys and shapes fit the model: a partial fit (fine-tuning from another dataset's
detector) needs ``--allow-partial-load``, which prints how many keys matched.

A work dir that already holds checkpoints is refused unless ``--resume`` continues the run or
``--force`` starts afresh there. ``--force`` never deletes: the earlier run's checkpoints
(``*.pth`` and ``last_checkpoint``) stay in place until the new run saves its first
checkpoint; just before that save they are moved into ``<work dir>/replaced-<time>/``, where
they stay until you remove them. A new run that fails before its first checkpoint leaves them
untouched.

Non-finite loss: every iteration's loss is checked; at the first NaN / Inf loss training stops
with one line naming the iteration and the loss terms, before a checkpoint of those weights is
written (earlier checkpoints are kept).
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # configs import projects.* through custom_imports
    sys.path.insert(0, str(ROOT))
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from projects.c2am import compat  # noqa: E402  (first: stack fixes)
from projects.c2am.cli import UserError, check_output_location, existing_file, run_cli  # noqa: E402
from projects.c2am.run_checks import (  # noqa: E402
    build_model,
    cfg_options_action,
    check_checkpoint_fits,
    load_config,
    stop_on_invalid_loss,
)

CHECKPOINT_FILES = ('*.pth', 'last_checkpoint')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Train a detector')
    p.add_argument('config', type=existing_file, help='train config file path')
    p.add_argument('--work-dir', help='the dir to save logs and models')
    p.add_argument('--amp', action='store_true', help='automatic mixed precision')
    p.add_argument('--auto-scale-lr', action='store_true',
                   help='scale the lr by (total batch size / auto_scale_lr.base_batch_size)')
    p.add_argument('--resume', nargs='?', type=str, const='auto',
                   help='resume from CKPT, or from the latest checkpoint of the work dir')
    p.add_argument('--allow-partial-load', action='store_true',
                   help='accept a checkpoint (load_from / --resume) that fits the model only '
                        'in part')
    p.add_argument('--force', action='store_true',
                   help='start afresh in a work dir that already holds checkpoints (they are '
                        'moved into <work dir>/replaced-<time>/, never deleted)')
    p.add_argument('--cfg-options', nargs='+', action=cfg_options_action(),
                   help='override config settings, key=value (mmengine syntax)')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = p.parse_args(argv)
    if args.resume is not None and args.resume != 'auto':
        if not osp.isfile(args.resume):
            p.error(f'--resume {args.resume}: not found, expected a checkpoint file')
    if args.resume is not None and args.force:
        p.error('--resume continues the run in the work dir, --force starts afresh: pick one')
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def _old_checkpoints(work_dir: str) -> list[Path]:
    if not osp.isdir(work_dir):
        return []
    return sorted(p for pattern in CHECKPOINT_FILES for p in Path(work_dir).glob(pattern)
                  if p.is_file())


def build_config(args):
    """The run's config; every check that needs no model happens here (nothing written)."""
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    check_output_location(cfg.work_dir, is_dir=True)
    if args.amp:
        import torch
        if not torch.cuda.is_available():
            raise UserError('--amp needs a CUDA device; none is available (train without --amp)')
        if not isinstance(cfg.get('optim_wrapper'), dict):
            raise UserError('--amp needs an optim_wrapper in the config')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'base_batch_size' not in (cfg.get('auto_scale_lr') or {}):
            raise UserError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    existing = _old_checkpoints(cfg.work_dir)
    if existing and args.resume is None and not args.force:
        raise UserError(f'{cfg.work_dir} already holds checkpoints ({existing[0].name}); '
                        'pass --resume to continue, --force to start afresh there (the old '
                        'checkpoints are moved aside, not deleted), or another --work-dir')
    return cfg


def start_checkpoint(cfg) -> str | None:
    """The checkpoint the run will load: load_from, or the work dir's latest for --resume."""
    if cfg.get('load_from'):
        return cfg.load_from
    if cfg.get('resume'):
        from mmengine.runner import find_latest_checkpoint
        latest = find_latest_checkpoint(cfg.work_dir)
        if latest is not None and not osp.isfile(latest):
            raise UserError(f'{cfg.work_dir}/last_checkpoint names {latest}, which does not '
                            'exist; pass --resume CKPT or fix that file')
        return latest
    return None


def check_start_checkpoint(cfg, model, allow_partial: bool) -> None:
    ckpt = start_checkpoint(cfg)
    if ckpt is None:
        return
    if not osp.isfile(ckpt):
        raise UserError(f'load_from: checkpoint not found: {ckpt}')
    print(check_checkpoint_fits(model, ckpt, allow_partial=allow_partial), file=sys.stderr)


def move_aside_on_first_save(paths: list[Path], work_dir: str):
    """A hook that moves ``paths`` aside (:func:`move_aside`) just before the run saves its
    first checkpoint, so that a run failing earlier leaves them where they were."""
    from mmengine.dist import get_rank
    from mmengine.hooks import Hook

    class MoveAsideOnFirstSave(Hook):
        priority = 'VERY_HIGH'

        def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
            if paths and get_rank() == 0 and any(p.exists() for p in paths):
                target = move_aside([p for p in paths if p.exists()], work_dir)
                runner.logger.info(f'moved the earlier run\'s checkpoints to {target}')
                paths.clear()

    return MoveAsideOnFirstSave()


def move_aside(paths: list[Path], work_dir: str) -> Path:
    """Move an earlier run's checkpoints into ``<work_dir>/replaced-<time>/`` (never delete)."""
    target = Path(work_dir) / f'replaced-{time.strftime("%Y%m%d_%H%M%S")}'
    suffix = 0
    while target.exists():
        suffix += 1
        target = target.with_name(f'{target.name.split("~")[0]}~{suffix}')
    target.mkdir()
    for p in paths:
        p.rename(target / p.name)
    return target


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
    check_start_checkpoint(cfg, build_model(cfg), args.allow_partial_load)
    old = _old_checkpoints(cfg.work_dir) if args.force else []
    compat.setup_cpu_distributed(cfg)
    try:
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    except Exception as err:  # the config's datasets, hooks, schedules: the user's to fix
        first = str(err).strip().splitlines()
        raise UserError(f'the runner does not build from {args.config} ({type(err).__name__}'
                        f'{": " + first[0][:200] if first else ""})') from None
    runner.register_hook(stop_on_invalid_loss(), priority='VERY_HIGH')
    if old:
        runner.register_hook(move_aside_on_first_save(old, cfg.work_dir), priority='VERY_HIGH')
    runner.train()
    report_rank_agreement(runner)
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
