"""One validation at the API boundary: every entry point and every path refuses the same bad
settings with the same ValueError, and non-finite tensors behave the same on every path."""
import math

import pytest
import torch

from projects.c2am.c2am import (
    C2AMLoss,
    CosineClassifier,
    DivergedWeightsError,
    MarginSpec,
    c2am_logits,
    c2am_logits_from_cosine,
    c2am_loss,
    c2am_loss_from_cosine,
    c2am_margins,
)

IMPLEMENTATIONS = ('reference', 'fused')
BAD_SETTINGS = [
    (dict(alpha=-0.1), 'alpha'),
    (dict(alpha=math.inf), 'alpha'),
    (dict(alpha=math.nan), 'alpha'),
    (dict(alpha='0.5'), 'alpha'),
    (dict(alpha=True), 'alpha'),
    (dict(scale=0.0), 'scale'),
    (dict(scale=-30.0), 'scale'),
    (dict(scale=math.nan), 'scale'),
    (dict(scale=math.inf), 'scale'),
    (dict(margin='fixed', fixed_margin=-0.1), 'fixed_margin'),
    (dict(margin='fixed', fixed_margin=4.0), 'fixed_margin'),
    (dict(margin='fixed', fixed_margin=math.nan), 'fixed_margin'),
    (dict(margin='arc'), 'margin'),
    (dict(margin=None), 'margin'),
    (dict(exclude_class=4), 'exclude_class'),  # C = 4: no wrapping modulo C
    (dict(exclude_class=-5), 'exclude_class'),
    (dict(exclude_class=1.0), 'exclude_class'),
    (dict(exclude_class=True), 'exclude_class'),
]


def _data(n=6, c=4, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g), torch.randn(c, d, generator=g),
            torch.randint(0, c, (n,), generator=g))


@pytest.mark.parametrize('implementation', IMPLEMENTATIONS)
@pytest.mark.parametrize('setting,name', BAD_SETTINGS)
def test_bad_settings_are_refused_on_every_path(setting, name, implementation):
    x, w, y = _data()
    cos = torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(w, dim=1).T
    with pytest.raises(ValueError, match=name):
        c2am_loss(x, w, y, implementation=implementation, **setting)
    with pytest.raises(ValueError, match=name):
        c2am_loss_from_cosine(cos, w.norm(dim=1), y, implementation=implementation, **setting)
    with pytest.raises(ValueError, match=name):
        c2am_logits(x, w, y, **setting)
    with pytest.raises(ValueError, match=name):
        c2am_logits_from_cosine(cos, w.norm(dim=1), y, **setting)


@pytest.mark.parametrize('setting,name', [s for s in BAD_SETTINGS if 'exclude_class' not in s[0]])
def test_modules_refuse_the_same_settings_at_construction(setting, name):
    with pytest.raises(ValueError, match=name):
        C2AMLoss(**setting)
    if set(setting) == {'scale'}:
        with pytest.raises(ValueError, match='scale'):
            CosineClassifier(3, 4, **setting)


def test_margin_spec_normalises_exclusion_once():
    assert MarginSpec(exclude_class=-1).for_classes(4).exclude_class == 3
    assert MarginSpec(exclude_class=2).for_classes(4).exclude_class == 2
    with pytest.raises(ValueError, match='exclude_class'):
        MarginSpec(exclude_class=4).for_classes(4)
    assert not MarginSpec(alpha=0.0).active and not MarginSpec('fixed').active
    assert MarginSpec('fixed', fixed_margin=0.1).active and not MarginSpec('none', 2.0).active
    with pytest.raises(ValueError, match='alpha'):
        c2am_margins(torch.ones(3), torch.tensor([0]), alpha=-1.0)


@pytest.mark.parametrize('implementation', IMPLEMENTATIONS)
def test_reduction_arguments_are_checked(implementation):
    x, w, y = _data()
    with pytest.raises(ValueError, match='avg_factor'):
        c2am_loss(x, w, y, avg_factor=-1.0, implementation=implementation)
    with pytest.raises(ValueError, match='avg_factor'):
        c2am_loss(x, w, y, avg_factor=math.nan, implementation=implementation)
    with pytest.raises(ValueError, match='sample_weight'):
        c2am_loss(x, w, y, sample_weight=torch.ones(5), implementation=implementation)
    with pytest.raises(ValueError, match='reduction'):
        c2am_loss(x, w, y, reduction='avg', implementation=implementation)
    with pytest.raises(ValueError, match='implementation'):
        c2am_loss(x, w, y, implementation='triton')


@pytest.mark.parametrize('bad', [math.nan, math.inf])
def test_diverged_classifier_weights_raise_on_every_path(bad):
    x, w, y = _data()
    w[1, 0] = bad
    for implementation in IMPLEMENTATIONS:
        with pytest.raises(DivergedWeightsError, match='diverged'):
            c2am_loss(x, w, y, implementation=implementation)
    with pytest.raises(ValueError, match='diverged'):
        c2am_margins(torch.tensor([1.0, bad]), torch.tensor([0]))


@pytest.mark.parametrize('bad', [math.nan, math.inf, -math.inf])
def test_non_finite_features_give_nan_for_that_sample_on_every_path(bad):
    x, w, y = _data()
    x[2, 1] = bad
    losses = [c2am_loss(x, w, y, reduction='none', implementation=impl)
              for impl in IMPLEMENTATIONS]
    for loss in losses:
        assert torch.isnan(loss[2])
        assert torch.isfinite(torch.cat([loss[:2], loss[3:]])).all()
    torch.testing.assert_close(losses[0][[0, 1, 3, 4, 5]], losses[1][[0, 1, 3, 4, 5]])
    for impl in IMPLEMENTATIONS:
        assert torch.isnan(c2am_loss(x, w, y, implementation=impl))


def test_non_tensor_and_non_float_inputs_are_refused():
    x, w, y = _data()
    with pytest.raises(ValueError, match='features'):
        c2am_loss(x.tolist(), w, y)
    with pytest.raises(ValueError, match='floating point'):
        c2am_loss(x.long(), w.long(), y)
    with pytest.raises(ValueError, match='weight_norm'):
        c2am_loss_from_cosine(torch.zeros(6, 4), torch.ones(3), y)


def test_plain_error_messages_in_full():
    """The messages a user reads, word for word (anchored at both ends)."""
    import re
    x, w, y = _data()
    cases = [
        (lambda: c2am_loss(x, w, y, reduction='sum', avg_factor=2.0), ValueError,
         'avg_factor can not be used with reduction="sum"'),
        (lambda: c2am_margins(torch.tensor([1.0, math.nan]), torch.tensor([0])), ValueError,
         'weight_norm holds NaN, Inf or negative values: the classifier weights have diverged '
         '(lower the learning rate or enable gradient clipping)'),
        (lambda: c2am_loss_from_cosine(torch.zeros(6, 4), None, y), ValueError,
         "margin='adaptive' needs weight_norm, the [C] classifier norms"),
    ]
    xr = x.double().requires_grad_()
    cases.append((lambda: torch.autograd.grad(
        c2am_loss(xr, w.double(), y, implementation='fused'), xr, create_graph=True),
        RuntimeError, "C2AM implementation='fused' has no double backward (create_graph=True); "
        "use implementation='reference'"))
    for call, error, message in cases:
        with pytest.raises(error, match=f'^{re.escape(message)}$'):
            call()
