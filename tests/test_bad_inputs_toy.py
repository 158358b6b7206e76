"""toy_mnist under bad, hostile and extreme input: every refusal is one line and exit status 2
before anything is written; a failed, diverged or interrupted run leaves the old output as it
was; --force never deletes a file the tool did not write."""
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from projects.c2am.cli import run_cli
from projects.c2am.outputs import MANIFEST
from toy_mnist.data import load_mnist
from toy_mnist.run import main
from toy_mnist.train import DivergedError, ToyConfig, ToyConfigError, check_config

ROOT = Path(__file__).resolve().parents[1]
FAST = ['--epochs', '1', '--max-train-per-class', '20', '--tail-count', '5', '--max-test', '100',
        '--no-tsne', '--quiet']


def run(argv, capsys):
    """Run the CLI in-process; returns ``(exit status, stderr)``."""
    status = run_cli(main, [str(a) for a in argv])
    return status, capsys.readouterr().err


def assert_one_line_error(status, err, *fragments):
    assert status == 2, err
    assert err.startswith('error: ') and err.count('\n') == 1, err
    assert 'Traceback' not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` (hidden ones too) with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob('*')) if p.is_file()}


def strict_json(path: Path):
    def refuse(name):
        raise AssertionError(f'{path} holds {name}')
    return json.loads(path.read_text(), parse_constant=refuse)


# ---------------------------------------------------------------- flags: type, range, rules

BAD_FLAGS = [
    (['--loss', 'focal'], 'focal'),
    (['--tail-classes', '7', '7'], 'twice'),
    (['--tail-classes', '7', '12'], '--tail-classes must lie in 0-9'),
    (['--tail-classes', '-1'], '--tail-classes must lie in 0-9'),
    (['--tail-classes', 'x'], '--tail-classes'),
    (['--tail-classes', *map(str, range(10))], 'head class'),
    (['--tail-count', '0'], '--tail-count'),
    (['--tail-count', '-5'], '--tail-count'),
    (['--tail-count', '1.5'], '--tail-count'),
    (['--feat-dim', '0'], '--feat-dim'),
    (['--feat-dim', '1000000000'], '--feat-dim'),
    (['--scale', '0'], '--scale'),
    (['--scale', '-1'], '--scale'),
    (['--scale', 'nan'], '--scale'),
    (['--scale', 'inf'], '--scale'),
    (['--alpha', '-0.1'], '--alpha'),
    (['--alpha', 'nan'], '--alpha'),
    (['--margin', 'nan'], '--margin'),
    (['--margin', '-0.1'], '--margin'),
    (['--margin', '4'], '--margin'),
    (['--epochs', '0'], '--epochs'),
    (['--epochs', '2.5'], '--epochs'),
    (['--batch-size', '0'], '--batch-size'),
    (['--batch-size', '-128'], '--batch-size'),
    (['--lr', 'nan'], '--lr'),
    (['--lr', '0'], '--lr'),
    (['--lr', '-0.05'], '--lr'),
    (['--lr', 'inf'], '--lr'),
    (['--lr', 'fast'], '--lr'),
    (['--weight-decay', '-1'], '--weight-decay'),
    (['--weight-decay', 'nan'], '--weight-decay'),
    (['--seed', '-1'], '--seed'),
    (['--seed', str(2**32)], '--seed'),
    (['--seed', 'abc'], '--seed'),
    (['--device', 'tpu'], '--device'),
    (['--device', 'cuda:x'], '--device'),
    (['--tsne-samples', '-1'], '--tsne-samples'),
    (['--tsne-samples', '10'], 't-SNE'),
    (['--max-test', '20'], 't-SNE'),
    (['--max-test', '0'], '--max-test'),
    (['--max-test', '-3'], '--max-test'),
    (['--max-train-per-class', '0'], '--max-train-per-class'),
    (['--max-train-per-class', '50'], 'not imbalanced'),
    (['--max-train-per-class', '100'], 'not imbalanced'),
    (['--figure3', '--max-train-per-class', '50'], 'not imbalanced'),
    (['--bogus'], '--bogus'),
    (['--epochs'], '--epochs'),
]


@pytest.mark.parametrize('args, fragment', BAD_FLAGS, ids=[' '.join(a) for a, _ in BAD_FLAGS])
def test_bad_flag_is_one_line_and_writes_nothing(args, fragment, tmp_path, capsys):
    status, err = run([*args, '--out', tmp_path / 'out'], capsys)
    assert_one_line_error(status, err, fragment)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has CUDA')
@pytest.mark.parametrize('device', ['cuda', 'cuda:0', 'CUDA:1'])
def test_cuda_without_cuda_is_refused(device, tmp_path, capsys):
    status, err = run(['--device', device, '--out', tmp_path / 'out'], capsys)
    assert_one_line_error(status, err, 'no CUDA device', '--device cpu')
    assert list(tmp_path.iterdir()) == []


def test_cuda_index_beyond_the_devices_is_refused(tmp_path, capsys):
    status, err = run(['--device', 'cuda:99', '--out', tmp_path / 'out'], capsys)
    assert_one_line_error(status, err, '--device')


def test_tail_count_beyond_the_class_is_refused_before_writing(tmp_path, capsys):
    status, err = run(['--tail-count', '6000', '--out', tmp_path / 'out'], capsys)
    assert_one_line_error(status, err, '--tail-count 6000', 'class 8')
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('change, fragment', [
    (dict(tail_classes=[7, 7]), 'twice'), (dict(lr=float('nan')), '--lr'),
    (dict(max_test=0), '--max-test'), (dict(feat_dim=0), '--feat-dim'),
    (dict(batch_size=True), '--batch-size'), (dict(seed=-1), '--seed'),
    (dict(loss='focal'), '--loss'), (dict(tail_classes=[]), '1 to 9'),
    (dict(max_train_per_class=40), 'not imbalanced'), (dict(warmup_iters=-1), 'warmup_iters'),
    (dict(scale=float('inf')), '--scale'), (dict(device='cuda:abc'), '--device'),
])
def test_api_refuses_bad_configs(change, fragment):
    with pytest.raises(ToyConfigError, match=fragment.replace('-', r'\-')):
        check_config(ToyConfig(**change))
    check_config(ToyConfig(balanced=True, max_train_per_class=40))  # no imbalance to lose


# ---------------------------------------------------------------- input files

def _write_idx(path: Path, array: np.ndarray, *, gz: bool = True, ndim=None) -> None:
    header = bytes([0, 0, 8, ndim or array.ndim]) + b''.join(
        int(d).to_bytes(4, 'big') for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(path, 'wb') as f:
            f.write(data)
    else:
        path.write_bytes(data)


@pytest.fixture(scope='module')
def small_mnist():
    """20 training and 10 test images per class from the real MNIST."""
    train_x, train_y, test_x, test_y = load_mnist()
    tr = np.concatenate([np.flatnonzero(train_y == c)[:20] for c in range(10)])
    te = np.concatenate([np.flatnonzero(test_y == c)[:10] for c in range(10)])
    return train_x[tr], train_y[tr], test_x[te], test_y[te]


STEMS = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte',
         't10k-labels-idx1-ubyte')


def _idx_root(folder: Path, arrays) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in zip(STEMS, arrays):
        _write_idx(folder / f'{stem}.gz', array)
    return folder


SMALL_RUN = ['--epochs', '1', '--tail-count', '5', '--no-tsne', '--quiet', '--batch-size', '32']


def test_a_valid_idx_folder_trains(small_mnist, tmp_path, capsys):
    root = _idx_root(tmp_path / 'mnist', small_mnist)
    status, err = run(['--data-root', root, '--out', tmp_path / 'out', *SMALL_RUN], capsys)
    assert status == 0, err
    metrics = strict_json(tmp_path / 'out' / 'metrics.json')
    assert metrics['train_class_counts'] == [20] * 7 + [5] * 3


def _corrupt(root: Path, how: str, arrays) -> str:
    """Damage the IDX folder ``root`` in one way; returns a fragment of the expected message."""
    images = root / f'{STEMS[0]}.gz'
    if how == 'missing file':
        images.unlink()
        return 'not found'
    if how == 'empty file':
        images.write_bytes(b'')
        return str(images)
    if how == 'truncated gzip':
        images.write_bytes(images.read_bytes()[:-200])
        return str(images)
    if how == 'not gzip':
        images.write_bytes(b'hello, these are not images' * 10)
        return str(images)
    if how == 'text file, no .gz':
        images.unlink()
        (root / STEMS[0]).write_text('just some notes\n')
        return 'not an MNIST IDX file'
    if how == 'truncated raw':
        images.unlink()
        _write_idx(root / STEMS[0], arrays[0], gz=False)
        raw = root / STEMS[0]
        raw.write_bytes(raw.read_bytes()[:-100])
        return 'truncated'
    if how == 'trailing bytes':
        images.unlink()
        _write_idx(root / STEMS[0], arrays[0], gz=False)
        with open(root / STEMS[0], 'ab') as f:
            f.write(b'\0' * 7)
        return 'longer than its header'
    if how == 'header only':
        images.write_bytes(gzip.compress(bytes([0, 0, 8, 3])))
        return 'truncated'
    if how == 'labels in place of images':
        _write_idx(images, arrays[1])
        return 'expected 3-d'
    if how == 'float data':
        images.write_bytes(gzip.compress(bytes([0, 0, 0x0D, 3]) + b'\0' * 12))
        return 'not an MNIST IDX file'
    if how == 'fewer labels than images':
        _write_idx(root / f'{STEMS[1]}.gz', arrays[1][:-1])
        return 'do not form an MNIST split'
    if how == 'label 11':
        labels = arrays[1].copy()
        labels[0] = 11
        _write_idx(root / f'{STEMS[1]}.gz', labels)
        return 'outside 0-9'
    if how == 'images not 28x28':
        _write_idx(images, arrays[0][:, :20, :20])
        return 'do not form an MNIST split'
    if how == 'no test images':
        _write_idx(root / f'{STEMS[2]}.gz', arrays[2][:0])
        _write_idx(root / f'{STEMS[3]}.gz', arrays[3][:0])
        return 'N >= 1'
    if how == 'directory named like the file':
        images.unlink()
        (root / STEMS[0]).mkdir()
        return 'not found'
    raise AssertionError(how)


CORRUPTIONS = ['missing file', 'empty file', 'truncated gzip', 'not gzip', 'text file, no .gz',
               'truncated raw', 'trailing bytes', 'header only', 'labels in place of images',
               'float data', 'fewer labels than images', 'label 11', 'images not 28x28',
               'no test images', 'directory named like the file']


@pytest.mark.parametrize('how', CORRUPTIONS)
def test_broken_idx_files_are_one_line_and_keep_the_old_output(how, small_mnist, tmp_path,
                                                               capsys):
    root = _idx_root(tmp_path / 'mnist', small_mnist)
    old = tmp_path / 'out'
    assert run(['--data-root', root, '--out', old, *SMALL_RUN], capsys)[0] == 0
    before = snapshot(old)
    fragment = _corrupt(root, how, small_mnist)
    status, err = run(['--data-root', root, '--out', old, '--force', *SMALL_RUN], capsys)
    assert_one_line_error(status, err, fragment)
    assert snapshot(old) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['mnist', 'out']


@pytest.mark.parametrize('kind', ['missing', 'file', 'empty dir'])
def test_data_root_of_the_wrong_kind(kind, tmp_path, capsys):
    root = tmp_path / 'data'
    if kind == 'file':
        root.write_text('x')
    elif kind == 'empty dir':
        root.mkdir()
    status, err = run(['--data-root', root, '--out', tmp_path / 'out', *FAST], capsys)
    assert_one_line_error(status, err, str(root))
    assert not (tmp_path / 'out').exists()


# ---------------------------------------------------------------- output locations

def test_output_whose_parent_is_a_file(tmp_path, capsys):
    (tmp_path / 'blocker').write_text('mine')
    status, err = run(['--out', tmp_path / 'blocker' / 'run', *FAST], capsys)
    assert_one_line_error(status, err, 'is a file')
    assert (tmp_path / 'blocker').read_text() == 'mine'


def test_output_that_is_a_file(tmp_path, capsys):
    (tmp_path / 'run').write_text('mine')
    for extra in ([], ['--force']):
        status, err = run(['--out', tmp_path / 'run', *FAST, *extra], capsys)
        assert_one_line_error(status, err, 'is a file')
    assert (tmp_path / 'run').read_text() == 'mine'


@pytest.mark.skipif(os.geteuid() == 0, reason='root may write anywhere')
def test_unwritable_parent(tmp_path, capsys):
    locked = tmp_path / 'locked'
    locked.mkdir()
    locked.chmod(0o500)
    try:
        status, err = run(['--out', locked / 'run', *FAST], capsys)
    finally:
        locked.chmod(0o700)
    assert_one_line_error(status, err, 'permission')


def test_user_files_survive_with_and_without_force(tmp_path, capsys):
    out = tmp_path / 'mine'
    out.mkdir()
    (out / 'thesis.tex').write_text('precious')
    (out / 'metrics.json').write_text('{"my": "numbers"}')
    before = snapshot(out)
    status, err = run(['--out', out, *FAST], capsys)
    assert_one_line_error(status, err, '--force')
    status, err = run(['--out', out, '--force', *FAST], capsys)
    assert_one_line_error(status, err, 'did not write')
    assert snapshot(out) == before


def test_force_replaces_only_its_own_run(tmp_path, capsys):
    out = tmp_path / 'run'
    assert run(['--out', out, *FAST], capsys)[0] == 0
    first = snapshot(out)
    assert set(first) == {MANIFEST, 'metrics.json', 'model.pth'}
    status, err = run(['--out', out, *FAST], capsys)  # no --force: refused, kept
    assert_one_line_error(status, err, '--force')
    assert snapshot(out) == first
    assert run(['--out', out, '--force', '--seed', '1', *FAST], capsys)[0] == 0
    assert strict_json(out / 'metrics.json')['config']['seed'] == 1
    (out / 'notes.txt').write_text('added by the user')
    status, err = run(['--out', out, '--force', *FAST], capsys)
    assert_one_line_error(status, err, 'notes.txt')
    assert (out / 'notes.txt').read_text() == 'added by the user'


# ---------------------------------------------------------------- non-finite and extreme

def test_diverging_run_stops_and_writes_nothing(tmp_path, capsys):
    old = tmp_path / 'run'
    assert run(['--out', old, *FAST], capsys)[0] == 0
    before = snapshot(old)
    status, err = run(['--out', old, '--force', '--scale', '1e30', *FAST], capsys)
    assert_one_line_error(status, err, 'diverged', '--lr')
    assert snapshot(old) == before
    status, err = run(['--out', tmp_path / 'new', '--scale', '1e30', *FAST], capsys)
    assert_one_line_error(status, err, 'diverged')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['run']


def test_nan_loss_mid_training_is_caught(tmp_path, monkeypatch):
    from toy_mnist import train

    class NanAfterTwoSteps(torch.nn.Module):
        calls = 0

        def forward(self, logits, labels, weight_norm=None):
            NanAfterTwoSteps.calls += 1
            loss = torch.nn.functional.cross_entropy(logits, labels)
            return loss * float('nan') if NanAfterTwoSteps.calls > 2 else loss

    monkeypatch.setattr(train, 'make_criterion', lambda cfg: NanAfterTwoSteps())
    cfg = ToyConfig(epochs=1, max_train_per_class=20, tail_count=5, max_test=50,
                    batch_size=16)
    with pytest.raises(DivergedError, match='step 3 of'):
        train.train_and_evaluate(cfg, progress=False)


@pytest.mark.parametrize('extra', [
    ['--feat-dim', '1', '--batch-size', '1'],
    ['--loss', 'fixed', '--margin', '3.14159'],
    ['--alpha', '1e6', '--scale', '1000'],
    ['--lr', '1e-12', '--weight-decay', '0'],
    ['--tail-classes', *map(str, range(9)), '--seed', str(2**32 - 1)],
    ['--max-test', '3'],  # most classes have no test image: null, never NaN
])
def test_extreme_valid_inputs_stay_finite(extra, tmp_path, capsys):
    out = tmp_path / 'run'
    status, err = run(['--out', out, *FAST, *extra], capsys)
    assert status == 0, err
    metrics = strict_json(out / 'metrics.json')
    assert all(np.isfinite(metrics['weight_norms']))
    assert all(v is None or 0 <= v <= 1 for v in metrics['per_class_accuracy'])
    state = torch.load(out / 'model.pth', weights_only=True)
    assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())


def test_missing_classes_are_null_not_nan(tmp_path, capsys):
    status, err = run(['--out', tmp_path / 'run', *FAST, '--max-test', '3'], capsys)
    assert status == 0, err
    metrics = strict_json(tmp_path / 'run' / 'metrics.json')
    present = {c for c in range(10) if metrics['test_class_counts'][c] > 0}
    assert 0 < len(present) < 10
    assert [v is not None for v in metrics['per_class_accuracy']] == \
        [c in present for c in range(10)]


# ---------------------------------------------------------------- interruption

def test_exception_midway_keeps_the_old_output(tmp_path, capsys, monkeypatch):
    from toy_mnist import run as run_module
    out = tmp_path / 'run'
    assert run(['--out', out, *FAST], capsys)[0] == 0
    before = snapshot(out)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, 'print_table', interrupted)  # after the files are written
    assert run(['--out', out, '--force', '--seed', '3', *FAST], capsys)[0] == 130
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['run']
    monkeypatch.undo()
    assert run(['--out', out, '--force', '--seed', '3', *FAST], capsys)[0] == 0
    assert strict_json(out / 'metrics.json')['config']['seed'] == 3


def test_figure3_failing_in_its_last_panel_keeps_nothing_half(tmp_path, capsys, monkeypatch):
    from toy_mnist import run as run_module
    real = run_module.train_and_evaluate

    def third_fails(cfg, **kwargs):
        if cfg.loss == 'c2am':
            raise RuntimeError('disk full')
        return real(cfg, **kwargs)

    monkeypatch.setattr(run_module, 'train_and_evaluate', third_fails)
    with pytest.raises(RuntimeError, match='disk full'):
        run(['--figure3', '--out', tmp_path / 'f3', *FAST], capsys)
    assert list(tmp_path.iterdir()) == []


def test_killed_run_keeps_the_old_output_and_the_rerun_works(tmp_path):
    out = tmp_path / 'run'
    cmd = [sys.executable, str(ROOT / 'toy_mnist' / 'run.py'), '--out', str(out), *FAST]
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    before = snapshot(out)
    slow = [*cmd, '--force', '--epochs', '200']
    proc = subprocess.Popen(slow, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not list(tmp_path.glob('.run.tmp-*')) and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, 'the run ended before it could be killed'
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert snapshot(out) == before
    assert not list(tmp_path.glob('run?*'))  # nothing else under the final name
    rerun = subprocess.run([*cmd, '--force', '--seed', '5'], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert strict_json(out / 'metrics.json')['config']['seed'] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ['run']  # the stale folder is gone


def test_cli_entry_point_prints_one_line(tmp_path):
    res = subprocess.run([sys.executable, str(ROOT / 'toy_mnist' / 'run.py'), '--lr', 'nan',
                          '--out', str(tmp_path / 'x')], capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.count('\n') == 1 and res.stderr.startswith('error: argument --lr')
    assert not (tmp_path / 'x').exists()
