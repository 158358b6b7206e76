"""Memory-lean C2AM cross-entropy: a custom autograd function that recomputes, not stores.

The reference path (``c2am_logits_from_cosine`` + ``F.cross_entropy``) keeps about ten
``[N, C]`` intermediates alive for the backward pass. Here forward saves only the input
cosines (already held by the matmul that produced them), the ``[C]`` log-norms, the labels and
the ``[N]`` log-sum-exp; backward recomputes margins, ``psi = cos(theta + m)`` and its
derivative in one pass. On CUDA the two element-wise kernels are compiled with
``torch.compile`` (fused into a few kernels) with an eager fallback. Results equal the
reference path to float rounding (tested in float64/float32).

Pure PyTorch: this module must not import mmdet, mmcv or mmengine.
"""
from __future__ import annotations

import math
import os
import warnings

import torch

from .functional import COS_EPS, NORM_EPS


def _margins(log_norm, labels, alpha: float, fixed: float, mode: int, exclude: int,
             num_samples: int, num_classes: int, dtype, device):
    """[N, C] margins; mode 1 = adaptive (Eq. 7), 2 = fixed. exclude < 0: none."""
    if mode == 1:
        m = (alpha / math.pi) * (log_norm[labels].unsqueeze(1) - log_norm.unsqueeze(0))
        m = m.clamp(0.0, math.pi)
    else:
        m = torch.full((num_samples, num_classes), fixed, dtype=dtype, device=device)
    cols = torch.arange(num_classes, device=device).unsqueeze(0)
    zero = cols == labels.unsqueeze(1)
    if exclude >= 0:
        zero = zero | (cols == exclude) | (labels == exclude).unsqueeze(1)
    return m.masked_fill(zero, 0.0)


def _psi(cos, m, eps: float, with_grad: bool):
    """``cos(theta + m)`` with the monotone extension, and optionally d psi / d cos."""
    c = cos.clamp(-1.0 + eps, 1.0 - eps)
    sin_t = torch.sqrt((1.0 - c) * (1.0 + c))
    cm, sm = torch.cos(m), torch.sin(m)
    shifted = c * cm - sin_t * sm
    reflect = c < -cm
    has_m = m > 0
    psi = torch.where(has_m, torch.where(reflect, -2.0 - shifted, shifted), cos)
    if not with_grad:
        return psi, None
    d = cm + c / sin_t * sm
    d = torch.where(reflect, -d, d) * ((cos >= -1.0 + eps) & (cos <= 1.0 - eps))
    return psi, torch.where(has_m, d, torch.ones_like(d))


def _forward_math(cos, log_norm, labels, scale: float, alpha: float, fixed: float, mode: int,
                  exclude: int, eps: float):
    n, c = cos.shape
    m = _margins(log_norm, labels, alpha, fixed, mode, exclude, n, c, cos.dtype, cos.device)
    logits = scale * _psi(cos, m, eps, False)[0]
    lse = torch.logsumexp(logits, dim=1)
    return lse - logits.gather(1, labels.unsqueeze(1)).squeeze(1), lse


def _backward_math(grad_loss, cos, log_norm, labels, lse, scale: float, alpha: float,
                   fixed: float, mode: int, exclude: int, eps: float):
    n, c = cos.shape
    m = _margins(log_norm, labels, alpha, fixed, mode, exclude, n, c, cos.dtype, cos.device)
    psi, dpsi = _psi(cos, m, eps, True)
    # d loss / d logits = softmax - onehot; softmax recomputed from the saved log-sum-exp
    g = torch.exp(scale * psi - lse.unsqueeze(1))
    onehot = torch.arange(c, device=cos.device).unsqueeze(0) == labels.unsqueeze(1)
    g = (g - onehot.to(g.dtype)) * grad_loss.unsqueeze(1)
    return g * (scale * dpsi)


_COMPILED: dict = {}


def _kernels(device: torch.device):
    """Eager kernels on CPU; torch.compile'd ones on CUDA (C2AM_NO_COMPILE=1 disables)."""
    if device.type != 'cuda' or os.environ.get('C2AM_NO_COMPILE') == '1':
        return _forward_math, _backward_math
    if 'cuda' not in _COMPILED:
        try:
            _COMPILED['cuda'] = (torch.compile(_forward_math, dynamic=True),
                                 torch.compile(_backward_math, dynamic=True))
        except Exception as err:  # pragma: no cover - depends on the CUDA toolchain
            warnings.warn(f'torch.compile unavailable ({err}); C2AM runs eager', stacklevel=2)
            _COMPILED['cuda'] = (_forward_math, _backward_math)
    return _COMPILED['cuda']


class _C2AMCrossEntropy(torch.autograd.Function):

    @staticmethod
    def forward(ctx, cos, log_norm, labels, scale, alpha, fixed, mode, exclude):
        eps = COS_EPS[cos.dtype]
        fwd, _ = _kernels(cos.device)
        try:
            loss, lse = fwd(cos, log_norm, labels, scale, alpha, fixed, mode, exclude, eps)
        except Exception as err:  # pragma: no cover - compile failure at first call
            if fwd is _forward_math:
                raise
            warnings.warn(f'compiled C2AM kernel failed ({err}); falling back to eager',
                          stacklevel=2)
            _COMPILED['cuda'] = (_forward_math, _backward_math)
            loss, lse = _forward_math(cos, log_norm, labels, scale, alpha, fixed, mode,
                                      exclude, eps)
        ctx.save_for_backward(cos, log_norm, labels, lse)
        ctx.args = (scale, alpha, fixed, mode, exclude, eps)
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        cos, log_norm, labels, lse = ctx.saved_tensors
        _, bwd = _kernels(cos.device)
        grad_cos = bwd(grad_loss.contiguous(), cos, log_norm, labels, lse, *ctx.args)
        return grad_cos, None, None, None, None, None, None, None


def c2am_cross_entropy(cos: torch.Tensor, weight_norm: torch.Tensor | None,
                       labels: torch.Tensor, scale: float, alpha: float, margin: str,
                       fixed_margin: float, exclude_class: int | None) -> torch.Tensor:
    """Per-sample C2AM cross-entropy ``[N]`` from validated float32/float64 cosines ``[N, C]``.

    Same arguments and numbers as ``F.cross_entropy(c2am_logits_from_cosine(...), labels,
    reduction='none')``; call it through :func:`c2am_loss_from_cosine`.
    """
    num_classes = cos.shape[1]
    mode = {'none': 2, 'fixed': 2, 'adaptive': 1}[margin]
    fixed = 0.0 if margin == 'none' else float(fixed_margin)
    if margin == 'adaptive':
        log_norm = weight_norm.detach().to(cos.dtype).clamp_min(NORM_EPS).log()
    else:
        log_norm = cos.new_zeros(num_classes)
    exclude = -1 if exclude_class is None else exclude_class % num_classes
    return _C2AMCrossEntropy.apply(cos, log_norm, labels, float(scale), float(alpha), fixed,
                                   mode, exclude)
