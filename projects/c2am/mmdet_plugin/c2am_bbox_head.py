"""C2AM bbox head: a drop-in for mmdet's ``Shared2FCBBoxHead`` with a cosine classifier."""
from __future__ import annotations

import math

import torch
from mmdet.models.losses import accuracy
from mmdet.models.roi_heads.bbox_heads import Shared2FCBBoxHead
from mmdet.registry import MODELS
from torch import Tensor

from ..c2am import ALPHA, SCALE, C2AMLoss, CosineClassifier

# The core classes, registered under their own names (no second copy of the code).
MODELS.register_module(name='C2AMLoss', module=C2AMLoss)
MODELS.register_module(name='C2AMCosineClassifier', module=CosineClassifier)


def check_margin_norm_cap(value: float | None) -> float | None:
    """``value`` if it is ``None`` or a finite number >= 1, else ValueError."""
    if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)
                                  and value >= 1):
        raise ValueError(f'C2AMBBoxHead: margin_norm_cap must be a finite number >= 1 (a '
                         f'multiple of the median norm) or None, got {value!r}')
    return value


@MODELS.register_module()
class C2AMBBoxHead(Shared2FCBBoxHead):
    """``Shared2FCBBoxHead`` whose classifier is a bias-free cosine classifier trained with C2AM.

    Same arguments as ``Shared2FCBBoxHead``. The classifier outputs ``cls_score = scale * cos``
    over ``num_classes + 1`` columns, background LAST (mmdet's convention; Cascade's
    ``refine_bboxes`` relies on it). Test-time scores are ``softmax(scale * cos)``. During
    training the head hands the classifier's detached row norms to the loss, which turns them
    into the margins of Eq. 7 (mmdet's losses otherwise only see ``cls_score``).

    The classifier's scale is taken from ``loss_cls['scale']`` so it is set in one place.

    Args:
        fc_out_channels (int): width of the shared fcs.
        loss_cls (dict, optional): config of a :class:`C2AMLoss` (default s = 30,
            alpha = 0.5).
        cls_predictor_cfg (dict, optional): override of the classifier config; its ``scale``
            must equal the loss's.
        margin_norm_cap (float, optional): a study setting, off by default (the paper has
            none): the norms Eq. 7 reads are capped at ``margin_norm_cap`` x the median
            foreground norm (>= 1), so a category whose norm runs away does not put ever larger
            margins on its own samples. The classifier and its test-time scores are unchanged.
    """

    def __init__(self,
                 fc_out_channels: int = 1024,
                 loss_cls: dict | None = None,
                 cls_predictor_cfg: dict | None = None,
                 margin_norm_cap: float | None = None,
                 **kwargs) -> None:
        if loss_cls is None:
            loss_cls = dict(type='C2AMLoss', scale=SCALE, alpha=ALPHA)
        scale = float(loss_cls.get('scale', SCALE))
        if cls_predictor_cfg is None:
            cls_predictor_cfg = dict(type='C2AMCosineClassifier', scale=scale)
        elif float(cls_predictor_cfg.get('scale', scale)) != scale:
            raise ValueError(
                f"C2AMBBoxHead: cls_predictor_cfg scale {cls_predictor_cfg['scale']} differs "
                f'from loss_cls scale {scale}; set it once, in loss_cls')
        elif cls_predictor_cfg.get('type') in ('C2AMCosineClassifier', CosineClassifier):
            # the classifier takes the loss's scale (its own default could differ)
            cls_predictor_cfg = dict(cls_predictor_cfg, scale=scale)
        super().__init__(fc_out_channels=fc_out_channels, loss_cls=loss_cls,
                         cls_predictor_cfg=cls_predictor_cfg, **kwargs)
        if not isinstance(self.loss_cls, C2AMLoss):
            raise TypeError(f'C2AMBBoxHead needs loss_cls of type C2AMLoss, got '
                            f'{type(self.loss_cls).__name__}')
        if not isinstance(self.fc_cls, CosineClassifier):
            raise TypeError(f'C2AMBBoxHead needs a CosineClassifier predictor, got '
                            f'{type(self.fc_cls).__name__}')
        if self.fc_cls.scale != self.loss_cls.scale:  # the loss divides cls_score by its scale
            raise ValueError(f'C2AMBBoxHead: classifier scale {self.fc_cls.scale} differs from '
                             f'loss_cls scale {self.loss_cls.scale}; set it once, in loss_cls')
        self.margin_norm_cap = check_margin_norm_cap(margin_norm_cap)

    def loss(self,
             cls_score: Tensor,
             bbox_pred: Tensor,
             rois: Tensor,
             labels: Tensor,
             label_weights: Tensor,
             bbox_targets: Tensor,
             bbox_weights: Tensor,
             reduction_override: str | None = None) -> dict:
        """Classification loss with C2AM, box regression as in ``BBoxHead.loss``.

        Args:
            cls_score (Tensor): ``[N, num_classes + 1]`` ``scale * cos``.
            bbox_pred (Tensor): ``[N, 4]`` or ``[N, 4 * num_classes]`` deltas.
            rois (Tensor): ``[N, 5]`` RoIs.
            labels (Tensor): ``[N]`` labels, background = ``num_classes``.
            label_weights (Tensor): ``[N]`` sample weights.
            bbox_targets (Tensor): ``[N, 4]`` targets.
            bbox_weights (Tensor): ``[N, 4]`` regression weights.
            reduction_override (str, optional): reduction override.

        Returns:
            dict: ``loss_cls``, ``acc`` and ``loss_bbox``.
        """
        losses = super().loss(None, bbox_pred, rois, labels, label_weights, bbox_targets,
                              bbox_weights, reduction_override)
        if cls_score is not None:
            avg_factor = max(torch.sum(label_weights > 0).float().item(), 1.)
            losses['loss_cls'] = self.loss_cls(
                cls_score, labels, label_weights, avg_factor=avg_factor,
                reduction_override=reduction_override, weight_norm=self.margin_norms(),
                background_index=self.num_classes)
            losses['acc'] = accuracy(cls_score, labels)
        return losses

    def margin_norms(self) -> Tensor:
        """``[num_classes + 1]`` detached classifier norms for Eq. 7, foreground rows capped at
        ``margin_norm_cap`` x their median when that is set."""
        norms = self.fc_cls.weight_norm()
        if self.margin_norm_cap is None:
            return norms
        foreground = norms[:self.num_classes]
        cap = self.margin_norm_cap * foreground.median()
        return torch.cat([foreground.clamp_max(cap), norms[self.num_classes:]])
