"""Eager C2AM cross-entropy for CPU: d loss / d cos formed in forward, in cache-sized row blocks.

Used by ``implementation='fused'`` wherever the kernels are not compiled (CPU by default,
``C2AM_COMPILE=0``). On CPU an element-wise pass is cheap while its data sit in cache, a fresh
``[N, C]`` tensor costs several passes (page faults) and a boolean mask (``where``,
``masked_fill``) about ten. So this path

* works through row blocks of about ``BLOCK_ELEMENTS`` entries with float arithmetic, mostly
  in place, writing into the one ``[N, C]`` tensor it keeps for backward: forward computes the
  per-sample loss and ``d loss / d cos`` together, backward only scales the latter;
* writes Eq. 6 with half-angles, ``cos(m) = 1 - 2 sin^2(m/2)`` and
  ``sin(m) = 2 sin(m/2) cos(m/2)``. For ``m_ij = clamp(a_i - a_j, 0, pi)`` (Eq. 7,
  ``a = alpha / pi * log||W||``) and ``|a_i - a_j| < pi``,
  ``sin(m/2) = relu(sin((a_i - a_j) / 2))``: two outer products of ``[C]`` sines and cosines
  and a ``relu``, no ``[N, C]`` transcendental and no mask. Where ``m = 0`` this gives
  ``psi = cos`` and ``d psi / d cos = 1`` exactly. Margins capped at pi take the direct route;
* folds the scale ``s`` into those ``[C]`` factors (into the cosine's only, so that equal
  norms give exactly zero margin);
* pays for the masks of the two rare cases (``theta + m > pi``, a cosine at the clamp bounds)
  only when a whole-tensor bound says they can occur.

Numbers equal the reference path (``reference.py`` + ``F.cross_entropy``) to float rounding.
Pure PyTorch: this module must not import mmdet, mmcv or mmengine.
"""
from __future__ import annotations

import math

import torch

from .margin import MarginSpec
from .numerics import COS_EPS, NORM_EPS, check_first_order

# Entries per row block: 2**19 float32 = 2 MiB per temporary, a few of which fit in L2 / L3.
BLOCK_ELEMENTS = 2 ** 19


class _ScaledMargins:
    """``s cos(m)`` and ``s sin(m)`` per row block for one margin spec (see module doc).

    Args:
        weight_norm (Tensor | None): ``[C]`` classifier norms (adaptive margins).
        labels (Tensor): ``[N]`` labels.
        scale (float): ``s``.
        spec (MarginSpec): the margins, ``exclude_class`` already in ``[0, C)``.
    """

    def __init__(self, weight_norm, labels, *, scale: float, spec: MarginSpec):
        self.labels, self.scale = labels, scale
        self.exclude = -1 if spec.exclude_class is None else spec.exclude_class
        self.fixed = spec.kind != 'adaptive'
        # s cos m = s - 2 s sin^2(m/2),  s sin m = sin(m/2) (2 s cos(m/2)): the factor 2 s goes
        # with the cosine only, so sin(m/2) is formed from unscaled [C] factors and is exactly 0
        # for equal norms (a_i = a_j gives the same two products)
        self.twice = 2.0 * scale
        self.none = not spec.active  # psi = cos: no margin terms at all
        if self.none:
            self.largest = 0.0
            return
        if self.fixed:
            value = spec.fixed_margin
            self.largest = value
            self.half = (math.sin(value / 2), self.twice * math.cos(value / 2))
            return
        log_norm = weight_norm.detach().to(labels.device).clamp_min(NORM_EPS).log()
        half = (spec.alpha / (2 * math.pi)) * log_norm  # a / 2
        self.half_row, self.half_col = half[labels], half
        rows_ok = labels != self.exclude
        cols_ok = torch.arange(half.shape[0], device=half.device) != self.exclude
        spread = 0.0
        if bool(rows_ok.any()) and bool(cols_ok.any()):
            spread = 2 * float(self.half_row[rows_ok].max() - half[cols_ok].min())
        self.direct = spread >= math.pi  # some margin capped at pi: sin / cos of clamp(m)
        self.largest = min(max(spread, 0.0), math.pi)
        if not self.direct:
            # rows gather the columns' values: sin / cos of one [C] tensor, so that equal
            # angles give bit-equal factors (vectorised and scalar sin may round differently)
            sin_c, cos_c = half.sin(), half.cos()
            sin_r, cos_r = sin_c[labels].unsqueeze(1), cos_c[labels].unsqueeze(1)
            self.factors = (sin_r, cos_r, sin_c.unsqueeze(0), cos_c.unsqueeze(0),
                            self.twice * sin_r, self.twice * cos_r)

    def _half_angle(self, rows: slice, like: torch.Tensor):
        """``sin(m/2)`` ``[B, C]`` before masking, and ``2 s cos(m/2)`` (tensor or float)."""
        if self.fixed:
            return torch.full_like(like, self.half[0]), self.half[1]
        if self.direct:
            half_m = self.half_row[rows].unsqueeze(1) - self.half_col.unsqueeze(0)
            half_m.clamp_(0.0, math.pi / 2)
            return torch.sin(half_m), half_m.cos_().mul_(self.twice)
        sin_r, cos_r, sin_c, cos_c, sin_r2, cos_r2 = self.factors
        sin_r, cos_r, sin_r2, cos_r2 = sin_r[rows], cos_r[rows], sin_r2[rows], cos_r2[rows]
        # sin(d/2) = sin_i cos_j - cos_i sin_j,  cos(d/2) = cos_i cos_j + sin_i sin_j;
        # relu(sin(d/2)) = sin(m/2) as |d| < pi
        # two rounded products, then a subtraction (addcmul may fuse them into one FMA, which
        # leaves the rounding error of a product where a_i = a_j instead of exactly 0)
        half_sin = torch.mul(sin_r, cos_c).sub_(torch.mul(cos_r, sin_c)).clamp_min_(0.0)
        return half_sin, torch.mul(cos_r2, cos_c).addcmul_(sin_r2, sin_c)

    def rows(self, rows: slice, like: torch.Tensor):
        """``(s cos m, s sin m)`` for ``rows``, each ``[B, C]``; ``None`` without margins."""
        if self.none:
            return None
        half_sin, half_cos = self._half_angle(rows, like)
        labels = self.labels[rows]
        half_sin.scatter_(1, labels.unsqueeze(1), 0.0)  # no margin on the label itself
        if self.exclude >= 0:
            half_sin[:, self.exclude] = 0.0
            half_sin[labels == self.exclude] = 0.0
        if isinstance(half_cos, float):
            scaled_sin = half_sin * half_cos
        else:
            scaled_sin = half_cos.mul_(half_sin)
        scaled_cos = torch.addcmul(like.new_full((), self.scale), half_sin, half_sin,
                                   value=-self.twice)
        return scaled_cos, scaled_sin


def _scaled_psi_rows(cos, terms, out, scale: float, eps: float, reflect_possible: bool,
                     clamp_hit: bool):
    """``s psi = s cos(theta + m)`` into ``out`` and ``s d psi / d cos``, one row block."""
    scaled_cos, scaled_sin = terms
    # sin(theta) = sqrt((1 - c)(1 + c)), c = cos clamped to +-(1 - eps)
    c = cos.clamp(-1.0 + eps, 1.0 - eps)
    sin_t = torch.rsub(c, 1.0).mul_(c.add_(1.0)).sqrt_()
    psi = torch.mul(cos, scaled_cos, out=out).addcmul_(sin_t, scaled_sin, value=-1.0)
    if reflect_possible:  # theta + m > pi <=> c < -cos(m): psi -> -2 - psi, d psi -> -d psi
        reflect = (cos.clamp(-1.0 + eps, 1.0 - eps).mul_(scale) < -scaled_cos).to(cos.dtype)
        psi.sub_(reflect * (2.0 * psi + 2.0 * scale))
    # d psi / d cos = cos(m) + cos / sin(theta) * sin(m); no gradient reaches sin(theta)
    # through the clamp beyond its bounds
    ratio = torch.div(cos, sin_t, out=sin_t)
    if clamp_hit:
        ratio.mul_(((cos >= -1.0 + eps) & (cos <= 1.0 - eps)).to(cos.dtype))
    dpsi = scaled_cos.addcmul_(ratio, scaled_sin)
    if reflect_possible:
        dpsi.mul_(reflect.mul_(-2.0).add_(1.0))
    return psi, dpsi


def _cross_entropy_rows(logits, dpsi, labels, scale: float, need_grad: bool):
    """Per-sample cross-entropy ``[B]`` of ``logits`` ``[B, C]`` and the factor ``[B]`` that
    turns what ``logits`` is overwritten with (when ``need_grad``) into ``d loss / d cos``.

    ``dpsi`` is ``s d psi / d cos`` (``None``: ``psi = cos``). The factor (``1 / sum exp``, times
    ``s`` without margins) is applied in backward, where the tensor is scaled anyway.
    """
    top = logits.amax(dim=1, keepdim=True)
    picked = logits.gather(1, labels.unsqueeze(1))
    prob = logits.sub_(top).exp_()
    total = prob.sum(dim=1, keepdim=True)
    log_total = total.log()
    loss = (log_total + top - picked).squeeze(1)
    if not need_grad:
        return loss, None
    # (softmax - onehot) * s d psi = (exp(x - max) * s d psi) * factor, factor = 1 / sum
    factor = total.reciprocal_()
    if dpsi is None:
        factor.mul_(scale)
    else:
        prob.mul_(dpsi)
    # label column (d psi = 1, m = 0 there): softmax - 1 cancels, so round it the way
    # log_softmax does, exp((x - max) - log(sum)) - 1, not prob / sum - 1
    label_grad = ((picked - top) - log_total).exp_().sub_(1.0).mul_(scale).div_(factor)
    prob.scatter_(1, labels.unsqueeze(1), label_grad)
    return loss, factor.squeeze(1)


def eager_cross_entropy(cos: torch.Tensor, weight_norm: torch.Tensor | None,
                        labels: torch.Tensor, *, scale: float, spec: MarginSpec,
                        need_grad: bool):
    """Per-sample C2AM cross-entropy ``[N]`` from validated float32/float64 cosines
    ``[N, C]``; with ``need_grad`` also ``(grad, factor)``, ``d loss / d cos =
    grad * factor[:, None]`` (``[N, C]``, ``[N]``), else ``None``.

    ``weight_norm`` ``[C]`` is read in the math dtype; ``spec.exclude_class`` must already be
    an index in ``[0, C)`` (:meth:`MarginSpec.for_classes`).
    """
    num_samples, num_classes = cos.shape
    eps = COS_EPS[cos.dtype]
    if weight_norm is not None:
        weight_norm = weight_norm.to(cos.dtype)
    margins = _ScaledMargins(weight_norm, labels, scale=scale, spec=spec)
    # theta + m > pi needs cos < -cos(m) for some m <= largest (slack: rounding of cos(m))
    reflect_below = 1e-6 - math.cos(margins.largest)
    out = torch.empty_like(cos)
    loss, factor = cos.new_empty(num_samples), cos.new_empty(num_samples)
    block = num_samples if cos.device.type != 'cpu' else max(1, BLOCK_ELEMENTS // num_classes)
    for start in range(0, num_samples, block):
        rows = slice(start, start + block)
        block_cos = cos[rows]
        terms = margins.rows(rows, block_cos)
        if terms is None:
            logits, dpsi = torch.mul(block_cos, scale, out=out[rows]), None
        else:
            low, high = (float(v) for v in torch.aminmax(block_cos))
            logits, dpsi = _scaled_psi_rows(block_cos, terms, out[rows], scale, eps,
                                            reflect_possible=low < reflect_below,
                                            clamp_hit=low < -1.0 + eps or high > 1.0 - eps)
        loss[rows], block_factor = _cross_entropy_rows(logits, dpsi, labels[rows], scale,
                                                       need_grad)
        if need_grad:
            factor[rows] = block_factor
    return loss, (out, factor) if need_grad else None


class C2AMCrossEntropyEager(torch.autograd.Function):
    """Autograd wrapper of :func:`eager_cross_entropy`: saves only ``d loss / d cos`` (up to a
    per-sample factor); backward scales it by the factor times the incoming gradient."""

    @staticmethod
    def forward(ctx, cos, weight_norm, labels, scale, spec):
        loss, grad = eager_cross_entropy(cos, weight_norm, labels, scale=scale, spec=spec,
                                         need_grad=ctx.needs_input_grad[0])
        ctx.save_for_backward(*(grad or (None, None)))
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        check_first_order()
        grad, factor = ctx.saved_tensors
        return grad * (grad_loss * factor).unsqueeze(1), None, None, None, None
