"""The imbalanced MNIST training subset of Sec. 3.3.

MNIST itself is read by :mod:`projects.c2am.data.mnist`, shared with LT-Digits."""
from __future__ import annotations

import numpy as np

from projects.c2am.data.mnist import MnistNotFoundError, load_mnist

__all__ = ['MnistNotFoundError', 'imbalanced_indices', 'load_mnist']


def imbalanced_indices(labels: np.ndarray, tail_classes: list[int], tail_count: int,
                       seed: int) -> np.ndarray:
    """Indices of the imbalanced training set: ``tail_count`` random images of each tail class,
    every image of the other classes (sorted, deterministic for a seed).

    Args:
        labels (ndarray): ``[N]`` training labels.
        tail_classes (list[int]): classes to reduce.
        tail_count (int): images kept per tail class.
        seed (int): random seed of the selection.

    Returns:
        ndarray: sorted ``int64`` indices into ``labels``.
    """
    rng = np.random.default_rng(seed)
    keep = [np.flatnonzero(~np.isin(labels, tail_classes))]
    for cls in sorted(tail_classes):
        idx = np.flatnonzero(labels == cls)
        if tail_count > len(idx):
            raise ValueError(f'class {cls} has only {len(idx)} images, asked for {tail_count}')
        keep.append(rng.choice(idx, size=tail_count, replace=False))
    return np.sort(np.concatenate(keep)).astype(np.int64)
