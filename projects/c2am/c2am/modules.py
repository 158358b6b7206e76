"""``nn.Module`` wrappers of the C2AM loss core: the cosine classifier and the loss.

Pure PyTorch: this module must not import mmdet, mmcv or mmengine.
"""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from .loss import IMPLEMENTATIONS, check_reduction, loss_with_spec
from .margin import ALPHA, SCALE, MarginSpec, check_scale
from .numerics import check_choice, check_number, math_dtype
from .reference import classifier_norms, cosine_similarity_matrix


class CosineClassifier(nn.Module):
    """Bias-free cosine classifier: ``forward(x) = scale * cos(x, W_j)`` for every row ``j``.

    Softmax of the output gives the test-time scores (no margin at test time). The output
    is float32 (float64 for float64 input) also under autocast.

    Args:
        in_features (int): feature dimension ``D``.
        out_features (int): number of classifier rows ``C`` (detectors: classes + background).
        scale (float): ``s`` of Eq. 5-6.
        init_std (float): std of the normal initialisation of ``W``. Rows start with nearly
            equal norms, so C2AM margins start near zero and grow with training.
    """

    def __init__(self, in_features: int, out_features: int, scale: float = SCALE,
                 init_std: float = 0.01) -> None:
        super().__init__()
        for name, value in (('in_features', in_features), ('out_features', out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f'{name} must be an int >= 1, got {value!r}')
        self.in_features = in_features
        self.out_features = out_features
        self.scale = check_scale(scale)
        self.init_std = check_number('init_std', init_std, low=0.0)
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=self.init_std)

    def cosine(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, D] -> [N, C]`` cosines."""
        return cosine_similarity_matrix(x, self.weight)

    def weight_norm(self) -> torch.Tensor:
        """Detached ``[C]`` row norms, the ``||W_j||`` of Eq. 7."""
        return classifier_norms(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (Tensor): ``[N, D]``. Returns: Tensor: ``[N, C]`` ``scale * cos``."""
        return self.scale * self.cosine(x)

    def extra_repr(self) -> str:
        return (f'in_features={self.in_features}, out_features={self.out_features}, '
                f'scale={self.scale}, bias=False')


class C2AMLoss(nn.Module):
    """C2AM loss (Eq. 6-7) on the output of a :class:`CosineClassifier`.

    ``forward`` takes ``cls_score = scale * cos`` (what the classifier outputs, so accuracy
    and test-time softmax keep working on it) plus the classifier's detached row norms, and
    adds the margins to the non-label columns. The call signature follows mmdet's losses.

    Args:
        scale (float): ``s``; must equal the classifier's scale.
        alpha (float): margin strength of Eq. 7; 0 is the plain cosine classifier.
        margin (str): ``'adaptive'`` (Eq. 7), ``'fixed'`` (Table 5) or ``'none'``.
        fixed_margin (float): constant margin in radians for ``margin='fixed'``.
        background_margin (bool): for detectors, whether the background class (the index the
            caller passes as ``background_index``) takes part in the margins: as a column
            ``j`` for foreground samples and as the label ``i`` of background samples. Default
            False, by measurement (README, LT-Digits): background RoIs are the majority, so the
            background row has the largest norm and, with this on, background samples put the
            largest margins on the rarest classes, suppressing exactly the tail.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight (float): multiplier of the loss.
        implementation (str): ``'auto'``, ``'fused'`` or ``'reference'`` (see
            :func:`c2am_loss_from_cosine`); same numbers.
    """

    def __init__(self, scale: float = SCALE, alpha: float = ALPHA, margin: str = 'adaptive',
                 fixed_margin: float = 0.0, background_margin: bool = False,
                 reduction: str = 'mean', loss_weight: float = 1.0,
                 implementation: str = 'auto') -> None:
        super().__init__()
        self.scale = check_scale(scale)
        self.margin_spec = MarginSpec(margin, alpha, fixed_margin)  # validates them
        check_reduction(reduction, None)
        check_choice('implementation', implementation, IMPLEMENTATIONS)
        if not isinstance(background_margin, bool):
            raise ValueError(f'background_margin must be True or False, got '
                             f'{background_margin!r}')
        self.background_margin = background_margin
        self.reduction = reduction
        self.loss_weight = check_number('loss_weight', loss_weight)
        self.implementation = implementation

    @property
    def alpha(self) -> float:
        return self.margin_spec.alpha

    @property
    def margin(self) -> str:
        return self.margin_spec.kind

    @property
    def fixed_margin(self) -> float:
        return self.margin_spec.fixed_margin

    def forward(self, cls_score: torch.Tensor, label: torch.Tensor,
                weight: torch.Tensor | None = None, avg_factor: float | None = None,
                reduction_override: str | None = None,
                weight_norm: torch.Tensor | None = None,
                background_index: int | None = None, **kwargs) -> torch.Tensor:
        """Compute the loss.

        Args:
            cls_score (Tensor): ``[N, C]`` ``scale * cos`` from the cosine classifier.
            label (Tensor): ``[N]`` integer labels in ``[0, C)``.
            weight (Tensor, optional): ``[N]`` per-sample weights.
            avg_factor (float, optional): mmdet-style averaging factor.
            reduction_override (str, optional): overrides ``self.reduction``.
            weight_norm (Tensor): ``[C]`` classifier row norms (required for 'adaptive').
            background_index (int, optional): the background column, if any.

        Returns:
            Tensor: the weighted loss.
        """
        reduction = reduction_override if reduction_override else self.reduction
        spec = self.margin_spec
        if not self.background_margin:
            spec = replace(spec, exclude_class=background_index)
        if not isinstance(cls_score, torch.Tensor):
            raise ValueError(f'cls_score must be a tensor, got {type(cls_score).__name__}')
        cos = cls_score.to(math_dtype(cls_score)) / self.scale
        loss = loss_with_spec(cos, weight_norm, label, scale=self.scale, spec=spec,
                              sample_weight=weight, reduction=reduction, avg_factor=avg_factor,
                              implementation=self.implementation)
        return self.loss_weight * loss

    def extra_repr(self) -> str:
        return (f'scale={self.scale}, alpha={self.alpha}, margin={self.margin!r}, '
                f'fixed_margin={self.fixed_margin}, background_margin={self.background_margin}')
