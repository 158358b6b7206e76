"""What the sigmoid classification losses over the foreground columns share (Federated loss,
EQL): the per-entry sigmoid cross-entropy with its mask and reduction, and the part mmdet's
bbox head asks of such a loss: the classifier keeps mmdet's ``num_classes + 1`` outputs
(background last, unused), test-time scores are ``sigmoid`` of the foreground logits, and the
accuracy is that of the foreground arg-max on foreground RoIs."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmdet.models.losses import accuracy
from torch import Tensor, nn

from .lvis_categories import load_lvis_categories


def foreground_targets(cls_score: Tensor, labels: Tensor) -> Tensor:
    """``[N, C]`` one-hot targets of the foreground columns (all zero for background RoIs).

    Args:
        cls_score (Tensor): ``[N, C + 1]`` logits, background last.
        labels (Tensor): ``[N]`` labels in ``[0, C]``, background = ``C``.
    """
    num_classes = cls_score.shape[1] - 1
    return F.one_hot(labels, num_classes + 1)[:, :num_classes].to(cls_score.dtype)


def masked_sigmoid_ce(cls_score: Tensor, target: Tensor, keep: Tensor,
                      weight: Tensor | None = None, avg_factor: float | None = None) -> Tensor:
    """``sum_{n, j < C} weight_n * keep_nj * BCE(x_nj, target_nj) / avg_factor``.

    Args:
        cls_score (Tensor): ``[N, C + 1]`` logits, background last (unused).
        target (Tensor): ``[N, C]`` targets (:func:`foreground_targets`).
        keep (Tensor): ``[N, C]`` or ``[C]`` weight of each term (0 drops it).
        weight (Tensor, optional): ``[N]`` per-RoI weights.
        avg_factor (float, optional): divisor; defaults to ``N`` (Detectron2, the EQL code).

    Returns:
        Tensor: scalar loss.
    """
    num, num_classes = cls_score.shape[0], cls_score.shape[1] - 1
    per_entry = F.binary_cross_entropy_with_logits(cls_score[:, :num_classes], target,
                                                   reduction='none') * keep
    if weight is not None:
        per_entry = per_entry * weight.reshape(-1, 1).to(per_entry.dtype)
    return per_entry.sum() / (float(num) if avg_factor is None else avg_factor)


class ForegroundSigmoidLoss(nn.Module):
    """Base of the sigmoid losses whose background column takes no part; a subclass defines
    :meth:`batch_loss`.

    Args:
        num_classes (int): ``C``; must match the head.
        loss_weight (float): multiplier. Defaults to 1.0.
    """

    custom_cls_channels = True
    custom_activation = True
    custom_accuracy = True

    def __init__(self, num_classes: int, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.loss_weight = loss_weight

    def read_categories(self, ann_file: str) -> dict:
        """The training file's categories (:func:`load_lvis_categories`), one per class.

        Raises:
            ValueError: the file's category count differs from ``num_classes``.
        """
        cats = load_lvis_categories(ann_file)
        if len(cats['image_count']) != self.num_classes:
            raise ValueError(f'{type(self).__name__}: {ann_file} has '
                             f'{len(cats["image_count"])} categories, num_classes is '
                             f'{self.num_classes}')
        return cats

    def get_cls_channels(self, num_classes: int) -> int:
        """``num_classes + 1`` outputs (background column kept for mmdet's layout)."""
        if num_classes != self.num_classes:
            raise ValueError(f'{type(self).__name__}: num_classes {self.num_classes} differs '
                             f"from the head's {num_classes}")
        return num_classes + 1

    def get_activation(self, cls_score: Tensor) -> Tensor:
        """Test-time scores: ``[N, C + 1]``, ``sigmoid`` of the foreground logits, 0 in the
        background column (mmdet's NMS drops it)."""
        scores = torch.sigmoid(cls_score)
        scores[:, -1] = 0
        return scores

    def get_accuracy(self, cls_score: Tensor, labels: Tensor) -> dict:
        """Accuracy on foreground RoIs of the arg-max foreground class (percent)."""
        fg = labels < self.num_classes
        if not fg.any():
            return dict(acc=cls_score.new_tensor(0.0))
        return dict(acc=accuracy(cls_score.detach()[fg, :-1], labels[fg]))

    def batch_loss(self, cls_score: Tensor, label: Tensor, weight: Tensor | None,
                   avg_factor: float | None) -> Tensor:
        """The unweighted loss of a batch (arguments as in :meth:`forward`)."""
        raise NotImplementedError

    def forward(self, cls_score: Tensor, label: Tensor, weight: Tensor | None = None,
                avg_factor: float | None = None, reduction_override: str | None = None,
                **kwargs) -> Tensor:
        """The loss of a batch of RoIs.

        Args:
            cls_score (Tensor): ``[N, C + 1]`` logits.
            label (Tensor): ``[N]`` labels, background = ``C``.
            weight (Tensor, optional): ``[N]`` per-RoI weights.
            avg_factor (float, optional): divisor (mmdet passes the count of weighted RoIs).
            reduction_override (str, optional): only ``None`` / ``'mean'`` are supported.

        Returns:
            Tensor: the weighted scalar loss.
        """
        if reduction_override not in (None, 'mean'):
            raise ValueError(f'{type(self).__name__} supports only mean reduction, got '
                             f'{reduction_override!r}')
        return self.loss_weight * self.batch_loss(cls_score, label, weight, avg_factor)
