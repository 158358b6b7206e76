"""Small CNN with a 50-d feature and a CE (inner-product) or cosine classifier."""
from __future__ import annotations

import torch
from torch import nn

from projects.c2am.c2am import SCALE, CosineClassifier


class FeatureNet(nn.Module):
    """Two conv blocks and a linear layer to a ``feat_dim`` feature (no activation after it).

    Args:
        feat_dim (int): feature dimension (the paper's toy uses 50).
    """

    def __init__(self, feat_dim: int = 50) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 5), nn.BatchNorm2d(16), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5), nn.BatchNorm2d(32), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 4 * 4, 128), nn.ReLU(inplace=True),
            nn.Linear(128, feat_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: ``[N, 1, 28, 28]``. Returns: ``[N, feat_dim]`` features."""
        return self.body(x)


class ToyNet(nn.Module):
    """Feature net plus classifier (``classifier.weight`` is ``[10, feat_dim]``).

    Args:
        loss (str): ``'ce'`` gives a bias-free linear classifier (inner product + softmax CE);
            ``'cosine'``, ``'fixed'``, ``'c2am'`` a :class:`CosineClassifier`.
        feat_dim (int): feature dimension.
        scale (float): cosine scale ``s``.
        num_classes (int): classes.
    """

    def __init__(self, loss: str, feat_dim: int = 50, scale: float = SCALE,
                 num_classes: int = 10) -> None:
        super().__init__()
        self.features = FeatureNet(feat_dim)
        if loss == 'ce':
            # the paper omits the bias in its analysis (Sec. 3.1); so do we
            self.classifier = nn.Linear(feat_dim, num_classes, bias=False)
        else:
            self.classifier = CosineClassifier(feat_dim, num_classes, scale=scale,
                                               init_std=0.1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns: ``(features [N, feat_dim], logits [N, num_classes])``."""
        feats = self.features(x)
        return feats, self.classifier(feats)
