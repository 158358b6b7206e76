"""Every implementation against an independent float64 formula, in a quick run.

The three paths are ``reference`` (``reference.py`` + ``F.cross_entropy``), ``eager`` (the CPU
fast path of ``eager.py``) and ``compiled`` (the kernels of ``compiled.py``, the CUDA default,
here with ``C2AM_COMPILE=1`` and ``compile_kernel`` replaced by a plain call so that their math
runs without the ~20 s compilation; ``test_loss_core_fused.py`` keeps one real compile test).

The expected numbers never come from the code under test: margins from ``math.log`` of the
norms, ``psi = cos(acos(c) + m)`` in float64 with the documented conventions (``c`` clamped to
``+-(1 - eps)`` inside the angle only, the linear term keeping the unclamped cosine, reflection
``-2 - psi`` beyond ``theta + m > pi``), cross-entropy as ``logsumexp - picked``, gradients by
float64 autograd through ``acos`` (whose derivative the fast paths never use).
"""
import math

import pytest
import torch

from projects.c2am.c2am import (
    C2AMLoss,
    c2am_logits_from_cosine,
    c2am_loss,
    c2am_loss_from_cosine,
    c2am_margins,
)
from projects.c2am.c2am import compiled as compiled_module
from projects.c2am.c2am import eager as eager_module

S = 30.0
# the clamp of cos inside sin(theta), written out per input dtype (not read from the core)
EPS = {torch.float32: 2.0 ** -23, torch.float64: 1e-12}
NORMS = [3.0, 1.0, 0.2, 8.0, 0.5, 1.5]  # C = 6; ratios up to 40 (alpha = 1: m up to 1.17)
PATHS = ('reference', 'eager', 'compiled')
CASES = {
    'none': dict(margin='none'),
    'alpha0': dict(alpha=0.0),
    'fixed': dict(margin='fixed', fixed_margin=0.5),
    'fixed_large': dict(margin='fixed', fixed_margin=2.0),
    'adaptive': dict(alpha=1.0),
    'adaptive_capped': dict(alpha=3.0),  # 3/pi log 40 > pi: margins capped at pi
    'exclude_last': dict(alpha=1.0, exclude_class=-1),
    'exclude_first': dict(alpha=1.0, exclude_class=0),
    'fixed_exclude': dict(margin='fixed', fixed_margin=0.5, exclude_class=3),
}


class Path:
    def __init__(self, name, implementation):
        self.name, self.implementation, self.calls = name, implementation, []


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    """One implementation, made to run through the public dispatch; afterwards checks that it
    (and no other) ran."""
    p = Path(request.param, 'reference' if request.param == 'reference' else 'fused')

    def forbidden(*args, **kwargs):
        raise AssertionError(f'the {p.name} path ran another implementation')

    if p.name == 'compiled':
        monkeypatch.setenv('C2AM_COMPILE', '1')

        def fake_compile(function):
            def kernel(*args):
                p.calls.append(function.__name__)
                return function(*args)
            return kernel

        monkeypatch.setattr(compiled_module, 'compile_kernel', fake_compile)
        monkeypatch.setattr(compiled_module, '_COMPILED', {})
        monkeypatch.setattr(eager_module, 'eager_cross_entropy', forbidden)
    else:
        monkeypatch.setenv('C2AM_COMPILE', '0')
        monkeypatch.setattr(compiled_module, '_run', forbidden)
        if p.name == 'eager':
            real = eager_module.eager_cross_entropy

            def spy(*args, **kwargs):
                p.calls.append('eager')
                return real(*args, **kwargs)

            monkeypatch.setattr(eager_module, 'eager_cross_entropy', spy)
        else:
            monkeypatch.setattr(eager_module, 'eager_cross_entropy', forbidden)
    yield p
    if p.name != 'reference':
        assert p.calls, f'the {p.name} path did not run'
    if p.name == 'compiled':  # and no kernel failed (which would fall back to the eager ones)
        kernels = compiled_module._COMPILED['cpu']
        assert kernels[0] is not compiled_module._forward_math
        assert kernels[1] is not compiled_module._backward_math


# --------------------------------------------------------------------------- independent model
def expected_margins(norms, labels, num_classes, *, margin='adaptive', alpha=0.5,
                     fixed_margin=0.0, exclude_class=None):
    """Eq. 7 element by element with math.log (float64)."""
    if exclude_class is not None and exclude_class < 0:
        exclude_class += num_classes
    m = torch.zeros(len(labels), num_classes, dtype=torch.float64)
    for a, i in enumerate(labels.tolist()):
        for j in range(num_classes):
            if j == i or exclude_class in (i, j):
                continue
            if margin == 'fixed':
                m[a, j] = fixed_margin
            elif margin == 'adaptive':
                ni, nj = (max(float(norms[k]), 1e-12) for k in (i, j))
                m[a, j] = min(max(0.0, alpha / math.pi * math.log(ni / nj)), math.pi)
    return m


def expected_psi(cos64, margins, eps):
    """``cos(theta + m)`` via acos, clamp convention and reflection (float64, autograd)."""
    c = cos64.clamp(-1.0 + eps, 1.0 - eps)
    theta = torch.acos(c)
    base = torch.cos(theta + margins) + (cos64 - c) * torch.cos(margins)
    psi = torch.where(theta + margins > math.pi, -2.0 - base, base)
    return torch.where(margins > 0, psi, cos64)


def expected_loss_and_grad(cos, norms, labels, *, scale=S, upstream=None, **settings):
    """Per-sample loss ``[N]`` and ``d sum(upstream * loss) / d cos`` ``[N, C]``, float64."""
    cos64 = cos.detach().double().requires_grad_()
    m = expected_margins(norms, labels, cos.shape[1], **settings)
    logits = scale * expected_psi(cos64, m, EPS[cos.dtype])
    loss = torch.logsumexp(logits, dim=1) - logits[torch.arange(len(labels)), labels]
    weights = torch.ones_like(loss) if upstream is None else upstream.double()
    (grad,) = torch.autograd.grad((loss * weights).sum(), cos64)
    return loss.detach(), grad


def path_loss_and_grad(path, cos, norms, labels, *, upstream, **kwargs):
    c = cos.clone().requires_grad_()
    loss = c2am_loss_from_cosine(c, norms, labels, reduction='none',
                                 implementation=path.implementation, **kwargs)
    (loss * upstream).sum().backward()
    return loss.detach(), c.grad


def assert_matches(got, want, dtype):
    """Element-wise closeness; float32 paths against the float64 model."""
    assert got.dtype == dtype
    rtol, atol = (1e-4, 2e-4) if dtype == torch.float32 else (1e-9, 1e-9)
    torch.testing.assert_close(got.double(), want, rtol=rtol, atol=atol)


# --------------------------------------------------------------------------------- test data
def clamp_rows(dtype):
    """Rows ``[8, 6]`` of cosines at, just inside and just beyond ``+-(1 - eps)`` and at
    ``+-1``, with labels; in the negative rows every cosine is near -1 so that the softmax is
    spread over them (a wrong gradient at the bound is not hidden under a tiny probability)."""
    eps = EPS[dtype]
    beyond, at, inside = 1.0 - eps / 2, 1.0 - eps, 1.0 - 2 * eps  # beyond: in (1 - eps, 1)
    rows = [
        ([0.3, beyond, at, inside, 1.0, 0.5], 0),
        ([beyond, 0.2, at, inside, 1.0, -0.4], 1),
        ([beyond, at, 0.1, 0.9, inside, 1.0], 3),
        ([0.7, beyond, at, inside, 0.95, 1.0], 5),
        ([-beyond, -1.0, -at, -inside, -beyond, -at], 1),
        ([-at, -inside, -beyond, -1.0, -at, -beyond], 3),
        ([-inside, -beyond, -1.0, -at, -inside, -0.99], 2),
        ([-1.0, -at, -inside, -beyond, -1.0, -inside], 4),
    ]
    cos = torch.tensor([r for r, _ in rows], dtype=dtype)
    assert float(cos[0, 1]) not in (1.0, 1.0 - eps)  # really strictly inside eps of 1
    return cos, torch.tensor([y for _, y in rows])


def reflection_rows(dtype):
    """Hard samples: label cos -0.9, another class near -1, margins ~0.3-1.2 (not at the pi
    cap): theta + m > pi for some entries, with cosines far from the clamp bounds."""
    rows = [
        ([0.2, -0.999, -0.5, -0.9, 0.1, -0.3], 3),
        ([-0.95, 0.4, -0.2, -0.9, -0.999, 0.3], 3),
        ([-0.9, -0.999, 0.1, 0.3, -0.98, -0.6], 0),
        ([0.1, -0.5, 0.0, 0.2, -0.995, -0.9], 5),
    ]
    return (torch.tensor([r for r, _ in rows], dtype=dtype), torch.tensor([y for _, y in rows]))


def random_rows(dtype, n=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    cos = (torch.rand(n, len(NORMS), generator=g, dtype=torch.float64) * 1.96 - 0.98).to(dtype)
    labels = torch.arange(n) % len(NORMS)
    return cos, labels


def all_rows(dtype):
    parts = [random_rows(dtype), clamp_rows(dtype), reflection_rows(dtype)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def norms_of(dtype, zero=False):
    norms = torch.tensor(NORMS, dtype=dtype)
    if zero:
        norms[2] = 0.0
    return norms


def upstream_of(n, dtype):
    return torch.linspace(0.5, 2.0, n, dtype=dtype)


# --------------------------------------------------------------------------------- the tests
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('case', list(CASES))
def test_every_path_equals_the_independent_model(path, case, dtype):
    cos, labels = all_rows(dtype)
    norms = norms_of(dtype)
    up = upstream_of(len(labels), dtype)
    got = path_loss_and_grad(path, cos, norms, labels, upstream=up, **CASES[case])
    want = expected_loss_and_grad(cos, norms, labels, upstream=up, **CASES[case])
    for a, b in zip(got, want):
        assert_matches(a, b, dtype)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_clamp_neighbourhood_gradient(path, dtype):
    """At ``|cos| = 1 - eps`` the clamp passes gradient (the ``cot(theta) sin(m)`` term, ~2e3
    s sin m in float32), strictly between ``1 - eps`` and 1 and at 1 it passes none."""
    cos, labels = clamp_rows(dtype)
    norms = norms_of(dtype)
    up = torch.ones(len(labels), dtype=dtype)
    for settings in (dict(alpha=1.0), dict(margin='fixed', fixed_margin=0.4)):
        got = path_loss_and_grad(path, cos, norms, labels, upstream=up, **settings)
        want = expected_loss_and_grad(cos, norms, labels, upstream=up, **settings)
        for a, b in zip(got, want):
            assert_matches(a, b, dtype)
    # the model itself: in row 0 (label 0, fixed margin 0.4), d psi / d cos beyond the bound
    # is cos(m) alone; at the bound it adds cot(theta) sin(m), theta = acos(1 - eps)
    eps = EPS[dtype]
    m = expected_margins(None, labels, 6, margin='fixed', fixed_margin=0.4)
    c = cos.double().requires_grad_()
    (dpsi,) = torch.autograd.grad(expected_psi(c, m, eps)[0].sum(), c)
    assert dpsi[0, 1].item() == pytest.approx(math.cos(0.4), rel=1e-12)
    cot = (1 - eps) / math.sqrt((1 - (1 - eps)) * (1 + (1 - eps)))
    assert dpsi[0, 2].item() == pytest.approx(math.cos(0.4) + cot * math.sin(0.4), rel=1e-9)


def test_gradient_strictly_inside_eps_of_one_float32(path):
    """Hand numbers: float32 cos = 1 - 2**-24 (the largest float below 1) in a non-label
    column gets d loss / d cos = s cos(m) p_j: no 1/sin(theta) term (~2e3 s sin m)."""
    cos = torch.tensor([[0.0, 1.0 - 2.0 ** -24]])
    labels = torch.tensor([0])
    m = 0.3
    c = cos.clone().requires_grad_()
    loss = c2am_loss_from_cosine(c, None, labels, margin='fixed', fixed_margin=m,
                                 implementation=path.implementation)
    loss.backward()
    # psi_1 = c cos m - sin(theta_clamped) sin m with sin = sqrt(2^-23 (2 - 2^-23))
    psi1 = (1.0 - 2.0 ** -24) * math.cos(m) - math.sqrt(2.0 ** -23 * (2 - 2.0 ** -23)) * \
        math.sin(m)
    p1 = 1.0 / (1.0 + math.exp(-S * psi1))
    assert loss.item() == pytest.approx(-math.log(1.0 - p1), rel=1e-5)
    assert c.grad[0, 1].item() == pytest.approx(S * math.cos(m) * p1, rel=1e-4)
    assert c.grad[0, 0].item() == pytest.approx(-S * p1, rel=1e-4)


def test_reflection_with_moderate_margin_hand_computed(path):
    """Label cos -0.9, another class at -0.999 with m = 0.5: theta + m > pi, so its logit is
    s (-2 - cos(theta + m)), not s cos(theta + m) (which would rise again)."""
    cos = torch.tensor([[-0.9, -0.999, 0.5]], dtype=torch.float64)
    labels = torch.tensor([0])
    c = cos.clone().requires_grad_()
    loss = c2am_loss_from_cosine(c, None, labels, margin='fixed', fixed_margin=0.5,
                                 implementation=path.implementation)
    loss.backward()
    t1, t2 = math.acos(-0.999), math.acos(0.5)
    assert t1 + 0.5 > math.pi and t2 + 0.5 < math.pi
    logits = [S * -0.9, S * (-2.0 - math.cos(t1 + 0.5)), S * math.cos(t2 + 0.5)]
    top = max(logits)
    lse = top + math.log(sum(math.exp(v - top) for v in logits))
    assert loss.item() == pytest.approx(lse - logits[0], rel=1e-12)
    p = [math.exp(v - lse) for v in logits]
    # d psi / d cos = sin(theta + m) / sin(theta), negated where reflected
    d1 = -math.sin(t1 + 0.5) / math.sin(t1)
    d2 = math.sin(t2 + 0.5) / math.sin(t2)
    want = [S * (p[0] - 1.0), S * p[1] * d1, S * p[2] * d2]
    torch.testing.assert_close(c.grad[0], torch.tensor(want, dtype=torch.float64),
                               rtol=1e-9, atol=1e-12)
    assert d1 > 0  # still increasing in cos: pushing the class away still pays


@pytest.mark.parametrize('block_elements, case', [
    (12, 'adaptive'), (12, 'fixed_large'), (12, 'adaptive_capped'), (12, 'exclude_first'),
    (12, 'none'), (5, 'adaptive'),  # 5 < C: one row per block
])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_eager_row_blocks(monkeypatch, block_elements, case, dtype):
    """Blocks of 2 rows (1 when C > BLOCK_ELEMENTS): the clamp and reflection masks are only
    built in the blocks whose min / max say they are needed; every sample still equals the
    model."""
    monkeypatch.setenv('C2AM_COMPILE', '0')
    monkeypatch.setattr(eager_module, 'BLOCK_ELEMENTS', block_elements)
    sizes = []
    real = eager_module._cross_entropy_rows

    def spy(logits, *args):
        sizes.append(logits.shape[0])
        return real(logits, *args)

    monkeypatch.setattr(eager_module, '_cross_entropy_rows', spy)
    cos, labels = all_rows(dtype)  # 20 random rows, then the clamp rows, then reflection
    cos, labels = cos[1:], labels[1:]  # 31 rows: the last block is short
    norms = norms_of(dtype)
    up = upstream_of(len(labels), dtype)
    got = path_loss_and_grad(Path('eager', 'fused'), cos, norms, labels, upstream=up,
                             **CASES[case])
    want = expected_loss_and_grad(cos, norms, labels, upstream=up, **CASES[case])
    for a, b in zip(got, want):
        assert_matches(a, b, dtype)
    per_block = max(1, block_elements // len(NORMS))
    n = len(labels)
    assert sizes == [per_block] * (n // per_block) + ([n % per_block] if n % per_block else [])


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_zero_norm_row_caps_margins_at_pi(path, dtype):
    cos, labels = all_rows(dtype)
    norms = norms_of(dtype, zero=True)
    up = upstream_of(len(labels), dtype)
    for alpha in (0.3, 1.0):
        got = path_loss_and_grad(path, cos, norms, labels, upstream=up, alpha=alpha)
        want = expected_loss_and_grad(cos, norms, labels, upstream=up, alpha=alpha)
        for a, b in zip(got, want):
            assert_matches(a, b, dtype)


def test_scale_enters_once(path):
    cos, labels = all_rows(torch.float64)
    norms = norms_of(torch.float64)
    up = upstream_of(len(labels), torch.float64)
    for scale in (1.0, 7.5):
        for settings in (dict(alpha=1.0), dict(margin='none'), dict(margin='fixed',
                                                                     fixed_margin=0.5)):
            got = path_loss_and_grad(path, cos, norms, labels, upstream=up, scale=scale,
                                     **settings)
            want = expected_loss_and_grad(cos, norms, labels, upstream=up, scale=scale,
                                          **settings)
            for a, b in zip(got, want):
                assert_matches(a, b, torch.float64)


@pytest.mark.parametrize('reduction', ['mean', 'sum', 'none'])
def test_weights_and_avg_factor(path, reduction):
    """Per-sample weights (zeros among them) and mmdet's avg_factor, by hand from the model."""
    cos, labels = all_rows(torch.float64)
    norms = norms_of(torch.float64)
    n = len(labels)
    weight = torch.rand(n, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    weight[::4] = 0.0
    per, _ = expected_loss_and_grad(cos, norms, labels, alpha=1.0)
    avg_factors = [None] if reduction == 'sum' else [None, 7.0]
    for avg_factor in avg_factors:
        c = cos.clone().requires_grad_()
        got = c2am_loss_from_cosine(c, norms, labels, alpha=1.0, sample_weight=weight,
                                    reduction=reduction, avg_factor=avg_factor,
                                    implementation=path.implementation)
        weighted = per * weight
        if reduction == 'none':
            want = weighted
        elif reduction == 'sum':
            want = weighted.sum()
        elif avg_factor is None:
            want = weighted.mean()
        else:
            want = weighted.sum() / (avg_factor + 2.0 ** -23)
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
        got.sum().backward()
        assert torch.all(c.grad[weight == 0] == 0)  # ignored samples pass no gradient
        assert torch.all(c.grad[weight > 0].abs().sum(dim=1) > 0)


def test_margins_never_carry_gradient(path):
    """Norms handed over WITH a graph (a caller that forgot to detach): no gradient reaches
    the weights through the margins, on every path and in the logits."""
    g = torch.Generator().manual_seed(5)
    w = (torch.randn(6, 4, generator=g, dtype=torch.float64) *
         torch.tensor(NORMS, dtype=torch.float64)[:, None]).requires_grad_()
    cos, labels = all_rows(torch.float64)
    norms = w.norm(dim=1)
    assert norms.requires_grad
    c = cos.clone().requires_grad_()
    loss = c2am_loss_from_cosine(c, norms, labels, alpha=1.0,
                                 implementation=path.implementation)
    assert torch.autograd.grad(loss, w, allow_unused=True)[0] is None
    logits = c2am_logits_from_cosine(c, norms, labels, alpha=1.0)
    assert torch.autograd.grad(logits.sum(), w, allow_unused=True)[0] is None
    assert not c2am_margins(norms, labels, alpha=1.0).requires_grad


def test_feature_and_weight_gradients_against_the_model(path):
    """c2am_loss on features and unnormalised weights: gradients into both through the
    normalisation, margins frozen (the model's norms are constants)."""
    g = torch.Generator().manual_seed(11)
    x = torch.randn(12, 5, generator=g, dtype=torch.float64)
    w = torch.randn(6, 5, generator=g, dtype=torch.float64) * \
        torch.tensor(NORMS, dtype=torch.float64)[:, None]
    labels = torch.arange(12) % 6
    xa, wa = x.clone().requires_grad_(), w.clone().requires_grad_()
    c2am_loss(xa, wa, labels, alpha=1.0, implementation=path.implementation).backward()
    xb, wb = x.clone().requires_grad_(), w.clone().requires_grad_()
    cos = (xb / xb.norm(dim=1, keepdim=True)) @ (wb / wb.norm(dim=1, keepdim=True)).T
    m = expected_margins(w.norm(dim=1), labels, 6, alpha=1.0)
    logits = S * expected_psi(cos, m, EPS[torch.float64])
    loss = (torch.logsumexp(logits, 1) - logits[torch.arange(12), labels]).mean()
    loss.backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(wa.grad, wb.grad, rtol=1e-9, atol=1e-12)


def test_module_on_every_path(path):
    """C2AMLoss divides the classifier score by s once and excludes the background column."""
    cos, labels = all_rows(torch.float64)
    norms = norms_of(torch.float64)
    weight = torch.linspace(0.0, 1.0, len(labels), dtype=torch.float64)
    fn = C2AMLoss(scale=12.0, alpha=1.0, loss_weight=0.5, implementation=path.implementation)
    got = fn(12.0 * cos, labels, weight, avg_factor=9.0, weight_norm=norms,
             background_index=5)
    per, _ = expected_loss_and_grad(cos, norms, labels, scale=12.0, alpha=1.0,
                                    exclude_class=5)
    want = 0.5 * (per * weight).sum() / (9.0 + 2.0 ** -23)
    assert got.item() == pytest.approx(want.item(), rel=1e-9)


def test_compiled_dispatch_switch(monkeypatch):
    from projects.c2am.c2am.compiled import compile_enabled
    cpu, cuda = torch.device('cpu'), torch.device('cuda')
    for mode, want in (('auto', (False, True)), ('1', (True, True)), ('0', (False, False))):
        monkeypatch.setenv('C2AM_COMPILE', mode)
        assert (compile_enabled(cpu), compile_enabled(cuda)) == want, mode
    monkeypatch.delenv('C2AM_COMPILE')
    assert (compile_enabled(cpu), compile_enabled(cuda)) == (False, True)


def _compiled_run(monkeypatch, compile_kernel):
    monkeypatch.setenv('C2AM_COMPILE', '1')
    monkeypatch.setattr(compiled_module, 'compile_kernel', compile_kernel)
    monkeypatch.setattr(compiled_module, '_COMPILED', {})
    cos, labels = all_rows(torch.float64)
    norms = norms_of(torch.float64)
    up = upstream_of(len(labels), torch.float64)
    got = path_loss_and_grad(Path('compiled', 'fused'), cos, norms, labels, upstream=up,
                             alpha=1.0)
    want = expected_loss_and_grad(cos, norms, labels, upstream=up, alpha=1.0)
    for a, b in zip(got, want):
        assert_matches(a, b, torch.float64)


def test_compiled_falls_back_when_compilation_fails(monkeypatch):
    def broken(function):
        raise RuntimeError('no compiler')

    with pytest.warns(UserWarning, match='torch.compile unavailable'):
        _compiled_run(monkeypatch, broken)
    assert compiled_module._COMPILED['cpu'] == (compiled_module._forward_math,
                                                compiled_module._backward_math)


def test_compiled_falls_back_when_a_kernel_fails(monkeypatch):
    calls = []

    def failing(function):
        def kernel(*args):
            calls.append(function)
            raise RuntimeError('kernel failed')
        return kernel

    with pytest.warns(UserWarning, match='compiled C2AM kernel failed'):
        _compiled_run(monkeypatch, failing)
    assert calls == [compiled_module._forward_math]  # then replaced by the eager kernels for good
    assert compiled_module._COMPILED['cpu'] == (compiled_module._forward_math,
                                                compiled_module._backward_math)


@pytest.mark.parametrize('settings, label, col', [
    (dict(margin='fixed', fixed_margin=0.5), 0, 1),
    (dict(margin='fixed', fixed_margin=2.0), 0, 1),
    (dict(alpha=1.0), 3, 2),  # the largest adaptive margin: 1/pi log(8 / 0.2)
])
def test_reflection_just_beyond_the_threshold(monkeypatch, path, settings, label, col):
    """Cosines within 1e-3 of ``-cos(m)`` for the largest margin, on both sides, one row per
    eager block (its min decides whether reflection is looked for): psi and its derivative
    follow the extension exactly where it starts (float64)."""
    monkeypatch.setattr(eager_module, 'BLOCK_ELEMENTS', 6)
    m = float(expected_margins(torch.tensor(NORMS), torch.tensor([label]), 6,
                               **settings)[0, col])
    rows = []
    for delta in (-1e-3, -1e-4, -1e-5, -5e-7, 5e-7, 1e-5, 1e-4, 1e-3):
        # the other cosines just above the threshold and s = 2: the softmax stays spread
        row = [-math.cos(m) + 0.05 + 0.01 * j for j in range(6)]
        row[col] = -math.cos(m) + delta
        rows.append(row)
    cos = torch.tensor(rows, dtype=torch.float64)
    labels = torch.full((len(rows),), label)
    norms = norms_of(torch.float64)
    up = upstream_of(len(rows), torch.float64)
    got = path_loss_and_grad(path, cos, norms, labels, upstream=up, scale=2.0, **settings)
    want = expected_loss_and_grad(cos, norms, labels, upstream=up, scale=2.0, **settings)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-12)


def test_zero_margins_are_exact_on_every_path(path):
    """Equal norms (every adaptive margin 0) give exactly the plain cosine-softmax loss and
    gradient, bit for bit, for norms whose log does not round to a clean angle. The eager
    path's margins of equal norms are exactly zero too (its loss is bit for bit the plain one);
    only its gradient is scaled in another order than without margins (one rounding)."""
    cos, labels = all_rows(torch.float32)
    up = upstream_of(len(labels), torch.float32)
    plain = path_loss_and_grad(path, cos, None, labels, upstream=up, margin='none')
    for value in (0.37, 1.7, 5.3, 123.4):
        norms = torch.full((6,), value)
        got = path_loss_and_grad(path, cos, norms, labels, upstream=up, alpha=0.9)
        for a, b in zip(got, plain):
            if path.name == 'eager' and a is got[1]:
                torch.testing.assert_close(a, b, rtol=3e-7, atol=1e-9)
            else:
                assert torch.equal(a, b), value


def test_compile_kernel_asks_for_dynamic_shapes(monkeypatch):
    """torch.compile is lazy: record what compile_kernel asks of it."""
    asked = []
    monkeypatch.setattr(torch, 'compile', lambda fn, **kw: asked.append((fn, kw)) or fn)
    assert compiled_module.compile_kernel(compiled_module._psi) is compiled_module._psi
    assert asked == [(compiled_module._psi, dict(dynamic=True))]


def test_compiled_kernels_stay_on_the_input_device():
    """The kernels build their index tensors on the device of their inputs (meta tensors
    here: shapes only, a tensor created on the CPU would not mix with them)."""
    n, c = 5, 6
    cos = torch.empty(n, c, device='meta')
    log_norm = torch.empty(c, device='meta')
    labels = torch.empty(n, dtype=torch.long, device='meta')
    for adaptive in (True, False):
        args = (30.0, 0.5, 0.3, adaptive, 2, 2.0 ** -23)
        loss, lse = compiled_module._forward_math(cos, log_norm, labels, *args)
        assert loss.device.type == 'meta' and loss.shape == (n,) and lse.shape == (n,)
        grad = compiled_module._backward_math(torch.empty(n, device='meta'), cos, log_norm,
                                              labels, lse, *args)
        assert grad.device.type == 'meta' and grad.shape == (n, c)


@pytest.mark.parametrize('cos_dtype, norm_dtype', [(torch.float64, torch.float32),
                                                   (torch.float32, torch.float64),
                                                   (torch.float32, torch.float16)])
def test_norms_of_another_dtype(path, cos_dtype, norm_dtype):
    """The margins are computed in the cosines' math dtype whatever the norms' dtype (float64
    cosines keep float64 margins from float32 norms)."""
    cos, labels = all_rows(cos_dtype)
    norms = norms_of(norm_dtype)
    up = upstream_of(len(labels), cos_dtype)
    for settings in (dict(alpha=1.0), dict(alpha=3.0)):
        got = path_loss_and_grad(path, cos, norms, labels, upstream=up, **settings)
        want = expected_loss_and_grad(cos, norms.double(), labels, upstream=up, **settings)
        for a, b in zip(got, want):
            assert_matches(a, b, cos_dtype)


def test_fixed_margin_counts_only_for_margin_fixed(path):
    """``fixed_margin`` is read only with ``margin='fixed'``; ``margin='fixed'`` without it
    (default 0) is the plain cosine classifier."""
    cos, labels = all_rows(torch.float64)
    norms = norms_of(torch.float64)
    up = upstream_of(len(labels), torch.float64)
    plain = expected_loss_and_grad(cos, norms, labels, upstream=up, margin='none')
    adaptive = expected_loss_and_grad(cos, norms, labels, upstream=up, alpha=1.0)
    for settings, want in ((dict(margin='none', fixed_margin=0.5), plain),
                           (dict(alpha=0.0, fixed_margin=0.5), plain),
                           (dict(margin='fixed'), plain),
                           (dict(alpha=1.0, fixed_margin=0.5), adaptive)):
        got = path_loss_and_grad(path, cos, norms, labels, upstream=up, **settings)
        for a, b in zip(got, want):
            assert_matches(a, b, torch.float64)
    x = torch.randn(7, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    w = torch.randn(6, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    y = torch.arange(7) % 6
    assert c2am_loss(x, w, y, margin='fixed', implementation=path.implementation).item() == \
        pytest.approx(c2am_loss(x, w, y, margin='none', implementation='reference').item(),
                      rel=1e-12)
    assert torch.equal(c2am_logits_from_cosine(cos, None, labels, margin='fixed'), S * cos)
    from projects.c2am.c2am import c2am_logits, cosine_similarity_matrix
    assert torch.equal(c2am_logits(x, w, y, margin='fixed'), S * cosine_similarity_matrix(x, w))


def test_reference_helpers_stay_on_the_input_device():
    from projects.c2am.c2am import MarginSpec, angular_margin_cos
    from projects.c2am.c2am.reference import margin_matrix
    labels = torch.empty(5, dtype=torch.long, device='meta')
    for spec in (MarginSpec('fixed', fixed_margin=0.3, exclude_class=2), MarginSpec(alpha=1.0)):
        m = margin_matrix(torch.empty(6, device='meta'), labels, 6, spec, torch.float32)
        assert m.device.type == 'meta' and m.shape == (5, 6)
        psi = angular_margin_cos(torch.empty(5, 6, device='meta'), m)
        assert psi.device.type == 'meta' and psi.shape == (5, 6)


def test_kernel_failure_warning_names_the_error(monkeypatch):
    message = 'e' * 300

    def failing(function):
        def kernel(*args):
            raise RuntimeError(message)
        return kernel

    with pytest.warns(UserWarning) as record:
        _compiled_run(monkeypatch, failing)
    text = str(record[0].message)
    assert f'({"e" * 200})' in text and 'e' * 201 not in text  # the error, cut at 200 chars


def test_c2am_margins_arguments():
    with pytest.raises(ValueError, match=r'weight_norm must have shape \[C\], got \[2, 3\]'):
        c2am_margins(torch.ones(2, 3), torch.tensor([0]))
    with pytest.raises(ValueError, match=r'weight_norm must have shape \[C\], got list'):
        c2am_margins([1.0, 2.0], torch.tensor([0]))
    half = c2am_margins(torch.tensor([4.0, 1.0], dtype=torch.float16), torch.tensor([0, 1]),
                        alpha=1.0)
    assert half.dtype == torch.float32  # the margin math never runs in fp16
    assert half[0, 1].item() == pytest.approx(math.log(4.0) / math.pi, rel=1e-6)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_tiny_margins_at_minus_one(path, dtype):
    """Margins of 0.3 and 0.6 times ``pi - acos(-1 + eps)`` (~5e-4 in float32): cosines at -1,
    beyond and at the lower clamp all read ``theta = acos(-1 + eps)``, so they are not
    reflected; margins of 2 and 3 times it are."""
    eps = EPS[dtype]
    gap = math.pi - math.acos(-1.0 + eps)  # 4.9e-4 (float32), 1.4e-6 (float64)
    # alpha = 1: m_0j = log(n_0 / n_j) / pi = (f_0 - f_j) gap -> 0, .6, .3, 2, 3, 0
    f = [3.6, 3.0, 3.3, 1.6, 0.6, 3.6]
    norms = torch.tensor([2.0 * math.exp(math.pi * v * gap) for v in f], dtype=dtype)
    values = [-1.0, -1.0 + eps / 2, -1.0 + eps]
    cos = torch.tensor([[values[(k + j) % 3] for j in range(6)] for k in range(3)], dtype=dtype)
    labels = torch.zeros(3, dtype=torch.long)
    up = torch.ones(3, dtype=dtype)
    got = path_loss_and_grad(path, cos, norms, labels, upstream=up, alpha=1.0)
    want = expected_loss_and_grad(cos, norms, labels, upstream=up, alpha=1.0)
    for a, b in zip(got, want):
        assert_matches(a, b, dtype)
