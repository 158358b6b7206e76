"""End to end through mmengine's Runner on generated LVIS-format data (CPU-sized real configs):
2 training iterations, checkpoint, resume, LVISMetric."""
import math
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from projects.c2am.testing import cpu_smoke_config, make_synthetic_lvis

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    'mask_rcnn': ROOT / 'configs/mask_rcnn/mask-rcnn_r50_fpn_c2am_ms-2x_lvis-v1.py',
    'cascade': ROOT / 'configs/cascade_mask_rcnn/cascade-mask-rcnn_r50_fpn_c2am_ms-2x_lvis-v1.py',
}
LVIS_KEYS = [f'lvis/{task}_{k}' for task in ('bbox', 'segm')
             for k in ('AP', 'AP50', 'APr', 'APc', 'APf')]

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return make_synthetic_lvis(tmp_path_factory.mktemp('lvis'), num_train=6, num_val=3)['data_root']


def _runner(name, data_root, work_dir, max_iters, **extra):
    cfg = cpu_smoke_config(Config.fromfile(str(CONFIGS[name])), data_root, str(work_dir),
                           max_iters=max_iters, val_interval=10_000)
    cfg.update(extra)
    return Runner.from_cfg(cfg)


def _train_log(runner):
    return {k: v.current() for k, v in runner.message_hub.log_scalars.items()
            if k.startswith('train/') and 'loss' in k}


@pytest.mark.parametrize('name', ['mask_rcnn', 'cascade'])
def test_train_checkpoint_resume_and_lvis_metric(name, data_root, tmp_path):
    runner = _runner(name, data_root, tmp_path, max_iters=2)
    runner.train()
    losses = _train_log(runner)
    cls_keys = [k for k in losses if 'loss_cls' in k and 'rpn' not in k]
    assert cls_keys, losses  # the C2AM classification loss was logged
    assert all(math.isfinite(v) for v in losses.values())
    ckpt = tmp_path / 'iter_2.pth'
    assert ckpt.is_file()
    # the checkpoint loads with the SAFE unpickler (compat allow-list)
    state = torch.load(ckpt, weights_only=True, map_location='cpu')
    assert any(k.endswith('fc_cls.weight') for k in state['state_dict'])

    metrics = runner.val()
    for key in LVIS_KEYS:
        assert key in metrics, sorted(metrics)

    resumed = _runner(name, data_root, tmp_path, max_iters=3, resume=True, load_from=str(ckpt))
    resumed.train()
    assert resumed.iter == 3  # continued from iteration 2, not from scratch
    assert (tmp_path / 'iter_3.pth').is_file()
