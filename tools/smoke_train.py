"""Smoke run of C2AM: the loss on a tiny example, then 2 Mask R-CNN training iterations.

Runs the real LVIS v1 C2AM config, shrunk for a CPU (projects/c2am/testing/cpu_smoke.py), on a
generated LVIS-format dataset, through mmengine's Runner, and prints the losses.

    python tools/smoke_train.py [--config CFG] [--iters 2] [--work-dir DIR]
"""
from __future__ import annotations

import argparse
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

DEFAULT_CONFIG = ROOT / 'configs/mask_rcnn/mask-rcnn_r50_fpn_c2am_ms-2x_lvis-v1.py'


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


def smoke_train(config: Path, iters: int, work_dir: Path) -> None:
    from mmengine.config import Config
    from mmengine.runner import Runner

    from projects.c2am.testing import cpu_smoke_config, make_synthetic_lvis

    print(f'\n== {iters} training iterations of {config.name} (CPU-sized) on generated '
          f'LVIS-format data -> {work_dir}')
    data = make_synthetic_lvis(work_dir / 'data')
    cfg = cpu_smoke_config(Config.fromfile(str(config)), data['data_root'], str(work_dir),
                           max_iters=iters)
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub.log_scalars
    print('\nlosses at the last iteration:')
    for key in sorted(k for k in hub if k.startswith('train/') and 'loss' in k):
        print(f'  {key[len("train/"):]:<16} {hub[key].current():.4f}')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', type=Path, default=DEFAULT_CONFIG)
    parser.add_argument('--iters', type=int, default=2)
    parser.add_argument('--work-dir', type=Path,
                        default=ROOT / 'work_dirs' / 'smoke' / time.strftime('%Y%m%d_%H%M%S'))
    args = parser.parse_args(argv)
    if not args.config.is_file():
        parser.error(f'config not found: {args.config}')
    if args.iters < 1:
        parser.error('--iters must be >= 1')
    if args.work_dir.exists() and any(args.work_dir.iterdir()):
        parser.error(f'{args.work_dir} exists and is not empty; choose another --work-dir')
    tiny_example()
    smoke_train(args.config.resolve(), args.iters, args.work_dir)
    return 0


if __name__ == '__main__':
    sys.exit(main())
