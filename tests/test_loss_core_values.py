"""Values of the loss core against hand computation and independent formulas."""
import math

import pytest
import torch
import torch.nn.functional as F

from projects.c2am.c2am import (
    C2AMLoss,
    CosineClassifier,
    c2am_logits,
    c2am_logits_from_cosine,
    c2am_loss,
    c2am_loss_from_cosine,
    c2am_margins,
)

S = 30.0


def reference_logits(features, weight, labels, scale, margins):
    """Eq. 6 written with acos/cos in float64, scalar by scalar (independent of the core).

    Beyond theta + m > pi it uses the documented monotone extension -2 - cos(theta + m).
    """
    n, c = features.shape[0], weight.shape[0]
    out = torch.empty(n, c, dtype=torch.float64)
    for a in range(n):
        for j in range(c):
            x, w = features[a].double(), weight[j].double()
            cos = float(x @ w / (x.norm() * w.norm()))
            theta = math.acos(max(-1.0, min(1.0, cos)))
            phi = theta + float(margins[a, j])
            out[a, j] = scale * (math.cos(phi) if phi <= math.pi else -2.0 - math.cos(phi))
    return out


def reference_margins(weight, labels, alpha):
    norms = weight.double().norm(dim=1)
    m = torch.zeros(len(labels), weight.shape[0], dtype=torch.float64)
    for a, i in enumerate(labels.tolist()):
        for j in range(weight.shape[0]):
            if j != i:
                m[a, j] = max(0.0, alpha / math.pi * math.log(norms[i] / norms[j]))
    return m


@pytest.fixture
def three_class():
    # ||W_0|| = 2, ||W_1|| = 1, ||W_2|| = 0.5
    weight = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.5 / math.sqrt(2), 0.5 / math.sqrt(2)]],
                          dtype=torch.float64)
    features = torch.tensor([[1.0, 0.2], [0.3, 1.0], [1.0, 1.1]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 2])
    return features, weight, labels


def test_margins_hand_computed(three_class):
    _, weight, labels = three_class
    m = c2am_margins(weight.norm(dim=1), labels, alpha=0.5)
    k = 0.5 / math.pi
    expected = torch.tensor([[0.0, k * math.log(2.0), k * math.log(4.0)],
                             [0.0, 0.0, k * math.log(2.0)],
                             [0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(m, expected)
    # literal values: 0.5/pi*log 2 = 0.110318..., 0.5/pi*log 4 = 0.220636...
    assert m[0, 1].item() == pytest.approx(0.1103178, abs=1e-6)
    assert m[0, 2].item() == pytest.approx(0.2206356, abs=1e-6)


def test_margins_zero_for_equal_and_smaller_norms():
    norms = torch.tensor([1.0, 1.0, 3.0])
    m = c2am_margins(norms, torch.tensor([0, 1, 2, 0]), alpha=0.7)
    assert m[0, 1] == 0 and m[1, 0] == 0  # equal norms
    assert m[0, 2] == 0 and m[3, 2] == 0  # ||W_i|| < ||W_j||
    assert m[2, 0] > 0 and m[2, 1] > 0
    assert torch.all(m.diagonal()[:3] == 0)


def test_margins_exclude_class():
    norms = torch.tensor([4.0, 1.0, 9.0])
    m = c2am_margins(norms, torch.tensor([0, 2, 1]), alpha=0.5, exclude_class=-1)
    assert torch.all(m[:, 2] == 0)  # no margin towards the excluded column
    assert torch.all(m[1] == 0)  # nor for samples of the excluded class
    assert m[0, 1] > 0


def test_logits_and_loss_hand_computed(three_class):
    features, weight, labels = three_class
    logits = c2am_logits(features, weight, labels, scale=S, alpha=0.5)
    expected = reference_logits(features, weight, labels, S,
                                reference_margins(weight, labels, 0.5))
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-9)
    # label columns carry no margin: s * cos(theta_i)
    cos00 = 1.0 / math.sqrt(1.0 + 0.04)
    assert logits[0, 0].item() == pytest.approx(S * cos00, abs=1e-9)
    loss = c2am_loss(features, weight, labels, scale=S, alpha=0.5)
    ref = -torch.log_softmax(expected, dim=1)[torch.arange(3), labels].mean()
    assert loss.item() == pytest.approx(ref.item(), abs=1e-9)


def test_alpha_zero_is_cosine_softmax_ce():
    torch.manual_seed(0)
    x, w = torch.randn(7, 5), torch.randn(4, 5) * torch.rand(4, 1) * 5
    y = torch.randint(0, 4, (7,))
    cos = F.cosine_similarity(x.unsqueeze(1), w.unsqueeze(0), dim=2)
    expected = F.cross_entropy(S * cos, y)
    for kwargs in (dict(alpha=0.0), dict(margin='none', alpha=0.5)):
        assert c2am_loss(x, w, y, scale=S, **kwargs).item() == pytest.approx(expected.item(),
                                                                               rel=1e-5)


def test_fixed_margin_is_constant_margin():
    torch.manual_seed(1)
    x, w = torch.randn(6, 3).double(), torch.randn(5, 3).double()
    y = torch.randint(0, 5, (6,))
    m = torch.full((6, 5), 0.2, dtype=torch.float64)
    m[torch.arange(6), y] = 0
    logits = c2am_logits(x, w, y, scale=S, margin='fixed', fixed_margin=0.2)
    torch.testing.assert_close(logits, reference_logits(x, w, y, S, m), rtol=0, atol=1e-9)


def test_zero_margin_columns_are_exactly_scaled_cosine():
    torch.manual_seed(2)
    cos = (torch.rand(8, 6) * 2 - 1).requires_grad_()
    norms = torch.ones(6)  # equal norms: every margin is 0
    y = torch.randint(0, 6, (8,))
    logits = c2am_logits_from_cosine(cos, norms, y, scale=S, alpha=0.5)
    assert torch.equal(logits, S * cos)
    logits.sum().backward()
    assert torch.equal(cos.grad, torch.full_like(cos, S))


def test_from_cosine_matches_feature_form():
    torch.manual_seed(3)
    x, w = torch.randn(9, 16), torch.randn(5, 16) * torch.linspace(0.2, 3, 5).unsqueeze(1)
    y = torch.randint(0, 5, (9,))
    cos = F.normalize(x, dim=1) @ F.normalize(w, dim=1).t()
    a = c2am_loss(x, w, y)
    b = c2am_loss_from_cosine(cos, w.norm(dim=1), y)
    assert a.item() == pytest.approx(b.item(), rel=1e-6)


def test_reductions_and_avg_factor_follow_mmdet():
    torch.manual_seed(4)
    x, w = torch.randn(5, 4), torch.randn(3, 4)
    y = torch.randint(0, 3, (5,))
    sw = torch.tensor([1.0, 0.0, 2.0, 1.0, 0.5])
    per = c2am_loss(x, w, y, reduction='none')
    assert per.shape == (5,)
    assert c2am_loss(x, w, y, reduction='sum').item() == pytest.approx(per.sum().item(), rel=1e-6)
    weighted = c2am_loss(x, w, y, sample_weight=sw, reduction='mean', avg_factor=3.0)
    expected = (per * sw).sum() / (3.0 + torch.finfo(torch.float32).eps)
    assert weighted.item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match='avg_factor'):
        c2am_loss(x, w, y, reduction='sum', avg_factor=2.0)
    with pytest.raises(ValueError, match='reduction'):
        c2am_loss(x, w, y, reduction='avg')


def test_module_wrappers_match_functional():
    torch.manual_seed(5)
    clf = CosineClassifier(8, 4, scale=S)
    with torch.no_grad():
        clf.weight.mul_(torch.tensor([[1.0], [3.0], [0.5], [2.0]]))
    x, y = torch.randn(6, 8), torch.randint(0, 4, (6,))
    assert list(clf.state_dict()) == ['weight']  # bias-free
    score = clf(x)
    cos = F.normalize(x, dim=1) @ F.normalize(clf.weight, dim=1).t()
    torch.testing.assert_close(score, S * cos)
    loss_fn = C2AMLoss(scale=S, alpha=0.5, loss_weight=2.0)
    got = loss_fn(score, y, weight_norm=clf.weight_norm())
    expected = 2.0 * c2am_loss(x, clf.weight, y, scale=S, alpha=0.5)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    # background handling: the last column takes no part when background_margin=False
    no_bg = C2AMLoss(scale=S, background_margin=False)(score, y, weight_norm=clf.weight_norm(),
                                                        background_index=3)
    ref = c2am_loss(x, clf.weight, y, exclude_class=3)
    assert no_bg.item() == pytest.approx(ref.item(), rel=1e-5)
    assert no_bg.item() != pytest.approx(got.item() / 2, rel=1e-3)


def test_scale_must_match_sign_checks():
    with pytest.raises(ValueError, match='scale'):
        C2AMLoss(scale=0)
    with pytest.raises(ValueError, match='alpha'):
        C2AMLoss(alpha=-0.1)
    with pytest.raises(ValueError, match='margin'):
        C2AMLoss(margin='arc')
