"""Smoke run of C2AM: the loss on a tiny example, then 2 Mask R-CNN training iterations.

Runs the real LVIS v1 C2AM config, shrunk for a CPU (projects/c2am/testing/cpu_smoke.py), on a
generated LVIS-format dataset, through mmengine's Runner, and prints the losses.

    python tools/smoke_train.py [--config CFG] [--iters 2] [--work-dir DIR] [--force]
"""
from __future__ import annotations

import math
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# mmengine 0.10.7 imports pkg_resources; setuptools 80 warns about it on every import.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from projects.c2am.c2am import c2am_logits, c2am_loss, c2am_margins  # noqa: E402
from projects.c2am.cli import (  # noqa: E402
    ArgumentParser,
    UserError,
    existing_file,
    int_in_range,
    run_cli,
)
from projects.c2am.outputs import atomic_output_dir, prepare_output_dir, repoint  # noqa: E402

DEFAULT_CONFIG = ROOT / 'configs/mask_rcnn/mask-rcnn_r50_fpn_c2am_ms-2x_lvis-v1.py'
MAX_ITERS = 1000  # a smoke run; train for real with tools/train.py


def tiny_example() -> None:
    """Three classes with weight norms 2 : 1 : 0.5, one sample of each."""
    weight = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.5 / math.sqrt(2), 0.5 / math.sqrt(2)]])
    features = torch.tensor([[1.0, 0.2], [0.3, 1.0], [1.0, 1.1]])
    labels = torch.tensor([0, 1, 2])
    torch.set_printoptions(precision=4, sci_mode=False)
    print('== C2AM on a tiny example (||W|| = 2, 1, 0.5; s = 30, alpha = 0.5)')
    print('margins m_ij (Eq. 7), rows = sample label i:\n', c2am_margins(weight.norm(dim=1),
                                                                        labels, alpha=0.5))
    print('training logits (Eq. 6):\n', c2am_logits(features, weight, labels))
    print(f'C2AM loss {c2am_loss(features, weight, labels).item():.4f}   '
          f'cosine-classifier loss (alpha = 0) '
          f'{c2am_loss(features, weight, labels, alpha=0.0).item():.4f}')


def load_smoke_config(config: Path, data_root: str, work_dir: str, iters: int):
    """``config`` shrunk for the CPU (see :func:`cpu_smoke_config`).

    Raises:
        UserError: the file is not a readable mmengine config, or not an LVIS Mask R-CNN /
            Cascade Mask R-CNN config this smoke run can shrink.
    """
    from mmengine.config import Config

    from projects.c2am.testing import cpu_smoke_config
    try:
        cfg = Config.fromfile(str(config))
    except Exception as err:  # SyntaxError, missing base, not Python, ...
        reason = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise UserError(f'{config}: not a readable mmengine config ({reason})') from None
    try:
        return cpu_smoke_config(cfg, data_root, work_dir, max_iters=iters)
    except (AttributeError, KeyError, TypeError) as err:
        raise UserError(f'{config}: not a Mask R-CNN LVIS config the smoke run can shrink '
                        f'({err}); pass one of configs/mask_rcnn or configs/cascade_mask_rcnn') \
            from None


def smoke_train(config: Path, iters: int, work_dir: Path) -> None:
    """Generate tiny LVIS-format data under ``work_dir`` and train ``iters`` iterations."""
    from mmengine.runner import Runner

    from projects.c2am.testing import make_synthetic_lvis

    print(f'\n== {iters} training iterations of {config.name} (CPU-sized) on generated '
          f'LVIS-format data')
    data = make_synthetic_lvis(work_dir / 'data')
    cfg = load_smoke_config(config, data['data_root'], str(work_dir), iters)
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub.log_scalars
    print('\nlosses at the last iteration:')
    for key in sorted(k for k in hub if k.startswith('train/') and 'loss' in k):
        print(f'  {key[len("train/"):]:<16} {hub[key].current():.4f}')


def build_parser() -> ArgumentParser:
    """The command line; every value is type- and range-checked as it is parsed."""
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', type=existing_file, default=DEFAULT_CONFIG)
    parser.add_argument('--iters', type=int_in_range(1, MAX_ITERS), default=2)
    parser.add_argument('--work-dir', type=Path,
                        default=ROOT / 'work_dirs' / 'smoke' / time.strftime('%Y%m%d_%H%M%S'))
    parser.add_argument('--force', action='store_true',
                        help='replace a work dir this tool wrote (other files are never deleted)')
    return parser


def check_args(args) -> Path:
    """Check the config and the work dir before anything is written.

    Returns:
        Path: the work dir.

    Raises:
        UserError: a config that can not be read or shrunk, or a work dir that can not be
            written or already holds results.
    """
    args.config = args.config.resolve()
    work_dir = prepare_output_dir(args.work_dir, force=args.force)
    load_smoke_config(args.config, str(work_dir / 'data'), str(work_dir), args.iters)
    return work_dir


def main(argv: list[str] | None = None) -> int:
    """Check everything, then train into a temporary folder that replaces the work dir."""
    args = build_parser().parse_args(argv)
    work_dir = check_args(args)
    tiny_example()
    with atomic_output_dir(work_dir, force=args.force) as tmp:
        smoke_train(args.config, args.iters, tmp)
        repoint(tmp, work_dir)
    print(f'wrote {work_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
