"""Numerical edge cases and input validation of the loss core."""
import math

import pytest
import torch

from projects.c2am.c2am import (
    C2AMLoss,
    c2am_logits,
    c2am_logits_from_cosine,
    c2am_loss,
    c2am_margins,
)


def _finite_loss_and_grads(x, w, y, **kwargs):
    x = x.clone().requires_grad_()
    w = w.clone().requires_grad_()
    loss = c2am_loss(x, w, y, **kwargs)
    loss.backward()
    assert torch.isfinite(loss).all(), loss
    assert torch.isfinite(x.grad).all() and torch.isfinite(w.grad).all()
    return loss, x.grad, w.grad


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_exact_parallel_and_antiparallel_features(dtype):
    w = torch.tensor([[3.0, 0.0], [0.0, 1.0], [-0.2, 0.0]], dtype=dtype)
    # x parallel to W_0 (cos = 1) and antiparallel to W_2 (cos = -1, theta + m > pi)
    x = torch.tensor([[2.0, 0.0], [-1.0, 0.0], [0.0, 5.0]], dtype=dtype)
    y = torch.tensor([1, 0, 2])
    for alpha in (0.5, 5.0):
        _finite_loss_and_grads(x, w, y, alpha=alpha)
    _finite_loss_and_grads(x, w, y, margin='fixed', fixed_margin=math.pi)


def test_zero_norm_features_and_weights():
    w = torch.tensor([[1.0, 2.0], [0.0, 0.0], [0.5, -1.0]])
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, -1.0]])
    y = torch.tensor([0, 1, 2])
    _finite_loss_and_grads(x, w, y)
    m = c2am_margins(w.norm(dim=1), y, alpha=0.5)
    assert torch.isfinite(m).all() and m.max() <= math.pi


def test_empty_batch_gives_zero_that_backpropagates():
    x = torch.zeros(0, 4, requires_grad=True)
    w = torch.randn(3, 4, requires_grad=True)
    loss = c2am_loss(x, w, torch.zeros(0, dtype=torch.long))
    assert loss.item() == 0.0
    loss.backward()
    assert w.grad is not None and torch.all(w.grad == 0)
    assert c2am_loss(x, w, torch.zeros(0, dtype=torch.long), reduction='none').shape == (0,)


def test_bf16_autocast_math_stays_float32():
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 8)
    x = torch.randn(16, 8)
    w = torch.randn(5, 8, requires_grad=True)
    y = torch.randint(0, 5, (16,))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        feats = lin(x)
        assert feats.dtype == torch.bfloat16
        logits = c2am_logits(feats, w, y)
        loss = c2am_loss(feats, w, y)
    assert logits.dtype == torch.float32 and loss.dtype == torch.float32
    loss.backward()
    assert torch.isfinite(w.grad).all() and torch.isfinite(lin.weight.grad).all()
    # only the matrix product follows autocast: the loss is the float32 one up to bf16 rounding
    ref = c2am_loss(feats.float().detach(), w.detach(), y)
    assert loss.item() == pytest.approx(ref.item(), rel=2e-2)
    # the margin math itself runs in float32 on bf16 cosines, exactly as on their float32 copy
    cos16 = torch.rand(16, 5).mul(2).sub(1).to(torch.bfloat16)
    norms = torch.linspace(0.5, 3, 5)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = c2am_logits_from_cosine(cos16, norms, y)
    assert got.dtype == torch.float32
    assert torch.equal(got, c2am_logits_from_cosine(cos16.float(), norms, y))


def test_half_precision_cls_score_with_cos_near_one():
    # 1 - 1e-7 rounds to 1 in fp16: the module must upcast before clamping
    score = torch.full((2, 3), 30.0, dtype=torch.float16, requires_grad=True)
    loss = C2AMLoss()(score, torch.tensor([0, 2]), weight_norm=torch.tensor([3.0, 1.0, 0.5]))
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert torch.isfinite(score.grad.float()).all()


@pytest.mark.parametrize('labels, match', [
    (torch.tensor([0.0, 1.0]), 'integer dtype'),
    (torch.tensor([0, 3]), r'\[0, 2\]'),
    (torch.tensor([-1, 0]), r'\[0, 2\]'),
    (torch.tensor([[0, 1]]), 'shape'),
    (torch.tensor([0, 1, 2]), 'shape'),
    ([0, 1], 'torch.Tensor'),
])
def test_bad_labels_raise_value_error(labels, match):
    x, w = torch.randn(2, 4), torch.randn(3, 4)
    with pytest.raises(ValueError, match=match):
        c2am_loss(x, w, labels)


@pytest.mark.parametrize('implementation', ['reference', 'fused'])
@pytest.mark.parametrize('dtype', [torch.int32, torch.int16, torch.uint8])
def test_any_integer_label_dtype_gives_the_int64_result(dtype, implementation):
    # N == C: uint8 labels used as an index would be read as a boolean mask
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    y = torch.tensor([2, 0, 1])
    want = _finite_loss_and_grads(x, w, y, implementation=implementation)
    got = _finite_loss_and_grads(x, w, y.to(dtype), implementation=implementation)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(c2am_margins(w.norm(dim=1), y.to(dtype), alpha=0.5),
                               c2am_margins(w.norm(dim=1), y, alpha=0.5))


def test_shape_and_argument_errors():
    with pytest.raises(ValueError, match='same D'):
        c2am_loss(torch.randn(2, 4), torch.randn(3, 5), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match='weight_norm'):
        C2AMLoss()(torch.randn(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match='fixed_margin'):
        c2am_loss(torch.randn(2, 4), torch.randn(3, 4), torch.tensor([0, 1]), margin='fixed',
                  fixed_margin=4.0)
