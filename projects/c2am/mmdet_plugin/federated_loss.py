"""Federated loss (Zhou et al., "Probabilistic two-stage detection", 2021) for mmdet's bbox heads.

The Detectron2 / CenterNet2 form: sigmoid cross-entropy over the foreground classes, counted
only for a subset of classes per batch: every class present in the batch's RoI labels, topped
up to ``num_classes_per_batch`` (50) with classes drawn without replacement with probability
proportional to ``image_count ** freq_weight_power`` (0.5). Background RoIs are all-zero targets;
the background logit takes no part (test-time scores are ``sigmoid`` of the foreground logits).
The image counts come from the training annotation file (LVIS ``image_count``).
"""
from __future__ import annotations

import torch
from mmdet.registry import MODELS
from torch import Tensor

from .foreground_sigmoid import ForegroundSigmoidLoss, foreground_targets, masked_sigmoid_ce


def federated_classes(labels: Tensor, num_classes: int, num_classes_per_batch: int,
                      sample_weight: Tensor) -> Tensor:
    """The classes a batch's federated loss counts.

    Args:
        labels (Tensor): ``[N]`` RoI labels in ``[0, C]``, background = ``C``.
        num_classes (int): ``C``.
        num_classes_per_batch (int): the labels' classes are topped up to this many.
        sample_weight (Tensor): ``[C]`` sampling weight of each class (``image_count ** p``).

    Returns:
        Tensor: ``[K]`` class indices: the unique labels (background included when present, as
        in Detectron2) and then the sampled classes; sampling uses torch's global generator.
    """
    present = torch.unique(labels)
    if len(present) >= num_classes_per_batch:
        return present
    prob = sample_weight.new_zeros(num_classes + 1, dtype=torch.float32)
    prob[:num_classes] = sample_weight.float()
    prob[present] = 0
    available = int((prob > 0).sum())
    extra = min(num_classes_per_batch - len(present), available)
    if extra == 0:
        return present
    return torch.cat([present, torch.multinomial(prob, extra, replacement=False)])


def federated_loss(cls_score: Tensor, labels: Tensor, classes: Tensor,
                   weight: Tensor | None = None, avg_factor: float | None = None) -> Tensor:
    """Sigmoid cross-entropy over the foreground columns in ``classes``.

    ``sum_{n, j in classes, j < C} w_n * BCE(x_nj, [labels_n == j]) / avg_factor``.

    Args:
        cls_score (Tensor): ``[N, C + 1]`` logits, background last (unused).
        labels (Tensor): ``[N]`` labels in ``[0, C]``.
        classes (Tensor): ``[K]`` counted classes (from :func:`federated_classes`).
        weight (Tensor, optional): ``[N]`` per-RoI weights.
        avg_factor (float, optional): divisor; defaults to ``N`` (Detectron2).

    Returns:
        Tensor: scalar loss.
    """
    keep = cls_score.new_zeros(cls_score.shape[1])
    keep[classes] = 1
    return masked_sigmoid_ce(cls_score, foreground_targets(cls_score, labels), keep[:-1],
                             weight, avg_factor)


@MODELS.register_module()
class FederatedLoss(ForegroundSigmoidLoss):
    """Federated loss as an mmdet classification loss (sigmoid, background column unused).

    Args:
        ann_file (str): the TRAINING annotation file (LVIS format), read once for the classes'
            ``image_count``; label ``k`` is its ``k``-th category (mmdet's LVIS order).
        num_classes (int): ``C``; must match the file and the head.
        num_classes_per_batch (int): classes counted per batch. Defaults to 50.
        freq_weight_power (float): sampling weight ``image_count ** p``. Defaults to 0.5.
        loss_weight (float): multiplier. Defaults to 1.0.
    """

    def __init__(self, ann_file: str, num_classes: int, num_classes_per_batch: int = 50,
                 freq_weight_power: float = 0.5, loss_weight: float = 1.0) -> None:
        super().__init__(num_classes, loss_weight)
        if num_classes_per_batch < 1:
            raise ValueError(f'num_classes_per_batch must be >= 1, got {num_classes_per_batch}')
        counts = self.read_categories(ann_file)['image_count']
        self.num_classes_per_batch = num_classes_per_batch
        self.freq_weight_power = freq_weight_power
        self.register_buffer('sample_weight', counts ** freq_weight_power, persistent=False)

    def batch_loss(self, cls_score: Tensor, label: Tensor, weight: Tensor | None,
                   avg_factor: float | None) -> Tensor:
        """Federated loss over the batch's classes, topped up by frequency-weighted sampling."""
        classes = federated_classes(label, self.num_classes, self.num_classes_per_batch,
                                    self.sample_weight)
        return federated_loss(cls_score, label, classes, weight, avg_factor)
