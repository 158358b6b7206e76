"""The memory-lean fused path equals the reference path (loss and gradients)."""
import math

import pytest
import torch

from projects.c2am.c2am import C2AMLoss, c2am_loss, c2am_loss_from_cosine

CASES = [
    dict(alpha=0.5),
    dict(alpha=3.0),  # large margins: many theta + m > pi
    dict(margin='fixed', fixed_margin=0.3),
    dict(margin='fixed', fixed_margin=math.pi),
    dict(margin='none'),
    dict(alpha=0.0),
    dict(alpha=0.5, exclude_class=-1),
    dict(alpha=0.5, sample_weight='w', reduction='mean', avg_factor=7.0),
    dict(alpha=0.5, reduction='none'),
    dict(alpha=0.5, reduction='sum'),
]


def _data(dtype, seed=0, n=40, c=9, d=6, zero_row=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=dtype)
    w = torch.randn(c, d, generator=g, dtype=dtype) * torch.logspace(-1, 1, c, dtype=dtype)[:, None]
    x[0] = w[3] * 2  # exact cos = 1 with a non-label class
    x[1] = -w[5]  # exact cos = -1
    x[2] = 0  # zero feature
    if zero_row:  # a zero classifier row: log-norm -27.6, so margins reach pi
        w[7] = 0
    y = torch.randint(0, c, (n,), generator=g)
    y[0], y[1] = 1, 2
    sw = torch.rand(n, generator=g, dtype=dtype)
    return x, w, y, sw


def _loss_and_grads(x, w, y, implementation, kwargs):
    x = x.clone().requires_grad_()
    w = w.clone().requires_grad_()
    loss = c2am_loss(x, w, y, implementation=implementation, **kwargs)
    loss.sum().backward()
    return loss.detach(), x.grad, w.grad


@pytest.mark.parametrize('zero_row', [True, False])
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize('case', range(len(CASES)))
def test_fused_equals_reference(dtype, case, zero_row):
    x, w, y, sw = _data(dtype, seed=case, zero_row=zero_row)
    kwargs = dict(CASES[case])
    if kwargs.get('sample_weight') == 'w':
        kwargs['sample_weight'] = sw
    ref = _loss_and_grads(x, w, y, 'reference', kwargs)
    got = _loss_and_grads(x, w, y, 'fused', kwargs)
    rel = 1e-5 if dtype == torch.float32 else 1e-10
    for a, b in zip(got, ref):
        assert torch.isfinite(a).all()
        # relative to the tensor's scale (at least 1): sums round differently per element
        torch.testing.assert_close(a, b, rtol=rel, atol=rel * max(1.0, float(b.abs().max())))


@pytest.mark.parametrize('case', [0, 1, 2, 6])
def test_eager_row_blocks_equal_one_block(monkeypatch, case):
    """The CPU path in blocks of 3 rows (13 blocks, the last one short) = the reference."""
    from projects.c2am.c2am import eager
    monkeypatch.setattr(eager, 'BLOCK_ELEMENTS', 27)  # 27 // 9 classes = 3 rows per block
    x, w, y, _ = _data(torch.float64, seed=case, zero_row=False)
    ref = _loss_and_grads(x, w, y, 'reference', CASES[case])
    got = _loss_and_grads(x, w, y, 'fused', CASES[case])
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10 * max(1.0, float(b.abs().max())))


def test_eager_paths_are_taken():
    """The test data reach every branch of the CPU path: rank-2 margins, margins capped at
    pi (evaluated directly), theta + m > pi, cosines at the clamp bounds."""
    from projects.c2am.c2am import cosine_similarity_matrix
    from projects.c2am.c2am.eager import _ScaledMargins
    x, w, y, _ = _data(torch.float64, zero_row=False)
    from projects.c2am.c2am import MarginSpec
    norms = w.norm(dim=1)
    assert not _ScaledMargins(norms, y, scale=30.0, spec=MarginSpec(alpha=0.5)).direct
    capped = _ScaledMargins(norms, y, scale=30.0, spec=MarginSpec(alpha=3.0))
    assert capped.direct and capped.largest == pytest.approx(math.pi)
    cos = cosine_similarity_matrix(x, w)
    assert float(cos.max()) > 1 - 1e-12 and float(cos.min()) < -1 + 1e-12


def test_fused_from_cosine_gradient_at_clamp_bounds():
    # cosines exactly at +-1: the clamp inside sin(theta) passes no gradient beyond its
    # bound, the linear term keeps cos(m)
    cos = torch.tensor([[1.0, -1.0, 0.3], [0.2, 1.0, -1.0]], dtype=torch.float64)
    norms = torch.tensor([5.0, 1.0, 0.2], dtype=torch.float64)
    y = torch.tensor([0, 0])
    grads = []
    for impl in ('reference', 'fused'):
        c = cos.clone().requires_grad_()
        c2am_loss_from_cosine(c, norms, y, alpha=1.0, implementation=impl).backward()
        grads.append(c.grad)
    torch.testing.assert_close(grads[0], grads[1])
    assert grads[0].abs().sum() > 0


def test_fused_bf16_autocast_and_module():
    torch.manual_seed(0)
    x, w, y, _ = _data(torch.float32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        feats = torch.nn.functional.linear(x, torch.eye(6))
        a = c2am_loss(feats, w, y, implementation='fused')
        b = c2am_loss(feats, w, y, implementation='reference')
    assert a.dtype == torch.float32
    assert a.item() == pytest.approx(b.item(), rel=1e-5)
    with pytest.raises(ValueError, match='implementation'):
        C2AMLoss(implementation='triton')


@pytest.mark.slow
def test_compiled_kernels_equal_reference(monkeypatch):
    """The torch.compile'd kernels (CUDA's default path) give the reference numbers; on CPU."""
    from projects.c2am.c2am import compiled as fused
    monkeypatch.setenv('C2AM_COMPILE', '1')
    monkeypatch.setattr(fused, '_COMPILED', {})
    for n, case in ((40, dict(alpha=0.5)), (23, dict(alpha=3.0, exclude_class=-1))):
        x, w, y, _ = _data(torch.float32, seed=n, n=n)  # two sizes: one dynamic-shape graph
        ref = _loss_and_grads(x, w, y, 'reference', case)
        got = _loss_and_grads(x, w, y, 'fused', case)
        for a, b in zip(got, ref):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * max(1.0, float(b.abs().max())))
    assert fused._COMPILED['cpu'][0] is not fused._forward_math  # it really compiled


def test_compile_switch_is_validated(monkeypatch):
    from projects.c2am.c2am.compiled import compile_enabled
    monkeypatch.setenv('C2AM_COMPILE', 'yes')
    with pytest.raises(ValueError, match='C2AM_COMPILE'):
        compile_enabled(torch.device('cpu'))
    monkeypatch.setenv('C2AM_COMPILE', 'auto')
    assert not compile_enabled(torch.device('cpu'))


def test_double_backward_raises_on_fused_and_works_on_reference():
    _, w, y, _ = _data(torch.float64, zero_row=False)
    xr = torch.randn(len(y), w.shape[1], dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match='no double backward'):  # not a silently wrong one
        torch.autograd.grad(c2am_loss(xr, w, y, implementation='fused'), xr, create_graph=True)
    (gx,) = torch.autograd.grad(c2am_loss(xr, w, y, implementation='reference'), xr,
                                create_graph=True)
    gx.sum().backward()
    assert torch.isfinite(xr.grad).all() and xr.grad.abs().sum() > 0
