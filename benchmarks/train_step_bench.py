"""Detector step benchmark: a CPU-sized Mask R-CNN training step with C2AM vs with CE.

    python benchmarks/train_step_bench.py [--rois 512] [--repeats 20] [--json out.json]

Both detectors come from the real LVIS v1 configs (configs/mask_rcnn/*_ce_* and *_c2am_*),
shrunk by projects/c2am/testing/cpu_smoke.py (1203 classes kept), with ``--rois`` sampled RoIs per
image (the paper's 512 by default) on a batch of 2 generated LVIS-format images. Steps are
interleaved (CE, C2AM, CE, ...) and the median time of each is reported with their ratio.

The comparison isolates the classification loss: the C2AM detector starts from the CE
detector's weights (every tensor of the same name and shape, the classifier included), and the
learning rate is 0 (the optimizer still runs), so both see the same proposals and the same
number of RoIs in every step. Otherwise the RPN's random proposals alone move the ratio by
+-25 % (the mask branch's cost follows the number of positive RoIs).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402

from projects.c2am.cli import nonnegative_int, positive_int, run_cli  # noqa: E402
from projects.c2am.outputs import check_output_files, dumps_json, write_atomic  # noqa: E402

CONFIGS = {
    'ce': ROOT / 'configs/mask_rcnn/mask-rcnn_r50_fpn_ce_ms-2x_lvis-v1.py',
    'c2am': ROOT / 'configs/mask_rcnn/mask-rcnn_r50_fpn_c2am_ms-2x_lvis-v1.py',
}


def build(name: str, data_root: str, rois: int):
    from mmdet.registry import DATASETS, MODELS
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper

    from projects.c2am.testing import cpu_smoke_config
    cfg = Config.fromfile(str(CONFIGS[name]))
    if 'custom_imports' in cfg:
        import projects.c2am.mmdet_plugin  # noqa: F401
    cfg = cpu_smoke_config(cfg, data_root, str(Path(data_root) / 'work_dir'))  # nothing written
    cfg.model.train_cfg.rcnn.sampler.num = rois
    cfg.model.train_cfg.rpn_proposal.max_per_img = rois
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    batch = pseudo_collate([dataset[0], dataset[1]])
    return model, build_optim_wrapper(model, cfg.optim_wrapper), batch


def same_weights(source, target) -> None:
    """Copy every tensor of ``source`` whose name and shape ``target`` shares."""
    theirs = target.state_dict()
    shared = {k: v for k, v in source.state_dict().items()
              if k in theirs and theirs[k].shape == v.shape}
    if len(shared) < len(theirs) - 2:  # at most the classifier may be named differently
        raise RuntimeError(f'only {len(shared)} of {len(theirs)} tensors are shared')
    target.load_state_dict(shared, strict=False)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rois', type=positive_int, default=512)
    p.add_argument('--repeats', type=positive_int, default=20)
    p.add_argument('--warmup', type=nonnegative_int, default=2)
    p.add_argument('--json', type=Path, help='also write the results here')
    p.add_argument('--force', action='store_true', help='overwrite --json')
    args = p.parse_args(argv)
    if args.json:
        check_output_files([args.json], force=args.force)
    from mmdet.utils import register_all_modules
    register_all_modules()
    from projects.c2am.testing import make_synthetic_lvis
    with tempfile.TemporaryDirectory() as tmp:
        data_root = make_synthetic_lvis(tmp, num_train=4, num_val=1)['data_root']
        runs = {name: build(name, data_root, args.rois) for name in CONFIGS}
        return measure(runs, args)


def measure(runs: dict, args) -> int:
    """Interleaved timed steps of the detectors in ``runs``; prints and writes the ratio."""
    same_weights(runs['ce'][0], runs['c2am'][0])
    for _, optim, _ in runs.values():
        for group in optim.optimizer.param_groups:
            group['lr'] = 0.0
    times = {name: [] for name in runs}
    for i in range(args.warmup + args.repeats):
        for name, (model, optim, batch) in runs.items():
            t0 = time.perf_counter()
            model.train_step(batch, optim)
            if i >= args.warmup:
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med['c2am'] / med['ce']
    header = (f'CPU-sized Mask R-CNN step (1203 classes, {args.rois} RoIs/img, batch 2), '
              f'torch {torch.__version__}, {time.strftime("%Y-%m-%d")}, median of '
              f'{args.repeats} interleaved steps')
    print(header)
    for k, v in med.items():
        print(f'{k:<6} {1e3 * v:8.1f} ms')
    print(f'c2am / ce step time: {ratio:.3f}')
    if args.json:
        write_atomic(args.json, dumps_json(dict(header=header, median_s=med, ratio=ratio),
                                           indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
