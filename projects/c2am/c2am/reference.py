"""The C2AM training logits, written as the readable definition (Eq. 6-7).

For a sample of class ``i`` with feature ``x`` and classifier rows ``W_j``,
``cos_j = <x, W_j> / (||x|| ||W_j||)``. Training logits are ``s * cos_i`` in the label column
and ``s * cos(theta_j + m_ij)`` elsewhere, with ``m_ij = max(0, alpha / pi * log(||W_i|| /
||W_j||))`` (Eq. 7) from DETACHED norms. The fast paths (``eager.py``, ``compiled.py``) compute
the same numbers with other algebra; this file is what they are tested against.

Numerics (see shared/DESIGN.md):
  * All margin math runs in float32 (or float64 when given float64), also under autocast.
  * ``cos(theta + m)`` is evaluated as ``cos*cos(m) - sin(theta)*sin(m)`` without ``acos``;
    inside ``sin(theta) = sqrt(1 - cos^2)`` only, ``cos`` is clamped to ``+-(1 - COS_EPS)``
    so that its gradient is finite; the linear term keeps the unclamped ``cos`` (and its
    gradient ``cos(m)`` at ``|cos| = 1``).
  * Beyond ``theta + m > pi`` the naive ``cos(theta + m)`` rises again; it is reflected about
    -1 (``-2 - cos(theta + m)``), a C1, strictly monotone extension.
  * Where the margin is exactly zero the logit is ``s * cos`` unchanged, with exact gradients.
  * Margins are capped at pi: a larger angle has no meaning on the circle.

Pure PyTorch: the loss core must not import mmdet, mmcv or mmengine.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .margin import ALPHA, SCALE, MarginSpec, check_scale
from .numerics import (
    COS_EPS,
    NORM_EPS,
    check_labels,
    check_weight_norm,
    math_dtype,
)


def cosine_similarity_matrix(features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Cosines between every feature and every classifier row, returned in float32 (float64).

    Normalisation runs in float32 (float64); the matrix product follows an enclosing autocast
    (bf16/fp16 tensor-core speed, like a plain cosine classifier under AMP) and its result is
    upcast, so everything downstream (margins, Eq. 6) is float32.

    Args:
        features (Tensor): ``[N, D]`` features, any norm (zero rows give cos = 0).
        weight (Tensor): ``[C, D]`` classifier rows, any norm.

    Returns:
        Tensor: ``[N, C]`` cosines in ``[-1, 1]`` (up to the rounding of a low-precision
        product, which the margin math clamps).
    """
    if not isinstance(features, torch.Tensor) or not isinstance(weight, torch.Tensor) \
            or features.dim() != 2 or weight.dim() != 2 or features.shape[1] != weight.shape[1]:
        shapes = [list(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                  for t in (features, weight)]
        raise ValueError(f'features must be [N, D] and weight [C, D] with the same D, '
                         f'got {shapes[0]} and {shapes[1]}')
    if not (features.dtype.is_floating_point and weight.dtype.is_floating_point):
        raise ValueError(f'features and weight must be floating point, got {features.dtype} '
                         f'and {weight.dtype}')
    dtype = math_dtype(features)
    with torch.autocast(device_type=features.device.type, enabled=False):
        x = F.normalize(features.to(dtype), dim=1, eps=NORM_EPS)
        w = F.normalize(weight.to(dtype), dim=1, eps=NORM_EPS)
    return F.linear(x, w).to(dtype)


def classifier_norms(weight: torch.Tensor) -> torch.Tensor:
    """Detached L2 norms of the classifier rows, ``[C, D] -> [C]``, in float32 (or float64)."""
    with torch.no_grad():
        return weight.detach().to(math_dtype(weight)).norm(dim=1)


def margin_matrix(weight_norm: torch.Tensor | None, labels: torch.Tensor, num_classes: int,
                  spec: MarginSpec, dtype: torch.dtype) -> torch.Tensor:
    """Margins ``m_ij`` ``[N, C]`` (radians, no gradient) for validated inputs.

    Adaptive (Eq. 7): ``m_ij = clamp(alpha / pi * log(||W_i|| / ||W_j||), 0, pi)``; fixed:
    ``spec.fixed_margin``; none: 0. Zero in each sample's label column, and in the column and
    the rows of ``spec.exclude_class`` (an index in ``[0, C)``, see
    :meth:`MarginSpec.for_classes`).
    """
    with torch.no_grad():
        if spec.kind == 'adaptive':
            log_norm = weight_norm.detach().to(dtype).clamp_min(NORM_EPS).log()
            # log(||W_i|| / ||W_j||) = log||W_i|| - log||W_j||; [N, 1] - [1, C]
            ratio = log_norm[labels].unsqueeze(1) - log_norm.unsqueeze(0)
            margins = ((spec.alpha / math.pi) * ratio).clamp(0.0, math.pi)
        else:
            value = spec.fixed_margin if spec.kind == 'fixed' else 0.0
            margins = torch.full((labels.shape[0], num_classes), value, dtype=dtype,
                                 device=labels.device)
        margins.scatter_(1, labels.unsqueeze(1), 0.0)
        if spec.exclude_class is not None:
            margins[:, spec.exclude_class] = 0.0
            margins[labels == spec.exclude_class] = 0.0
    return margins


def c2am_margins(weight_norm: torch.Tensor,
                 labels: torch.Tensor,
                 *,
                 alpha: float = ALPHA,
                 exclude_class: int | None = None) -> torch.Tensor:
    """Category-aware angular margins (Eq. 7).

    ``m_ij = max(0, alpha / pi * log(||W_i|| / ||W_j||))`` for each sample's label ``i``,
    capped at pi; zero in the label's own column. Computed without gradient.

    Args:
        weight_norm (Tensor): ``[C]`` classifier row norms (detached internally).
        labels (Tensor): ``[N]`` integer labels in ``[0, C)``.
        alpha (float): margin strength, finite and >= 0; 0 gives all-zero margins.
        exclude_class (int, optional): a class (e.g. the detector's background) whose column
            and whose samples get no margin. Negative values index from the end.

    Returns:
        Tensor: ``[N, C]`` margins (radians), float32 (float64 for float64 norms).
    """
    if not isinstance(weight_norm, torch.Tensor) or weight_norm.dim() != 1:
        shape = list(weight_norm.shape) if isinstance(weight_norm, torch.Tensor) \
            else type(weight_norm).__name__
        raise ValueError(f'weight_norm must have shape [C], got {shape}')
    num_classes = weight_norm.shape[0]
    spec = MarginSpec('adaptive', alpha, exclude_class=exclude_class).for_classes(num_classes)
    check_weight_norm(weight_norm, num_classes)
    labels = check_labels(labels, None, num_classes)
    return margin_matrix(weight_norm, labels, num_classes, spec, math_dtype(weight_norm))


def angular_margin_cos(cos: torch.Tensor, margins: torch.Tensor) -> torch.Tensor:
    """``cos(theta + m)`` with a monotone extension beyond ``theta + m > pi``.

    Args:
        cos (Tensor): ``[N, C]`` cosines ``cos(theta)``.
        margins (Tensor): ``[N, C]`` margins ``m`` in ``[0, pi]``.

    Returns:
        Tensor: ``[N, C]``; equals ``cos`` exactly where ``m == 0``, ``cos(theta + m)`` where
        ``theta + m <= pi`` and ``-2 - cos(theta + m)`` beyond, which keeps decreasing in theta.
    """
    eps = COS_EPS[math_dtype(cos)]
    c = cos.clamp(-1.0 + eps, 1.0 - eps)
    sin_theta = torch.sqrt((1.0 - c) * (1.0 + c))
    cos_m, sin_m = torch.cos(margins), torch.sin(margins)
    shifted = cos * cos_m - sin_theta * sin_m
    # theta + m > pi  <=>  cos(theta) < cos(pi - m) = -cos(m)
    shifted = torch.where(c < -cos_m, -2.0 - shifted, shifted)
    return torch.where(margins > 0, shifted, cos)


def validate_cosine_inputs(cos: torch.Tensor, weight_norm: torch.Tensor | None,
                           labels: torch.Tensor, spec: MarginSpec) -> tuple:
    """Check the inputs of a loss on cosines once; returns ``(labels as int64, spec with
    exclude_class as an index in [0, C))``."""
    if not isinstance(cos, torch.Tensor) or cos.dim() != 2:
        shape = list(cos.shape) if isinstance(cos, torch.Tensor) else type(cos).__name__
        raise ValueError(f'cos must have shape [N, C], got {shape}')
    if not cos.dtype.is_floating_point:
        raise ValueError(f'cos must be floating point, got {cos.dtype}')
    num_samples, num_classes = cos.shape
    spec = spec.for_classes(num_classes)
    if spec.kind == 'adaptive' and spec.active:
        if weight_norm is None:
            raise ValueError("margin='adaptive' needs weight_norm, the [C] classifier norms")
        check_weight_norm(weight_norm, num_classes)
    return check_labels(labels, num_samples, num_classes), spec


def logits_from_cosine(cos: torch.Tensor, weight_norm: torch.Tensor | None,
                       labels: torch.Tensor, *, scale: float, spec: MarginSpec) -> torch.Tensor:
    """Eq. 6 logits ``[N, C]`` for validated inputs (see :func:`validate_cosine_inputs`)."""
    dtype = math_dtype(cos)
    with torch.autocast(device_type=cos.device.type, enabled=False):
        cos = cos.to(dtype)
        if not spec.active:
            return scale * cos
        margins = margin_matrix(weight_norm, labels, cos.shape[1], spec, dtype)
        return scale * angular_margin_cos(cos, margins)


def c2am_logits_from_cosine(cos: torch.Tensor,
                            weight_norm: torch.Tensor | None,
                            labels: torch.Tensor,
                            *,
                            scale: float = SCALE,
                            alpha: float = ALPHA,
                            margin: str = 'adaptive',
                            fixed_margin: float = 0.0,
                            exclude_class: int | None = None) -> torch.Tensor:
    """Training logits of Eq. 6 from precomputed cosines (for heads that compute them).

    Args:
        cos (Tensor): ``[N, C]`` cosines between features and classifier rows.
        weight_norm (Tensor | None): ``[C]`` classifier row norms (detached); needed only for
            ``margin='adaptive'`` with ``alpha > 0``.
        labels (Tensor): ``[N]`` integer labels in ``[0, C)``.
        scale (float): ``s``, finite and > 0.
        alpha (float): margin strength of Eq. 7 (``margin='adaptive'``), finite and >= 0.
        margin (str): ``'adaptive'`` (Eq. 7), ``'fixed'`` (constant ``fixed_margin``, Table 5)
            or ``'none'`` (plain cosine classifier).
        fixed_margin (float): the constant margin for ``margin='fixed'``, radians in [0, pi].
        exclude_class (int, optional): class with no margin in its column or its samples;
            negative values index from the end.

    Returns:
        Tensor: ``[N, C]`` logits in the math dtype (float32, or float64 for float64 input).

    Raises:
        ValueError: any invalid argument (the same checks on every path).
    """
    scale = check_scale(scale)
    spec = MarginSpec(margin, alpha, fixed_margin, exclude_class)
    labels, spec = validate_cosine_inputs(cos, weight_norm, labels, spec)
    return logits_from_cosine(cos, weight_norm, labels, scale=scale, spec=spec)


def c2am_logits(features: torch.Tensor,
                weight: torch.Tensor,
                labels: torch.Tensor,
                *,
                scale: float = SCALE,
                alpha: float = ALPHA,
                margin: str = 'adaptive',
                fixed_margin: float = 0.0,
                exclude_class: int | None = None) -> torch.Tensor:
    """Training logits of Eq. 6 from features and (unnormalised) classifier weights.

    Args:
        features (Tensor): ``[N, D]`` features.
        weight (Tensor): ``[C, D]`` classifier rows, NOT normalised by the caller.
        labels (Tensor): ``[N]`` integer labels in ``[0, C)``.
        scale, alpha, margin, fixed_margin, exclude_class: the margin settings, as in
            :func:`c2am_logits_from_cosine`.

    Returns:
        Tensor: ``[N, C]`` logits: ``s*cos(theta_i)`` in the label column and
        ``s*cos(theta_j + m_ij)`` elsewhere.
    """
    return c2am_logits_from_cosine(
        cosine_similarity_matrix(features, weight), classifier_norms(weight), labels,
        scale=scale, alpha=alpha, margin=margin, fixed_margin=fixed_margin,
        exclude_class=exclude_class)
