"""Equalization loss (EQL; Tan et al., "Equalization Loss for Long-Tailed Object Recognition",
CVPR 2020) for mmdet's bbox heads.

Sigmoid cross-entropy over the foreground columns, in which a foreground RoI's negative terms
for tail categories are dropped (Eq. 3-5 of the paper):
``w_nj = 1 - E(r_n) * T_lambda(f_j) * (1 - y_nj)`` with ``E(r) = 1`` for a foreground RoI (0 for
background) and ``T_lambda(f) = 1`` when a category's image frequency ``f_j`` (images containing
it / training images) is below ``lambda``. Background RoIs keep every negative term. The sum is
divided by the number of RoIs, as in the official code; test-time scores are ``sigmoid`` of the
foreground logits. The frequencies come from the training annotation file.
"""
from __future__ import annotations

from mmdet.registry import MODELS
from torch import Tensor

from .foreground_sigmoid import ForegroundSigmoidLoss, foreground_targets, masked_sigmoid_ce


def equalization_loss(cls_score: Tensor, labels: Tensor, tail: Tensor,
                      weight: Tensor | None = None, avg_factor: float | None = None) -> Tensor:
    """EQL of a batch of RoIs.

    Args:
        cls_score (Tensor): ``[N, C + 1]`` logits, background last (unused).
        labels (Tensor): ``[N]`` labels in ``[0, C]``, background = ``C``.
        tail (Tensor): ``[C]`` bool, ``T_lambda(f_j)``: the categories below the threshold.
        weight (Tensor, optional): ``[N]`` per-RoI weights.
        avg_factor (float, optional): divisor; defaults to ``N`` (the official code).

    Returns:
        Tensor: scalar loss ``sum_nj weight_n * w_nj * BCE(x_nj, y_nj) / avg_factor``.
    """
    num_classes = cls_score.shape[1] - 1
    target = foreground_targets(cls_score, labels)
    foreground = (labels < num_classes).to(cls_score.dtype).reshape(-1, 1)  # E(r)
    keep = 1 - foreground * tail.to(cls_score.dtype).reshape(1, -1) * (1 - target)
    return masked_sigmoid_ce(cls_score, target, keep, weight, avg_factor)


@MODELS.register_module()
class EqualizationLoss(ForegroundSigmoidLoss):
    """EQL as an mmdet classification loss (sigmoid, background column unused).

    Args:
        ann_file (str): the TRAINING annotation file (LVIS format, with its ``images``), read
            once for each category's ``image_count``; label ``k`` is its ``k``-th category.
        num_classes (int): ``C``; must match the file and the head.
        freq_threshold (float): ``lambda``, in images containing the category per training
            image. Defaults to the paper's 1.76e-3 for LVIS v0.5 (about 100 of its 57k images:
            the rare and common categories).
        loss_weight (float): multiplier. Defaults to 1.0.
    """

    def __init__(self, ann_file: str, num_classes: int, freq_threshold: float = 1.76e-3,
                 loss_weight: float = 1.0) -> None:
        super().__init__(num_classes, loss_weight)
        if not 0 < freq_threshold <= 1:
            raise ValueError(f'freq_threshold must be in (0, 1], got {freq_threshold}')
        cats = self.read_categories(ann_file)
        if not cats['num_images']:
            raise ValueError(f'EqualizationLoss: {ann_file} lists no images (the frequencies '
                             'are image counts over the training images)')
        self.freq_threshold = freq_threshold
        self.register_buffer('tail', cats['image_count'] / cats['num_images'] < freq_threshold,
                             persistent=False)

    def batch_loss(self, cls_score: Tensor, label: Tensor, weight: Tensor | None,
                   avg_factor: float | None) -> Tensor:
        """EQL of the batch (:func:`equalization_loss`)."""
        return equalization_loss(cls_score, label, self.tail, weight, avg_factor)
