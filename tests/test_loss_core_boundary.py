"""The API boundary word for word, dtypes at the boundary, and the module wrappers' settings."""
import math
import re

import pytest
import torch

from projects.c2am.c2am import (
    C2AMLoss,
    CosineClassifier,
    MarginSpec,
    c2am_logits,
    c2am_loss,
    c2am_loss_from_cosine,
    c2am_margins,
    classifier_norms,
    cosine_similarity_matrix,
    weighted_reduce,
)

S = 30.0


def exactly(message):
    return f'^{re.escape(message)}$'


def _data(n=6, c=4, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g), torch.randn(c, d, generator=g),
            torch.randint(0, c, (n,), generator=g))


@pytest.mark.parametrize('call, message', [
    (lambda x, w, y: cosine_similarity_matrix(x[0], w),
     'features must be [N, D] and weight [C, D] with the same D, got [3] and [4, 3]'),
    (lambda x, w, y: cosine_similarity_matrix(x, w[0]),
     'features must be [N, D] and weight [C, D] with the same D, got [6, 3] and [3]'),
    (lambda x, w, y: cosine_similarity_matrix(x.tolist(), w),
     'features must be [N, D] and weight [C, D] with the same D, got list and [4, 3]'),
    (lambda x, w, y: cosine_similarity_matrix(x, w.long()),
     'features and weight must be floating point, got torch.float32 and torch.int64'),
    (lambda x, w, y: c2am_loss_from_cosine(x[:, 0], w.norm(dim=1), y),
     'cos must have shape [N, C], got [6]'),
    (lambda x, w, y: c2am_loss_from_cosine(x.tolist(), w.norm(dim=1), y),
     'cos must have shape [N, C], got list'),
    (lambda x, w, y: c2am_loss_from_cosine(x.long(), w.norm(dim=1), y),
     'cos must be floating point, got torch.int64'),
    (lambda x, w, y: c2am_loss_from_cosine(torch.zeros(6, 4), w.norm(dim=1)[:3], y),
     'weight_norm must have shape [4], got [3]'),
    (lambda x, w, y: c2am_loss_from_cosine(torch.zeros(6, 4), [1.0] * 4, y),
     'weight_norm must have shape [4], got list'),
    (lambda x, w, y: c2am_loss(x, w, y.tolist()), 'labels must be a torch.Tensor, got list'),
    (lambda x, w, y: c2am_loss(x, w, y.bool()),
     'labels must have an integer dtype, got torch.bool'),
    (lambda x, w, y: c2am_loss(x, w, y[:5]),
     'labels must have shape [6] (one label per sample), got [5]'),
    (lambda x, w, y: c2am_margins(w.norm(dim=1), y[None]),
     'labels must have shape [N] (one label per sample), got [1, 6]'),
    (lambda x, w, y: c2am_loss(x, w, torch.tensor([0, 4, 1, 2, 3, 0])),
     'labels must lie in [0, 3], found 4'),
    (lambda x, w, y: c2am_loss(x, w, torch.tensor([0, 1, -2, 2, 3, 0])),
     'labels must lie in [0, 3], found -2'),
    (lambda x, w, y: c2am_loss(x, w, y, exclude_class=4),
     'exclude_class must lie in [-4, 3] for 4 classes, got 4'),
    (lambda x, w, y: c2am_loss(x, w, y, implementation='triton'),
     "implementation must be one of ('auto', 'fused', 'reference'), got 'triton'"),
    (lambda x, w, y: C2AMLoss()(y.tolist(), y), 'cls_score must be a tensor, got list'),
    (lambda x, w, y: c2am_loss(x, w, y, alpha=-0.1), 'alpha must be >= 0, got -0.1'),
    (lambda x, w, y: c2am_loss(x, w, y, alpha='0.5'),
     "alpha must be a real number, got str '0.5'"),
    (lambda x, w, y: c2am_loss(x, w, y, scale=0), 'scale must be > 0, got 0'),
    (lambda x, w, y: c2am_loss(x, w, y, margin='fixed', fixed_margin=4.0),
     'fixed_margin must be <= 3.14159, got 4'),
    (lambda x, w, y: c2am_loss(x, w, y, margin='arc'),
     "margin must be one of ('adaptive', 'fixed', 'none'), got 'arc'"),
    (lambda x, w, y: c2am_loss(x, w, y, reduction='avg'),
     "reduction must be one of ('none', 'mean', 'sum'), got 'avg'"),
    (lambda x, w, y: c2am_loss(x, w, y, avg_factor=torch.ones(2)),
     'avg_factor must be a number, got a tensor of shape [2]'),
    (lambda x, w, y: c2am_loss(x, w, y, avg_factor=math.nan), 'avg_factor must be finite, got nan'),
    (lambda x, w, y: c2am_loss(x, w, y, sample_weight=[1.0] * 6),
     'sample_weight must have shape [6], got list'),
    (lambda x, w, y: C2AMLoss(loss_weight=math.inf), 'loss_weight must be finite, got inf'),
    (lambda x, w, y: C2AMLoss(background_margin=1),
     'background_margin must be True or False, got 1'),
    (lambda x, w, y: C2AMLoss(implementation='triton'),
     "implementation must be one of ('auto', 'fused', 'reference'), got 'triton'"),
    (lambda x, w, y: C2AMLoss(reduction='avg'),
     "reduction must be one of ('none', 'mean', 'sum'), got 'avg'"),
])
def test_boundary_messages(call, message):
    x, w, y = _data()
    with pytest.raises(ValueError, match=exactly(message)):
        call(x, w, y)


def test_exclude_class_range_ends():
    assert MarginSpec(exclude_class=-4).for_classes(4).exclude_class == 0
    assert MarginSpec(exclude_class=3).for_classes(4).exclude_class == 3
    with pytest.raises(ValueError, match=exactly(
            'exclude_class must lie in [-4, 3] for 4 classes, got -5')):
        MarginSpec(exclude_class=-5).for_classes(4)


def test_empty_batch_still_checks_the_reduction_arguments():
    cos, y = torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)
    norms = torch.ones(4)
    with pytest.raises(ValueError, match='avg_factor can not be used'):
        c2am_loss_from_cosine(cos, norms, y, reduction='sum', avg_factor=2.0)
    with pytest.raises(ValueError, match=exactly('avg_factor must be >= 0, got -1')):
        c2am_loss_from_cosine(cos, norms, y, avg_factor=-1.0)
    with pytest.raises(ValueError, match=exactly('sample_weight must have shape [0], got [3]')):
        c2am_loss_from_cosine(cos, norms, y, sample_weight=torch.ones(3))


def test_weighted_reduce_checks_and_defaults():
    loss = torch.tensor([1.0, 2.0, 4.0])
    assert weighted_reduce(loss).item() == pytest.approx(7.0 / 3)  # default: mean
    with pytest.raises(ValueError, match='avg_factor can not be used'):
        weighted_reduce(loss, reduction='sum', avg_factor=2.0)
    with pytest.raises(ValueError, match=exactly('sample_weight must have shape [3], got [2]')):
        weighted_reduce(loss, torch.ones(2))
    with pytest.raises(ValueError, match=exactly('sample_weight must have shape [3], got [1]')):
        weighted_reduce(loss, torch.ones(1))  # would broadcast
    got = weighted_reduce(loss, torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64), 'none')
    assert got.dtype == torch.float32  # weights follow the loss dtype
    torch.testing.assert_close(got, torch.tensor([1.0, 1.0, 1.0]))


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_low_precision_inputs_are_upcast_first(dtype):
    """fp16 / bf16 tensors at every entry point: the math runs on their float32 copies."""
    x, w, y = _data(n=8, c=5, d=4, seed=3)
    w = w * torch.linspace(0.3, 3.0, 5)[:, None]
    xl, wl = x.to(dtype), w.to(dtype)
    cos = cosine_similarity_matrix(xl, wl)
    assert cos.dtype == torch.float32
    assert torch.equal(cos, cosine_similarity_matrix(xl.float(), wl.float()))
    norms = classifier_norms(wl)
    assert norms.dtype == torch.float32 and torch.equal(norms, wl.float().norm(dim=1))
    assert torch.equal(c2am_logits(xl, wl, y), c2am_logits(xl.float(), wl.float(), y))
    cos_l = cos.to(dtype)
    for implementation in ('reference', 'fused'):
        got = c2am_loss_from_cosine(cos_l, norms, y, implementation=implementation)
        want = c2am_loss_from_cosine(cos_l.float(), norms, y, implementation=implementation)
        assert got.dtype == torch.float32 and torch.equal(got, want)
    score = (S * cos).to(dtype)
    got = C2AMLoss()(score, y, weight_norm=norms)
    want = C2AMLoss()(score.float(), y, weight_norm=norms)
    assert got.dtype == torch.float32 and torch.equal(got, want)


def test_all_samples_of_the_excluded_class():
    """Every sample is of the excluded class: no margins at all, on every path."""
    x, w, _ = _data(n=5, c=4, d=3, seed=4)
    w = w * torch.tensor([[3.0], [1.0], [0.2], [8.0]])
    y = torch.full((5,), 3)
    cos = cosine_similarity_matrix(x, w)
    plain = torch.nn.functional.cross_entropy(S * cos, y)
    for implementation in ('reference', 'fused'):
        got = c2am_loss_from_cosine(cos, w.norm(dim=1), y, alpha=1.0, exclude_class=3,
                                    implementation=implementation)
        assert got.item() == pytest.approx(plain.item(), rel=1e-6)


def test_cosine_classifier_arguments_and_init():
    for name, args in (('in_features', (0, 4)), ('out_features', (4, 0)),
                       ('in_features', (True, 4)), ('out_features', (4, 2.0))):
        value = args[0] if name == 'in_features' else args[1]
        with pytest.raises(ValueError, match=exactly(f'{name} must be an int >= 1, '
                                                     f'got {value!r}')):
            CosineClassifier(*args)
    with pytest.raises(ValueError, match=exactly('init_std must be >= 0, got -0.1')):
        CosineClassifier(3, 4, init_std=-0.1)
    assert CosineClassifier(1, 1).weight.shape == (1, 1)
    torch.manual_seed(0)
    assert CosineClassifier(64, 64).weight.std().item() == pytest.approx(0.01, rel=0.1)
    assert CosineClassifier(64, 64, init_std=0.5).weight.std().item() == \
        pytest.approx(0.5, rel=0.1)


@pytest.mark.parametrize('settings', [dict(margin='fixed', fixed_margin=0.5),
                                      dict(margin='none'), dict(margin='fixed')])
def test_loss_module_passes_its_margin_settings(settings):
    x, w, y = _data(n=8, c=5, d=4, seed=6)
    w = w * torch.linspace(0.3, 3.0, 5)[:, None]
    cos = cosine_similarity_matrix(x, w)
    got = C2AMLoss(**settings)(S * cos, y, weight_norm=w.norm(dim=1))
    want = c2am_loss(x, w, y, **settings)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    if settings.get('fixed_margin', 0.0) == 0.0:  # the plain cosine classifier
        plain = torch.nn.functional.cross_entropy(S * cos, y)
        assert got.item() == pytest.approx(plain.item(), rel=1e-5)
    assert math.isfinite(got.item())


def test_settings_are_normalised_to_float():
    import numpy as np
    spec = MarginSpec('fixed', alpha=1, fixed_margin=np.float32(0.5))
    assert type(spec.alpha) is float and type(spec.fixed_margin) is float
    assert spec.fixed_margin == pytest.approx(0.5)
    assert type(C2AMLoss(loss_weight=2).loss_weight) is float


def test_avg_factor_forms():
    """A one-element tensor and values in [0, 1) are valid avg_factors (mmdet passes both)."""
    x, w, y = _data()
    per = c2am_loss(x, w, y, reduction='none')
    for factor in (torch.tensor(3.0), torch.tensor([3.0]), 0.5, 0.0):
        got = c2am_loss(x, w, y, avg_factor=factor)
        want = per.sum() / (float(factor) + 2.0 ** -23)
        assert got.item() == pytest.approx(want.item(), rel=1e-6)


def test_cosines_are_float32_under_autocast():
    """The matrix product follows an enclosing bf16 autocast; its result comes back float32."""
    x, w, _ = _data(n=8, c=5, d=16, seed=7)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        cos = cosine_similarity_matrix(x, w)
    assert cos.dtype == torch.float32
    torch.testing.assert_close(cos, cosine_similarity_matrix(x, w), rtol=0, atol=2e-2)
