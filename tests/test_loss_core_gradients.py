"""Gradients (gradcheck), detached margins, and the binary decision boundary of Sec. 3.2."""
import math

import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from projects.c2am.c2am import (
    angular_margin_cos,
    c2am_logits,
    c2am_loss,
    c2am_loss_from_cosine,
    c2am_margins,
    cosine_similarity_matrix,
)


def _inputs(seed, n=6, c=4, d=5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    scales = torch.linspace(0.3, 4.0, c, dtype=torch.float64).unsqueeze(1)
    w = (torch.randn(c, d, generator=g, dtype=torch.float64) * scales).requires_grad_()
    y = torch.randint(0, c, (n,), generator=g)
    return x, w, y


def test_gradcheck_features_and_weights_adaptive():
    for seed in range(3):
        x, w, y = _inputs(seed)
        w_fixed, norms = w.detach(), w.detach().norm(dim=1)

        def loss_of_features(a, w_fixed=w_fixed, y=y):
            return c2am_loss(a, w_fixed, y, alpha=0.7)

        def loss_with_frozen_margins(a, b, norms=norms, y=y):
            return c2am_loss_from_cosine(cosine_similarity_matrix(a, b), norms, y, alpha=0.7)

        # features: margins do not depend on x, so the whole loss is checked
        assert torch.autograd.gradcheck(loss_of_features, (x,))
        # weights: the margins read DETACHED norms, so finite differences must hold them fixed
        assert torch.autograd.gradcheck(loss_with_frozen_margins, (x, w))


def test_gradcheck_fixed_margin_and_reflection_region():
    # a large fixed margin puts many (theta + m) beyond pi: the extension must be smooth there
    x, w, y = _inputs(7)
    assert torch.autograd.gradcheck(
        lambda a, b: c2am_loss(a, b, y, margin='fixed', fixed_margin=2.5, reduction='sum'),
        (x, w))


def test_no_gradient_through_margins():
    x, w, y = _inputs(11)
    c2am_loss(x, w, y, alpha=0.5).backward()
    got = w.grad.clone()
    # Same loss with the margins frozen as constants computed beforehand.
    margins = c2am_margins(w.detach().norm(dim=1), y, alpha=0.5)
    w2 = w.detach().clone().requires_grad_()
    cos = torch.nn.functional.normalize(x.detach(), dim=1) @ \
        torch.nn.functional.normalize(w2, dim=1).t()
    logits = 30.0 * angular_margin_cos(cos, margins)
    torch.nn.functional.cross_entropy(logits, y).backward()
    torch.testing.assert_close(got, w2.grad)
    assert not margins.requires_grad


def test_extension_is_monotone_and_continuous():
    theta = torch.linspace(0, math.pi, 20001, dtype=torch.float64)
    for m in (0.05, 0.5, 1.5, 3.0, math.pi):
        psi = angular_margin_cos(torch.cos(theta), torch.full_like(theta, m))
        assert torch.all(psi[1:] <= psi[:-1]), m  # non-increasing in theta
        interior = (theta > 0.01) & (theta < math.pi - 0.01)
        p = psi[interior]
        assert torch.all(p[1:] < p[:-1]), m  # strictly decreasing off the clamped ends
        assert (psi[1:] - psi[:-1]).abs().max() < 1e-3  # no jump (continuous)
        naive = torch.cos(theta + m)
        inside = theta + m <= math.pi - 1e-3
        torch.testing.assert_close(psi[inside], naive[inside], atol=2e-6, rtol=0)


def _two_class_logits(t, ratio, alpha, feature_angle):
    w = torch.tensor([[ratio, 0.0], [math.cos(t), math.sin(t)]], dtype=torch.float64)
    x = torch.tensor([[math.cos(feature_angle), math.sin(feature_angle)]], dtype=torch.float64)
    return c2am_logits(x, w, torch.tensor([0]), scale=30.0, alpha=alpha)[0]


@settings(max_examples=200, deadline=None)
@given(t=st.floats(0.2, 2.8), ratio=st.floats(1.0, 100.0), alpha=st.floats(0.0, 1.0))
def test_binary_decision_boundary_is_at_half_of_t_plus_m(t, ratio, alpha):
    """||W_1|| > ||W_2||, angle t: class-1 samples' boundary is theta_1 = (t + m_12) / 2."""
    m = alpha / math.pi * math.log(ratio)
    assume(m < t - 0.02)
    boundary = (t + m) / 2
    at = _two_class_logits(t, ratio, alpha, boundary)
    assert abs(float(at[0] - at[1])) < 1e-6
    before = _two_class_logits(t, ratio, alpha, boundary - 0.01)
    after = _two_class_logits(t, ratio, alpha, boundary + 0.01)
    assert before[0] > before[1]  # still class 1 just inside the boundary
    assert after[0] < after[1]  # class 2 just beyond
    if m > 1e-9:  # the boundary moved past the bisector, towards the smaller-norm W_2
        assert boundary > t / 2
