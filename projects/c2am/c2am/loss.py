"""The public C2AM loss functions (Eq. 6): validation once, then one of three paths.

* ``implementation='reference'``: ``reference.py``'s logits + ``F.cross_entropy`` (plain
  autograd; the only path with double backward);
* ``implementation='fused'`` (= ``'auto'``, the default): a custom autograd function that keeps
  one ``[N, C]`` tensor for backward, compiled (``compiled.py``; CUDA by default, CPU with
  ``C2AM_COMPILE=1``) or eager (``eager.py``; CPU by default, ``C2AM_COMPILE=0``).

All paths give the same numbers and the same errors: every argument is checked here, at the
boundary, and the margin settings travel down as one :class:`~.margin.MarginSpec`.

Non-finite inputs: a NaN / Inf feature or cosine gives a NaN loss for that sample on every path
(like ``F.cross_entropy``; a training loop's invalid-loss check then stops the run); NaN / Inf
classifier norms raise ValueError (the classifier has diverged, margins would be meaningless).

Pure PyTorch: the loss core must not import mmdet, mmcv or mmengine.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .compiled import C2AMCrossEntropyCompiled, compile_enabled
from .eager import C2AMCrossEntropyEager
from .margin import ALPHA, SCALE, MarginSpec, check_scale
from .numerics import check_choice, check_number, math_dtype
from .reference import (
    classifier_norms,
    cosine_similarity_matrix,
    logits_from_cosine,
    validate_cosine_inputs,
)

IMPLEMENTATIONS = ('auto', 'fused', 'reference')
REDUCTIONS = ('none', 'mean', 'sum')


def check_reduction(reduction: str, avg_factor, sample_weight=None,
                    num_samples: int | None = None) -> None:
    """Validate the reduction arguments (mmdet's ``weight_reduce_loss`` semantics)."""
    check_choice('reduction', reduction, REDUCTIONS)
    if avg_factor is not None:
        if isinstance(avg_factor, torch.Tensor):
            if avg_factor.numel() != 1:
                raise ValueError(f'avg_factor must be a number, got a tensor of shape '
                                 f'{list(avg_factor.shape)}')
        else:
            check_number('avg_factor', avg_factor, low=0.0)
        if reduction == 'sum':
            raise ValueError('avg_factor can not be used with reduction="sum"')
    if sample_weight is not None:
        if not isinstance(sample_weight, torch.Tensor) or (
                num_samples is not None and sample_weight.shape != (num_samples,)):
            shape = list(sample_weight.shape) if isinstance(sample_weight, torch.Tensor) \
                else type(sample_weight).__name__
            raise ValueError(f'sample_weight must have shape [{num_samples}], got {shape}')


def weighted_reduce(loss: torch.Tensor,
                    sample_weight: torch.Tensor | None = None,
                    reduction: str = 'mean',
                    avg_factor: float | None = None) -> torch.Tensor:
    """Per-sample weighting and reduction with the semantics of mmdet's ``weight_reduce_loss``.

    Args:
        loss (Tensor): ``[N]`` per-sample losses.
        sample_weight (Tensor, optional): ``[N]`` weights.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
        avg_factor (float, optional): divide the sum by this instead of ``N`` (``'mean'``
            only), finite and >= 0.

    Returns:
        Tensor: reduced loss (``[N]`` for ``'none'``).
    """
    check_reduction(reduction, avg_factor, sample_weight, loss.shape[0])
    if sample_weight is not None:
        loss = loss * sample_weight.to(loss.dtype)
    if avg_factor is None:
        if reduction == 'mean':
            return loss.mean()
        return loss.sum() if reduction == 'sum' else loss
    if reduction == 'mean':
        # mmdet adds float32 eps to avoid division by zero
        return loss.sum() / (avg_factor + torch.finfo(torch.float32).eps)
    return loss


def _per_sample_loss(cos: torch.Tensor, weight_norm: torch.Tensor | None,
                     labels: torch.Tensor, *, scale: float, spec: MarginSpec,
                     implementation: str) -> torch.Tensor:
    """``[N]`` cross-entropy of the Eq. 6 logits, validated inputs, float32/float64 ``cos``."""
    if implementation == 'reference':
        logits = logits_from_cosine(cos, weight_norm, labels, scale=scale, spec=spec)
        return F.cross_entropy(logits, labels, reduction='none')
    if compile_enabled(cos.device):
        return C2AMCrossEntropyCompiled.apply(cos, weight_norm, labels, scale, spec)
    return C2AMCrossEntropyEager.apply(cos, weight_norm, labels, scale, spec)


def c2am_loss_from_cosine(cos: torch.Tensor,
                          weight_norm: torch.Tensor | None,
                          labels: torch.Tensor,
                          *,
                          scale: float = SCALE,
                          alpha: float = ALPHA,
                          margin: str = 'adaptive',
                          fixed_margin: float = 0.0,
                          exclude_class: int | None = None,
                          sample_weight: torch.Tensor | None = None,
                          reduction: str = 'mean',
                          avg_factor: float | None = None,
                          implementation: str = 'auto') -> torch.Tensor:
    """C2AM loss (Eq. 6) from precomputed cosines.

    Args:
        cos (Tensor): ``[N, C]`` cosines.
        weight_norm (Tensor | None): ``[C]`` classifier row norms (finite, >= 0); needed for
            ``margin='adaptive'`` with ``alpha > 0``.
        labels (Tensor): ``[N]`` integer labels in ``[0, C)``.
        scale (float): ``s``, finite and > 0.
        alpha (float): margin strength of Eq. 7, finite and >= 0 (0: no margins).
        margin (str): ``'adaptive'`` (Eq. 7), ``'fixed'`` (Table 5) or ``'none'``.
        fixed_margin (float): the constant margin of ``margin='fixed'``, radians in [0, pi].
        exclude_class (int, optional): class with no margin in its column or its samples;
            negative values index from the end; must lie in ``[-C, C)``.
        sample_weight (Tensor, optional): ``[N]`` per-sample weights.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
        avg_factor (float, optional): mmdet-style averaging factor (``'mean'`` / ``'none'``).
        implementation (str): ``'fused'`` (custom autograd function keeping one ``[N, C]``
            tensor; compiled on CUDA or with ``C2AM_COMPILE=1``, else eager),
            ``'reference'`` (logits + ``F.cross_entropy``, plain autograd) or ``'auto'``
            (default, = ``'fused'``). All give the same numbers; only ``'reference'``
            supports double backward (``'fused'`` raises).

    Returns:
        Tensor: the loss, float32 (float64 for float64 input). For ``N = 0`` a zero that
        still backpropagates (``'none'``: an empty tensor).

    Raises:
        ValueError: any invalid argument, before anything is computed.
    """
    return loss_with_spec(cos, weight_norm, labels, scale=scale,
                          spec=MarginSpec(margin, alpha, fixed_margin, exclude_class),
                          sample_weight=sample_weight, reduction=reduction,
                          avg_factor=avg_factor, implementation=implementation)


def loss_with_spec(cos: torch.Tensor, weight_norm: torch.Tensor | None, labels: torch.Tensor,
                   *, scale: float, spec: MarginSpec,
                   sample_weight: torch.Tensor | None = None, reduction: str = 'mean',
                   avg_factor: float | None = None,
                   implementation: str = 'auto') -> torch.Tensor:
    """:func:`c2am_loss_from_cosine` with the margin settings as one validated
    :class:`~.margin.MarginSpec` (what :class:`~.modules.C2AMLoss` builds once)."""
    scale = check_scale(scale)
    check_choice('implementation', implementation, IMPLEMENTATIONS)
    labels, spec = validate_cosine_inputs(cos, weight_norm, labels, spec)
    check_reduction(reduction, avg_factor, sample_weight, cos.shape[0])
    with torch.autocast(device_type=cos.device.type, enabled=False):
        cos = cos.to(math_dtype(cos))
        if cos.shape[0] == 0:
            # cross_entropy's mean over nothing is NaN; keep the graph with an exact zero.
            return cos.sum(dim=1) if reduction == 'none' else cos.sum() * 0.0
        loss = _per_sample_loss(cos, weight_norm, labels, scale=scale, spec=spec,
                                implementation=implementation)
        return weighted_reduce(loss, sample_weight, reduction, avg_factor)


def c2am_loss(features: torch.Tensor,
              weight: torch.Tensor,
              labels: torch.Tensor,
              *,
              scale: float = SCALE,
              alpha: float = ALPHA,
              margin: str = 'adaptive',
              fixed_margin: float = 0.0,
              exclude_class: int | None = None,
              sample_weight: torch.Tensor | None = None,
              reduction: str = 'mean',
              avg_factor: float | None = None,
              implementation: str = 'auto') -> torch.Tensor:
    """C2AM loss (Eq. 6): cross-entropy of the margin logits of features and classifier rows.

    Args:
        features (Tensor): ``[N, D]`` features.
        weight (Tensor): ``[C, D]`` classifier rows (unnormalised).
        labels (Tensor): ``[N]`` integer labels in ``[0, C)``.
        scale, alpha, margin, fixed_margin, exclude_class, sample_weight, reduction,
            avg_factor, implementation: as in :func:`c2am_loss_from_cosine`.

    Returns:
        Tensor: the loss.
    """
    return c2am_loss_from_cosine(
        cosine_similarity_matrix(features, weight), classifier_norms(weight), labels,
        scale=scale, alpha=alpha, margin=margin, fixed_margin=fixed_margin,
        exclude_class=exclude_class, sample_weight=sample_weight, reduction=reduction,
        avg_factor=avg_factor, implementation=implementation)
