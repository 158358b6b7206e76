"""Numerical constants and argument checks of the loss core (the bottom layer: imports only
torch).

Pure PyTorch: the loss core must not import mmdet, mmcv or mmengine.
"""
from __future__ import annotations

import math
import numbers

import torch

# Clamp for cosines before sqrt(1 - cos^2), per math dtype. float32: its machine epsilon, the
# smallest step below 1 that float32 keeps (1 - eps rounds to 1 in bf16/fp16, which is why the
# math is upcast first); it bounds d sin(theta)/d cos by 1/sqrt(2 eps) ~ 2e3 and moves
# cos(theta + m) by at most sin(m) * sqrt(2 eps) ~ 5e-4 for |cos| within eps of 1.
COS_EPS = {torch.float32: float(torch.finfo(torch.float32).eps), torch.float64: 1e-12}
# Lower bound on norms: zero-norm features / classifier rows give cos = 0 and finite margins.
NORM_EPS = 1e-12


def math_dtype(t: torch.Tensor) -> torch.dtype:
    """float64 for float64 input, else float32 (the margin math never runs in fp16/bf16)."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def check_choice(name: str, value, choices: tuple) -> None:
    """Raise ValueError unless ``value`` is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f'{name} must be one of {choices}, got {value!r}')


def check_number(name: str, value, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False) -> float:
    """``value`` as a finite float in ``[low, high]`` (``(low, high]`` with ``low_open``).

    Raises:
        ValueError: not a real number (bools and tensors are refused too), NaN / Inf, or out
            of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f'{name} must be a real number, got {type(value).__name__} {value!r}')
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f'{name} must be finite, got {value}')
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f'{name} must be {">" if low_open else ">="} {low:g}, got {value:g}')
    if high is not None and value > high:
        raise ValueError(f'{name} must be <= {high:g}, got {value:g}')
    return value


def check_labels(labels: torch.Tensor, num_samples: int | None,
                 num_classes: int) -> torch.Tensor:
    """Validate integer labels ``[N]`` in ``[0, C)`` and return them as int64 (indexing with
    uint8 would read them as a mask; gather / cross_entropy need int64). The range check costs
    one device synchronisation: call it once per loss."""
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


class DivergedWeightsError(ValueError):
    """The classifier norms handed to the loss hold NaN / Inf: the weights have diverged."""


def check_weight_norm(weight_norm: torch.Tensor, num_classes: int) -> None:
    """Classifier row norms ``[C]`` must be finite and >= 0: NaN / Inf norms mean the
    classifier has diverged, and margins read from them would be meaningless."""
    if not isinstance(weight_norm, torch.Tensor) or weight_norm.shape != (num_classes,):
        shape = list(weight_norm.shape) if isinstance(weight_norm, torch.Tensor) \
            else type(weight_norm).__name__
        raise ValueError(f'weight_norm must have shape [{num_classes}], got {shape}')
    if weight_norm.numel() and not bool((torch.isfinite(weight_norm) & (weight_norm >= 0)).all()):
        raise DivergedWeightsError(
            'weight_norm holds NaN, Inf or negative values: the classifier weights have diverged '
            '(lower the learning rate or enable gradient clipping)')


def check_first_order() -> None:
    """Raise in a backward run with ``create_graph=True``: the fast paths return d loss / d cos
    from saved tensors, so a second derivative through them would silently miss terms."""
    if torch.is_grad_enabled():
        raise RuntimeError("C2AM implementation='fused' has no double backward "
                           "(create_graph=True); use implementation='reference'")
