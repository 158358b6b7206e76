"""tools/: train.py (2 iterations), test.py (LVIS json + pickle), dist_train.sh on 2 CPU ranks."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

from projects.c2am.testing import cpu_smoke_config

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def smoke_config(synthetic_lvis, tmp_path_factory):
    """The real C2AM config, CPU-sized, dumped to a file as a user would pass it."""
    path = tmp_path_factory.mktemp('cfg') / 'mask-rcnn_c2am_smoke.py'
    cfg = cpu_smoke_config(Config.fromfile(str(ROOT / 'configs/mask_rcnn/'
                                                  'mask-rcnn_r50_fpn_c2am_ms-2x_lvis-v1.py')),
                           synthetic_lvis['data_root'], str(path.parent / 'unused'), max_iters=2,
                           val_interval=10_000)
    cfg.dump(str(path))
    return path


def _run(*args, timeout=600):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run([*map(str, args)], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=timeout)


def test_train_then_test_writes_lvis_results(smoke_config, synthetic_lvis, tmp_path):
    work = tmp_path / 'work'
    res = _run(sys.executable, 'tools/train.py', smoke_config, '--work-dir', work)
    assert res.returncode == 0, res.stderr[-2000:]
    ckpt = work / 'iter_2.pth'
    assert ckpt.is_file()
    # a second run into the same work dir must not silently overwrite the checkpoints
    again = _run(sys.executable, 'tools/train.py', smoke_config, '--work-dir', work)
    assert again.returncode != 0 and '--resume' in again.stderr
    prefix = tmp_path / 'results'
    res = _run(sys.executable, 'tools/test.py', smoke_config, ckpt, '--work-dir',
               tmp_path / 'test', '--outfile-prefix', prefix, '--out', tmp_path / 'res.pkl')
    assert res.returncode == 0, res.stderr[-2000:]
    assert 'lvis/segm_APr' in res.stdout + res.stderr
    for suffix in ('.bbox.json', '.segm.json'):
        assert isinstance(json.loads(Path(f'{prefix}{suffix}').read_text()), list)
    assert (tmp_path / 'res.pkl').is_file()
    res = _run(sys.executable, 'tools/test.py', smoke_config, ckpt, '--out',
               tmp_path / 'res.pkl')
    assert res.returncode != 0 and '--force' in res.stderr


def test_dist_train_two_cpu_ranks_agree(smoke_config, tmp_path):
    res = _run('bash', 'tools/dist_train.sh', smoke_config, 2, '--work-dir', tmp_path / 'dist')
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-3000:]
    assert 'parameter checksums of 2 ranks' in log and 'ranks agree: True' in log
    assert (tmp_path / 'dist' / 'iter_2.pth').is_file()
