"""Compiled C2AM cross-entropy: a custom autograd function that keeps one ``[N, C]`` tensor and
recomputes the rest in backward, with both element-wise kernels through ``torch.compile``.

``implementation='fused'`` uses it on CUDA by default and on CPU with ``C2AM_COMPILE=1``
(``C2AM_COMPILE=0``: the eager path of ``eager.py`` everywhere). Forward saves the input
cosines, the ``[C]`` log-norms, the labels and the ``[N]`` log-sum-exp; backward recomputes the
margins, ``psi = cos(theta + m)`` and its derivative. A kernel that fails to compile falls back
to the same Python function run eagerly. Results equal ``reference.py`` to float rounding.

The margins use the product identity ``cos(a_i - a_j) = cos a_i cos a_j + sin a_i sin a_j``
(``a = alpha / pi * log||W||``, Eq. 7) so that only ``[C]`` transcendentals are evaluated.

Pure PyTorch: the loss core must not import mmdet, mmcv or mmengine.
"""
from __future__ import annotations

import math
import os
import warnings

import torch

from .margin import MarginSpec
from .numerics import COS_EPS, NORM_EPS, check_first_order


def _margin_terms(log_norm, labels, alpha: float, fixed: float, adaptive: bool, exclude: int,
                  num_classes: int):
    """``cos(m)``, ``sin(m)`` and ``m > 0`` for every (sample, class), Eq. 7.

    Adaptive margins never evaluate cos/sin on ``[N, C]``: with ``a = alpha / pi * log||W||``,
    ``m_ij = clamp(a_i - a_j, 0, pi)`` and ``cos(a_i - a_j) = cos a_i cos a_j + sin a_i sin a_j``
    (likewise sin), so only ``[C]`` transcendentals and a few multiply-adds per element remain.
    Otherwise the constant ``fixed`` (0: no margins). ``exclude >= 0`` names a class without
    margins. (Plain arguments, not a :class:`MarginSpec`: they are what torch.compile guards on.)
    """
    cols = torch.arange(num_classes, device=labels.device).unsqueeze(0)
    zero = cols == labels.unsqueeze(1)
    if exclude >= 0:
        zero = zero | (cols == exclude) | (labels == exclude).unsqueeze(1)
    if not adaptive:
        return math.cos(fixed), math.sin(fixed), ~zero if fixed > 0 else torch.zeros_like(zero)
    a = (alpha / math.pi) * log_norm
    ca, sa = torch.cos(a), torch.sin(a)
    ai, cai, sai = a[labels].unsqueeze(1), ca[labels].unsqueeze(1), sa[labels].unsqueeze(1)
    diff = ai - a.unsqueeze(0)
    saturated = diff >= math.pi  # margins are capped at pi: cos = -1, sin = 0
    cm = torch.where(saturated, -1.0, cai * ca + sai * sa)
    sm = torch.where(saturated, 0.0, sai * ca - cai * sa)
    return cm, sm, (diff > 0) & ~zero


def _psi(cos, cm, sm, has_m, eps: float, with_grad: bool):
    """``cos(theta + m)`` with the monotone extension, and optionally d psi / d cos."""
    c = cos.clamp(-1.0 + eps, 1.0 - eps)
    sin_t = torch.sqrt((1.0 - c) * (1.0 + c))
    shifted = cos * cm - sin_t * sm
    reflect = c < -cm  # theta + m > pi
    psi = torch.where(has_m, torch.where(reflect, -2.0 - shifted, shifted), cos)
    if not with_grad:
        return psi, None
    # the clamp (inside sin(theta) only) passes gradient at its bounds, like torch.clamp
    d = cm + c / sin_t * sm * ((cos >= -1.0 + eps) & (cos <= 1.0 - eps))
    return psi, torch.where(has_m, torch.where(reflect, -d, d), 1.0)


def _forward_math(cos, log_norm, labels, scale: float, alpha: float, fixed: float,
                  adaptive: bool, exclude: int, eps: float):
    cm, sm, has_m = _margin_terms(log_norm, labels, alpha, fixed, adaptive, exclude,
                                  cos.shape[1])
    logits = scale * _psi(cos, cm, sm, has_m, eps, False)[0]
    lse = torch.logsumexp(logits, dim=1)
    return lse - logits.gather(1, labels.unsqueeze(1)).squeeze(1), lse


def _backward_math(grad_loss, cos, log_norm, labels, lse, scale: float, alpha: float,
                   fixed: float, adaptive: bool, exclude: int, eps: float):
    num_classes = cos.shape[1]
    cm, sm, has_m = _margin_terms(log_norm, labels, alpha, fixed, adaptive, exclude,
                                  num_classes)
    psi, dpsi = _psi(cos, cm, sm, has_m, eps, True)
    # d loss / d logits = softmax - onehot; softmax recomputed from the saved log-sum-exp
    g = torch.exp(scale * psi - lse.unsqueeze(1))
    onehot = torch.arange(num_classes, device=cos.device).unsqueeze(0) == labels.unsqueeze(1)
    g = (g - onehot.to(g.dtype)) * grad_loss.unsqueeze(1)
    return g * (scale * dpsi)


_COMPILED: dict = {}


def compile_enabled(device: torch.device) -> bool:
    """``C2AM_COMPILE``: ``auto`` (default: compile on CUDA only), ``1`` (also on CPU, where
    the first call costs ~20 s of compilation) or ``0`` (always eager)."""
    mode = os.environ.get('C2AM_COMPILE', 'auto')
    if mode not in ('auto', '0', '1'):
        raise ValueError(f"C2AM_COMPILE must be 'auto', '0' or '1', got {mode!r}")
    return mode == '1' or (mode == 'auto' and device.type == 'cuda')


def compile_kernel(function):
    """``torch.compile`` of one kernel (dynamic shapes: RoI counts vary per batch)."""
    return torch.compile(function, dynamic=True)


def _kernels(device: torch.device):
    """The compiled (forward, backward) kernels for ``device``, compiled once per process."""
    if device.type not in _COMPILED:
        try:
            _COMPILED[device.type] = (compile_kernel(_forward_math),
                                      compile_kernel(_backward_math))
        except Exception as err:  # pragma: no cover - depends on the toolchain
            warnings.warn(f'torch.compile unavailable ({err}); C2AM runs eager', stacklevel=2)
            _COMPILED[device.type] = (_forward_math, _backward_math)
    return _COMPILED[device.type]


def _run(which: int, device: torch.device, *args):
    """Run the forward (0) or backward (1) kernel; a compiled kernel that fails (toolchain,
    unsupported op) is replaced by the eager one for the rest of the process."""
    kernel = _kernels(device)[which]
    eager = (_forward_math, _backward_math)[which]
    if kernel is eager:
        return eager(*args)
    try:
        return kernel(*args)
    except Exception as err:  # pragma: no cover - depends on the toolchain
        warnings.warn(f'compiled C2AM kernel failed ({str(err)[:200]}); falling back to eager',
                      stacklevel=3)
        _COMPILED[device.type] = (_forward_math, _backward_math)
        return eager(*args)


class C2AMCrossEntropyCompiled(torch.autograd.Function):
    """Per-sample C2AM cross-entropy ``[N]`` from validated float32/float64 cosines ``[N, C]``:
    ``forward(cos, weight_norm, labels, scale, spec)`` with ``spec.exclude_class`` already in
    ``[0, C)``. Same numbers as ``F.cross_entropy`` of ``reference.py``'s logits."""

    @staticmethod
    def forward(ctx, cos, weight_norm, labels, scale, spec: MarginSpec):
        if spec.kind == 'adaptive' and spec.active:
            log_norm = weight_norm.detach().to(cos.dtype).clamp_min(NORM_EPS).log()
        else:
            log_norm = cos.new_zeros(cos.shape[1])
        fixed = spec.fixed_margin if spec.kind == 'fixed' and spec.active else 0.0
        args = (float(scale), spec.alpha, fixed, spec.kind == 'adaptive' and spec.active,
                -1 if spec.exclude_class is None else spec.exclude_class, COS_EPS[cos.dtype])
        loss, lse = _run(0, cos.device, cos, log_norm, labels, *args)
        ctx.save_for_backward(cos, log_norm, labels, lse)
        ctx.args = args
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        check_first_order()
        cos, log_norm, labels, lse = ctx.saved_tensors
        grad_cos = _run(1, cos.device, grad_loss.contiguous(), cos, log_norm, labels, lse,
                        *ctx.args)
        return grad_cos, None, None, None, None
