"""Functional form of the C2AM loss (Eq. 6-7 of the paper).

Pure PyTorch: this module must not import mmdet, mmcv or mmengine.

Notation: for a sample of class ``i`` with feature ``x`` and classifier rows ``W_j``,
``cos_j = <x, W_j> / (||x|| ||W_j||)``. Training logits are ``s * cos_i`` for the label column
and ``s * cos(theta_j + m_ij)`` for the others, with
``m_ij = max(0, alpha / pi * log(||W_i|| / ||W_j||))`` computed from DETACHED norms.

Numerics (see shared/DESIGN.md):
  * All margin math runs in float32 (or float64 when given float64), also under autocast.
  * ``cos(theta + m)`` is evaluated as ``cos*cos(m) - sin(theta)*sin(m)`` without ``acos``;
    inside ``sin(theta) = sqrt(1 - cos^2)`` only, ``cos`` is clamped to ``+-(1 - COS_EPS)``
    (float32: its machine epsilon) so that its gradient is finite; the linear term keeps the
    unclamped ``cos`` (and its gradient ``cos(m)`` at ``|cos| = 1``).
  * Beyond ``theta + m > pi`` the naive ``cos(theta + m)`` rises again; we reflect it about -1
    (``-2 - cos(theta + m)``), a C1, strictly monotone extension.
  * Where the margin is exactly zero the logit is ``s * cos`` unchanged, with exact gradients.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MARGIN_TYPES = ('adaptive', 'fixed', 'none')
IMPLEMENTATIONS = ('auto', 'fused', 'reference')
REDUCTIONS = ('none', 'mean', 'sum')

# Clamp for cosines before sqrt(1 - cos^2), per math dtype. float32: its machine epsilon, the
# smallest step below 1 that float32 keeps (1 - eps rounds to 1 in bf16/fp16, which is why the
# math is upcast first); it bounds d sin(theta)/d cos by 1/sqrt(2 eps) ~ 2e3 and moves
# cos(theta + m) by at most sin(m) * sqrt(2 eps) ~ 5e-4 for |cos| within eps of 1.
COS_EPS = {torch.float32: float(torch.finfo(torch.float32).eps), torch.float64: 1e-12}
# Lower bound on norms: zero-norm features / classifier rows give cos = 0 and finite margins.
NORM_EPS = 1e-12


def _math_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _check_labels(labels: torch.Tensor, num_samples: int | None,
                  num_classes: int) -> torch.Tensor:
    """Validate integer labels and return them as int64 (indexing with uint8 would read them
    as a mask; gather / cross_entropy need int64)."""
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f'labels must be a torch.Tensor, got {type(labels).__name__}')
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f'labels must have an integer dtype, got {labels.dtype}')
    if labels.dim() != 1 or (num_samples is not None and labels.shape[0] != num_samples):
        expected = 'N' if num_samples is None else num_samples
        raise ValueError(
            f'labels must have shape [{expected}] (one label per sample), '
            f'got {list(labels.shape)}')
    if labels.numel() and bool(((labels < 0) | (labels >= num_classes)).any()):
        bad = labels[(labels < 0) | (labels >= num_classes)][0].item()
        raise ValueError(f'labels must lie in [0, {num_classes - 1}], found {bad}')
    return labels.long()


def _check_choice(name: str, value: str, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f'{name} must be one of {choices}, got {value!r}')


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
    if features.dim() != 2 or weight.dim() != 2 or features.shape[1] != weight.shape[1]:
        raise ValueError(
            f'features must be [N, D] and weight [C, D] with the same D, '
            f'got {list(features.shape)} and {list(weight.shape)}')
    dtype = _math_dtype(features)
    with torch.autocast(device_type=features.device.type, enabled=False):
        x = F.normalize(features.to(dtype), dim=1, eps=NORM_EPS)
        w = F.normalize(weight.to(dtype), dim=1, eps=NORM_EPS)
    return F.linear(x, w).to(dtype)


def classifier_norms(weight: torch.Tensor) -> torch.Tensor:
    """Detached L2 norms of the classifier rows, ``[C, D] -> [C]``, in float32 (or float64)."""
    with torch.no_grad():
        return weight.detach().to(_math_dtype(weight)).norm(dim=1)


def c2am_margins(weight_norm: torch.Tensor,
                 labels: torch.Tensor,
                 alpha: float,
                 exclude_class: int | None = None) -> torch.Tensor:
    """Category-aware angular margins (Eq. 7).

    ``m_ij = max(0, alpha / pi * log(||W_i|| / ||W_j||))`` for each sample's label ``i``; zero
    in the label's own column. Computed without gradient. Margins are capped at pi: a larger
    angle has no further meaning on the circle.

    Args:
        weight_norm (Tensor): ``[C]`` classifier row norms (detached internally).
        labels (Tensor): ``[N]`` integer labels in ``[0, C)``.
        alpha (float): margin strength; 0 gives all-zero margins.
        exclude_class (int, optional): a class (e.g. the detector's background) whose column
            and whose samples get no margin. Negative values index from the end.

    Returns:
        Tensor: ``[N, C]`` margins (radians), float32 (float64 for float64 norms).
    """
    if weight_norm.dim() != 1:
        raise ValueError(f'weight_norm must have shape [C], got {list(weight_norm.shape)}')
    labels = _check_labels(labels, None, weight_norm.shape[0])
    return _adaptive_margins(weight_norm, labels, alpha, exclude_class)


def _adaptive_margins(weight_norm: torch.Tensor, labels: torch.Tensor, alpha: float,
                      exclude_class: int | None) -> torch.Tensor:
    """:func:`c2am_margins` on inputs the caller has validated (the label range check costs a
    device synchronisation, so the loss path runs it once)."""
    num_classes = weight_norm.shape[0]
    with torch.no_grad():
        norm = weight_norm.detach().to(_math_dtype(weight_norm)).clamp_min(NORM_EPS)
        log_norm = norm.log()
        # log(||W_i|| / ||W_j||) = log||W_i|| - log||W_j||; [N, 1] - [1, C]
        margins = (alpha / math.pi) * (log_norm[labels].unsqueeze(1) - log_norm.unsqueeze(0))
        margins = margins.clamp(0.0, math.pi)
        margins.scatter_(1, labels.unsqueeze(1), 0.0)
        if exclude_class is not None:
            _zero_excluded(margins, labels, exclude_class % num_classes)
    return margins


def _fixed_margins(labels: torch.Tensor, num_classes: int, value: float, dtype: torch.dtype,
                   exclude_class: int | None) -> torch.Tensor:
    margins = torch.full((labels.shape[0], num_classes), float(value), dtype=dtype,
                         device=labels.device)
    margins.scatter_(1, labels.unsqueeze(1), 0.0)
    if exclude_class is not None:
        _zero_excluded(margins, labels, exclude_class % num_classes)
    return margins


def _zero_excluded(margins: torch.Tensor, labels: torch.Tensor, cls: int) -> None:
    margins[:, cls] = 0.0
    margins[labels == cls] = 0.0


def angular_margin_cos(cos: torch.Tensor, margins: torch.Tensor) -> torch.Tensor:
    """``cos(theta + m)`` with a monotone extension beyond ``theta + m > pi``.

    Args:
        cos (Tensor): ``[N, C]`` cosines ``cos(theta)``.
        margins (Tensor): ``[N, C]`` margins ``m`` in ``[0, pi]``.

    Returns:
        Tensor: ``[N, C]``; equals ``cos`` exactly where ``m == 0``, ``cos(theta + m)`` where
        ``theta + m <= pi`` and ``-2 - cos(theta + m)`` beyond, which keeps decreasing in theta.
    """
    eps = COS_EPS[_math_dtype(cos)]
    c = cos.clamp(-1.0 + eps, 1.0 - eps)
    sin_theta = torch.sqrt((1.0 - c) * (1.0 + c))
    cos_m, sin_m = torch.cos(margins), torch.sin(margins)
    shifted = cos * cos_m - sin_theta * sin_m
    # theta + m > pi  <=>  cos(theta) < cos(pi - m) = -cos(m)
    shifted = torch.where(c < -cos_m, -2.0 - shifted, shifted)
    return torch.where(margins > 0, shifted, cos)


def _validate_cosine_inputs(cos, weight_norm, labels, margin, fixed_margin) -> torch.Tensor:
    """Validate the loss inputs; returns the labels as int64."""
    _check_choice('margin', margin, MARGIN_TYPES)
    if cos.dim() != 2:
        raise ValueError(f'cos must have shape [N, C], got {list(cos.shape)}')
    num_samples, num_classes = cos.shape
    labels = _check_labels(labels, num_samples, num_classes)
    if margin == 'adaptive':
        if weight_norm is None:
            raise ValueError("margin='adaptive' needs weight_norm, the [C] classifier norms")
        if weight_norm.shape != (num_classes,):
            raise ValueError(f'weight_norm must have shape [{num_classes}], '
                             f'got {list(weight_norm.shape)}')
    if margin == 'fixed' and not 0.0 <= fixed_margin <= math.pi:
        raise ValueError(f'fixed_margin must lie in [0, pi], got {fixed_margin}')
    return labels


def c2am_logits_from_cosine(cos: torch.Tensor,
                            weight_norm: torch.Tensor | None,
                            labels: torch.Tensor,
                            scale: float = 30.0,
                            alpha: float = 0.5,
                            margin: str = 'adaptive',
                            fixed_margin: float = 0.0,
                            exclude_class: int | None = None) -> torch.Tensor:
    """Training logits of Eq. 6 from precomputed cosines (for heads that compute them).

    Args:
        cos (Tensor): ``[N, C]`` cosines between features and classifier rows.
        weight_norm (Tensor | None): ``[C]`` classifier row norms (detached); needed only for
            ``margin='adaptive'``.
        labels (Tensor): ``[N]`` integer labels in ``[0, C)``.
        scale (float): ``s``.
        alpha (float): margin strength of Eq. 7 (``margin='adaptive'``).
        margin (str): ``'adaptive'`` (Eq. 7), ``'fixed'`` (constant ``fixed_margin``, Table 5)
            or ``'none'`` (plain cosine classifier).
        fixed_margin (float): the constant margin for ``margin='fixed'``, radians.
        exclude_class (int, optional): class with no margin in its column or its samples.

    Returns:
        Tensor: ``[N, C]`` logits in the math dtype (float32, or float64 for float64 input).
    """
    labels = _validate_cosine_inputs(cos, weight_norm, labels, margin, fixed_margin)
    num_classes = cos.shape[1]
    dtype = _math_dtype(cos)
    with torch.autocast(device_type=cos.device.type, enabled=False):
        cos = cos.to(dtype)
        if margin == 'none' or (margin == 'adaptive' and alpha == 0):
            return scale * cos
        if margin == 'adaptive':
            margins = _adaptive_margins(weight_norm.to(dtype), labels, alpha, exclude_class)
        else:
            margins = _fixed_margins(labels, num_classes, fixed_margin, dtype, exclude_class)
        return scale * angular_margin_cos(cos, margins)


def c2am_logits(features: torch.Tensor,
                weight: torch.Tensor,
                labels: torch.Tensor,
                scale: float = 30.0,
                alpha: float = 0.5,
                margin: str = 'adaptive',
                fixed_margin: float = 0.0,
                exclude_class: int | None = None) -> torch.Tensor:
    """Training logits of Eq. 6 from features and (unnormalised) classifier weights.

    Args:
        features (Tensor): ``[N, D]`` features.
        weight (Tensor): ``[C, D]`` classifier rows, NOT normalised by the caller.
        labels (Tensor): ``[N]`` integer labels in ``[0, C)``.
        scale, alpha, margin, fixed_margin, exclude_class: see
            :func:`c2am_logits_from_cosine`.

    Returns:
        Tensor: ``[N, C]`` logits: ``s*cos(theta_i)`` in the label column and
        ``s*cos(theta_j + m_ij)`` elsewhere.
    """
    cos = cosine_similarity_matrix(features, weight)
    return c2am_logits_from_cosine(cos, classifier_norms(weight), labels, scale, alpha, margin,
                                   fixed_margin, exclude_class)


def weighted_reduce(loss: torch.Tensor,
                    sample_weight: torch.Tensor | None = None,
                    reduction: str = 'mean',
                    avg_factor: float | None = None) -> torch.Tensor:
    """Per-sample weighting and reduction with the semantics of mmdet's ``weight_reduce_loss``.

    Args:
        loss (Tensor): ``[N]`` per-sample losses.
        sample_weight (Tensor, optional): ``[N]`` weights.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
        avg_factor (float, optional): divide the sum by this instead of ``N`` (``'mean'`` only).

    Returns:
        Tensor: reduced loss (``[N]`` for ``'none'``).
    """
    _check_choice('reduction', reduction, REDUCTIONS)
    if sample_weight is not None:
        if sample_weight.shape != loss.shape:
            raise ValueError(f'sample_weight must have shape {list(loss.shape)}, '
                             f'got {list(sample_weight.shape)}')
        loss = loss * sample_weight.to(loss.dtype)
    if avg_factor is None:
        if reduction == 'mean':
            return loss.mean()
        return loss.sum() if reduction == 'sum' else loss
    if reduction == 'mean':
        # mmdet adds float32 eps to avoid division by zero
        return loss.sum() / (avg_factor + torch.finfo(torch.float32).eps)
    if reduction == 'sum':
        raise ValueError('avg_factor can not be used with reduction="sum"')
    return loss


def c2am_loss_from_cosine(cos: torch.Tensor,
                          weight_norm: torch.Tensor | None,
                          labels: torch.Tensor,
                          scale: float = 30.0,
                          alpha: float = 0.5,
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
        weight_norm (Tensor | None): ``[C]`` classifier row norms.
        labels (Tensor): ``[N]`` integer labels.
        scale, alpha, margin, fixed_margin, exclude_class: see
            :func:`c2am_logits_from_cosine`.
        sample_weight (Tensor, optional): ``[N]`` per-sample weights.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
        avg_factor (float, optional): mmdet-style averaging factor.
        implementation (str): ``'fused'`` (custom autograd function that keeps one
            ``[N, C]`` tensor for backward, see ``fused.py``; compiled on CUDA or with
            ``C2AM_COMPILE=1``, else eager), ``'reference'`` (logits + ``F.cross_entropy``,
            plain autograd) or ``'auto'`` (default, = ``'fused'``). All give the same numbers;
            only ``'reference'`` supports double backward (``'fused'`` raises).

    Returns:
        Tensor: the loss, float32 (float64 for float64 input). For ``N = 0`` a zero that
        still backpropagates (``'none'``: an empty tensor).
    """
    _check_choice('reduction', reduction, REDUCTIONS)
    _check_choice('implementation', implementation, IMPLEMENTATIONS)
    if implementation == 'reference':
        logits = c2am_logits_from_cosine(cos, weight_norm, labels, scale, alpha, margin,
                                         fixed_margin, exclude_class)
        if logits.shape[0] == 0:
            # cross_entropy's mean over nothing is NaN; keep the graph with an exact zero.
            return logits.sum(dim=1) if reduction == 'none' else logits.sum() * 0.0
        loss = F.cross_entropy(logits, labels.long(), reduction='none')
        return weighted_reduce(loss, sample_weight, reduction, avg_factor)

    from .fused import c2am_cross_entropy
    labels = _validate_cosine_inputs(cos, weight_norm, labels, margin, fixed_margin)
    with torch.autocast(device_type=cos.device.type, enabled=False):
        cos = cos.to(_math_dtype(cos))
        if cos.shape[0] == 0:
            return cos.sum(dim=1) if reduction == 'none' else cos.sum() * 0.0
        if margin == 'adaptive' and alpha == 0:
            margin = 'none'
        loss = c2am_cross_entropy(cos, weight_norm, labels, scale, alpha, margin, fixed_margin,
                                  exclude_class)
        return weighted_reduce(loss, sample_weight, reduction, avg_factor)


def c2am_loss(features: torch.Tensor,
              weight: torch.Tensor,
              labels: torch.Tensor,
              scale: float = 30.0,
              alpha: float = 0.5,
              margin: str = 'adaptive',
              fixed_margin: float = 0.0,
              exclude_class: int | None = None,
              sample_weight: torch.Tensor | None = None,
              reduction: str = 'mean',
              avg_factor: float | None = None,
              implementation: str = 'auto') -> torch.Tensor:
    """C2AM loss (Eq. 6): cross-entropy of :func:`c2am_logits`.

    Args:
        features (Tensor): ``[N, D]`` features.
        weight (Tensor): ``[C, D]`` classifier rows (unnormalised).
        labels (Tensor): ``[N]`` integer labels in ``[0, C)``.
        scale, alpha, margin, fixed_margin, exclude_class: see
            :func:`c2am_logits_from_cosine`.
        sample_weight, reduction, avg_factor, implementation: see
            :func:`c2am_loss_from_cosine`.

    Returns:
        Tensor: the loss.
    """
    cos = cosine_similarity_matrix(features, weight)
    return c2am_loss_from_cosine(cos, classifier_norms(weight), labels, scale, alpha, margin,
                                 fixed_margin, exclude_class, sample_weight, reduction,
                                 avg_factor, implementation)
