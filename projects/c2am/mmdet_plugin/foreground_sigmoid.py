"""The part mmdet's bbox head asks of a sigmoid classification loss over the foreground columns
(Federated loss, EQL): the classifier keeps mmdet's ``num_classes + 1`` outputs (background
last, unused), test-time scores are ``sigmoid`` of the foreground logits, and the accuracy is
that of the foreground arg-max on foreground RoIs."""
from __future__ import annotations

import torch
from mmdet.models.losses import accuracy
from torch import Tensor, nn


class ForegroundSigmoidLoss(nn.Module):
    """Base of the sigmoid losses whose background column takes no part.

    Args:
        num_classes (int): ``C``; must match the head.
    """

    custom_cls_channels = True
    custom_activation = True
    custom_accuracy = True

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

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

    def check_reduction(self, reduction_override: str | None) -> None:
        """Raises ValueError unless ``reduction_override`` is ``None`` or ``'mean'``."""
        if reduction_override not in (None, 'mean'):
            raise ValueError(f'{type(self).__name__} supports only mean reduction, got '
                             f'{reduction_override!r}')
