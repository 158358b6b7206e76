import os
from pathlib import Path

import pytest

# Deterministic, quiet CPU runs: one intra-op thread is faster than two on a busy 2-core box.
os.environ.setdefault('OMP_NUM_THREADS', '1')

ROOT = Path(__file__).resolve().parents[1]
DETECTOR_CONFIGS = {
    'c2am': ROOT / 'configs/mask_rcnn/mask-rcnn_r50_fpn_c2am_ms-2x_lvis-v1.py',
    'ce': ROOT / 'configs/mask_rcnn/mask-rcnn_r50_fpn_ce_ms-2x_lvis-v1.py',
    'cascade': ROOT / 'configs/cascade_mask_rcnn/cascade-mask-rcnn_r50_fpn_c2am_ms-2x_lvis-v1.py',
}


@pytest.fixture(scope='session')
def synthetic_lvis(tmp_path_factory):
    from projects.c2am.testing import make_synthetic_lvis
    return make_synthetic_lvis(tmp_path_factory.mktemp('lvis'), num_train=6, num_val=3)


@pytest.fixture(scope='session')
def detector_checkpoints(synthetic_lvis, tmp_path_factory):
    """CPU-sized C2AM, CE and Cascade-C2AM detectors trained 2 iterations: their checkpoints."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from projects.c2am.testing import cpu_smoke_config
    out = {}
    for name, cfg_path in DETECTOR_CONFIGS.items():
        work_dir = tmp_path_factory.mktemp(f'det_{name}')
        cfg = cpu_smoke_config(Config.fromfile(str(cfg_path)), synthetic_lvis['data_root'],
                               str(work_dir), max_iters=2, val_interval=10_000)
        Runner.from_cfg(cfg).train()
        out[name] = work_dir / 'iter_2.pth'
    return out
