"""The mmdet plugin: builds from real LVIS configs, head/loss wiring, test-time scores, compat."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

import projects.c2am.mmdet_plugin  # noqa: F401  (registers the modules)
from projects.c2am.c2am import C2AMLoss, CosineClassifier, c2am_loss
from projects.c2am.mmdet_plugin import C2AMBBoxHead

ROOT = Path(__file__).resolve().parents[1]
MASK_RCNN = ROOT / 'configs/mask_rcnn/mask-rcnn_r50_fpn_c2am_ms-2x_lvis-v1.py'
CASCADE = ROOT / 'configs/cascade_mask_rcnn/cascade-mask-rcnn_r50_fpn_c2am_ms-2x_lvis-v1.py'


def _build(cfg_path):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    return MODELS.build(Config.fromfile(str(cfg_path)).model)


def _check_c2am_head(head, num_classes=1203):
    assert isinstance(head, C2AMBBoxHead)
    assert isinstance(head.fc_cls, CosineClassifier)
    assert head.fc_cls.out_features == num_classes + 1 and head.fc_cls.in_features == 1024
    assert isinstance(head.loss_cls, C2AMLoss)
    assert (head.loss_cls.scale, head.loss_cls.alpha) == (30.0, 0.5)
    assert head.fc_cls.scale == head.loss_cls.scale
    keys = [k for k in head.state_dict() if 'fc_cls' in k or 'loss_cls' in k]
    assert keys == ['fc_cls.weight']  # one classifier tensor, no bias, nothing in the loss


def test_mask_rcnn_lvis_v1_config_builds_with_c2am_head():
    model = _build(MASK_RCNN)
    _check_c2am_head(model.roi_head.bbox_head)
    assert model.roi_head.mask_head.num_classes == 1203


def test_cascade_config_has_c2am_in_all_three_stages():
    model = _build(CASCADE)
    assert len(model.roi_head.bbox_head) == 3
    for head in model.roi_head.bbox_head:
        _check_c2am_head(head)


def _small_head(**loss_kwargs):
    head = C2AMBBoxHead(in_channels=8, fc_out_channels=16, roi_feat_size=2, num_classes=4,
                        loss_cls=dict(type='C2AMLoss', scale=30.0, alpha=0.5, **loss_kwargs))
    head.init_weights()
    with torch.no_grad():  # unequal norms so that the margins are not zero
        head.fc_cls.weight.mul_(torch.tensor([[4.0], [1.0], [0.5], [2.0], [8.0]]))
    return head


def _captured_forward(head, rois_feats):
    captured = {}
    hook = head.fc_cls.register_forward_hook(lambda m, i, o: captured.update(x=i[0]))
    cls_score, bbox_pred = head(rois_feats)
    hook.remove()
    return cls_score, bbox_pred, captured['x']


@pytest.mark.parametrize('background_margin', [True, False])
def test_head_hands_classifier_norms_to_the_loss(background_margin):
    torch.manual_seed(0)
    head = _small_head(background_margin=background_margin)
    feats = torch.randn(10, 8, 2, 2)
    cls_score, bbox_pred, x = _captured_forward(head, feats)
    labels = torch.tensor([0, 1, 2, 3, 4, 4, 4, 1, 0, 2])  # 4 = background (last column)
    label_weights = torch.ones(10)
    rois = torch.cat([torch.zeros(10, 1), torch.rand(10, 2) * 10, torch.rand(10, 2) * 10 + 10],
                     dim=1)
    losses = head.loss(cls_score, bbox_pred, rois, labels, label_weights,
                       torch.zeros(10, 4), torch.zeros(10, 4))
    expected = c2am_loss(x, head.fc_cls.weight, labels, scale=30.0, alpha=0.5,
                         exclude_class=None if background_margin else 4,
                         avg_factor=10.0)
    assert losses['loss_cls'].item() == pytest.approx(expected.item(), rel=1e-5)
    assert set(losses) == {'loss_cls', 'acc', 'loss_bbox'}
    losses['loss_cls'].backward()
    assert head.fc_cls.weight.grad is not None


def test_test_time_scores_are_softmax_of_scaled_cosine():
    torch.manual_seed(1)
    head = _small_head().eval()
    cls_score, bbox_pred, x = _captured_forward(head, torch.randn(6, 8, 2, 2))
    cos = F.normalize(x, dim=1) @ F.normalize(head.fc_cls.weight, dim=1).t()
    torch.testing.assert_close(cls_score, 30.0 * cos)
    rois = torch.tensor([[0, 1.0, 1.0, 20.0, 20.0]] * 6)
    result = head._predict_by_feat_single(rois, cls_score, bbox_pred, img_meta=dict(
        img_shape=(32, 32), scale_factor=(1.0, 1.0)), rescale=False, rcnn_test_cfg=None)
    torch.testing.assert_close(result.scores, F.softmax(30.0 * cos, dim=-1))


def test_scale_is_set_once():
    with pytest.raises(ValueError, match='set it once'):
        C2AMBBoxHead(in_channels=8, fc_out_channels=16, roi_feat_size=2, num_classes=4,
                     cls_predictor_cfg=dict(type='C2AMCosineClassifier', scale=20.0))
    with pytest.raises(TypeError, match='C2AMLoss'):
        C2AMBBoxHead(in_channels=8, fc_out_channels=16, roi_feat_size=2, num_classes=4,
                     loss_cls=dict(type='CrossEntropyLoss'))


def test_compat_fixes():
    assert np.float is float  # lvis 0.5.3's np.float
    from mmengine.logging.history_buffer import HistoryBuffer

    from projects.c2am.compat import _history_buffer_getattr
    assert _history_buffer_getattr(HistoryBuffer, 'mean') is HistoryBuffer.mean
    with pytest.raises(ValueError, match='only'):
        _history_buffer_getattr(HistoryBuffer, '__init__')


def test_compat_refuses_other_getattr_in_checkpoints(tmp_path):
    from mmengine.logging.history_buffer import HistoryBuffer
    path = tmp_path / 'evil.pth'
    torch.save({'f': HistoryBuffer.statistics}, path)  # pickled as getattr(HistoryBuffer, ..)
    with pytest.raises(Exception, match='statistics'):
        torch.load(path, weights_only=True)


def test_loss_core_imports_no_openmmlab(tmp_path):
    code = ('import sys, projects.c2am.c2am; '
            'bad = sorted(m for m in sys.modules if m.split(".")[0] in '
            '("mmdet", "mmcv", "mmengine")); assert not bad, bad')
    subprocess.run([sys.executable, '-c', code], cwd=tmp_path, check=True)


# ------------------------------------------------------ the head's weights, against hand numbers
def _expected_per_roi(x, weight, labels, scale, alpha, exclude):
    """Per-RoI C2AM cross-entropy in float64 with acos (independent of the loss core)."""
    import math
    x, weight = x.detach().double(), weight.detach().double()
    cos = F.normalize(x, dim=1) @ F.normalize(weight, dim=1).t()
    norms = weight.norm(dim=1).tolist()
    out = []
    for a, i in enumerate(labels.tolist()):
        logits = []
        for j, c in enumerate(cos[a].tolist()):
            m = 0.0 if j == i or exclude in (i, j) else \
                min(max(0.0, alpha / math.pi * math.log(norms[i] / norms[j])), math.pi)
            phi = math.acos(max(-1.0, min(1.0, c))) + m
            psi = c if m == 0 else (math.cos(phi) if phi <= math.pi else -2 - math.cos(phi))
            logits.append(scale * psi)
        top = max(logits)
        out.append(top + math.log(sum(math.exp(v - top) for v in logits)) - logits[i])
    return torch.tensor(out, dtype=torch.float64)


def _head_loss(head, label_weights, labels, reduction_override=None, seed=0):
    torch.manual_seed(seed)
    cls_score, bbox_pred, x = _captured_forward(head, torch.randn(len(labels), 8, 2, 2))
    n = len(labels)
    rois = torch.cat([torch.zeros(n, 1), torch.rand(n, 2) * 10, torch.rand(n, 2) * 10 + 10],
                     dim=1)
    losses = head.loss(cls_score, bbox_pred, rois, labels, label_weights, torch.zeros(n, 4),
                       torch.zeros(n, 4), reduction_override=reduction_override)
    return losses, cls_score, x


LABELS = torch.tensor([0, 1, 2, 3, 4, 4, 4, 1, 0, 2])  # 4 = background (last column)


@pytest.mark.parametrize('background_margin', [False, True])
@pytest.mark.parametrize('weights', [
    [1.0, 0.0, 2.0, 0.5, 1.0, 0.0, 1.0, 1.0, 0.3, 0.0],  # ignored RoIs, unequal weights
    [0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # one RoI: avg_factor = 1
    [0.5] * 10,
])
def test_head_uses_label_weights_and_avg_factor(weights, background_margin):
    """mmdet's sampled / ignored RoIs: sum_i w_i CE_i / #(w_i > 0), background excluded."""
    head = _small_head(background_margin=background_margin)
    label_weights = torch.tensor(weights)
    losses, _, x = _head_loss(head, label_weights, LABELS)
    per = _expected_per_roi(x, head.fc_cls.weight, LABELS, 30.0, 0.5,
                            exclude=None if background_margin else 4)
    count = sum(w > 0 for w in weights)
    expected = float((per * label_weights.double()).sum()) / (count + 2.0 ** -23)
    assert losses['loss_cls'].item() == pytest.approx(expected, rel=1e-5)
    x.retain_grad()
    losses['loss_cls'].backward()
    # an ignored RoI's feature gets no gradient from the classification loss
    ignored = label_weights == 0
    assert torch.all(x.grad[ignored] == 0) and torch.all(x.grad[~ignored].abs().sum(1) > 0)


def test_head_reduction_override_none_gives_weighted_per_roi_losses():
    head = _small_head()
    label_weights = torch.tensor([1.0, 0.0, 2.0, 0.5, 1.0, 0.0, 1.0, 1.0, 0.3, 0.0])
    losses, _, x = _head_loss(head, label_weights, LABELS, reduction_override='none', seed=1)
    per = _expected_per_roi(x, head.fc_cls.weight, LABELS, 30.0, 0.5, exclude=4)
    torch.testing.assert_close(losses['loss_cls'].double(), per * label_weights.double(),
                               rtol=1e-5, atol=1e-6)


def test_head_accuracy_and_zero_weights():
    head = _small_head()
    losses, cls_score, _ = _head_loss(head, torch.zeros(10), LABELS, seed=2)
    assert losses['loss_cls'].item() == 0.0  # nothing sampled: avg_factor 1, loss 0
    hits = (cls_score.argmax(dim=1) == LABELS).float().mean().item() * 100
    assert losses['acc'].item() == pytest.approx(hits)


def test_head_takes_its_scale_from_loss_cls():
    head = C2AMBBoxHead(in_channels=8, fc_out_channels=16, roi_feat_size=2, num_classes=4,
                        loss_cls=dict(type='C2AMLoss', scale=16.0, alpha=1.0))
    assert head.fc_cls.scale == 16.0 and head.loss_cls.scale == 16.0
    assert head.shared_fcs[-1].out_features == 16 and head.fc_cls.in_features == 16
    head.init_weights()
    with torch.no_grad():
        head.fc_cls.weight.mul_(torch.tensor([[4.0], [1.0], [0.5], [2.0], [8.0]]))
    label_weights = torch.ones(10)
    losses, cls_score, x = _head_loss(head, label_weights, LABELS, seed=3)
    cos = F.normalize(x, dim=1) @ F.normalize(head.fc_cls.weight, dim=1).t()
    torch.testing.assert_close(cls_score, 16.0 * cos)
    per = _expected_per_roi(x, head.fc_cls.weight, LABELS, 16.0, 1.0, exclude=4)
    assert losses['loss_cls'].item() == pytest.approx(float(per.sum()) / (10 + 2.0 ** -23),
                                                      rel=1e-5)
    # the defaults, and a predictor config that repeats the same scale
    default = C2AMBBoxHead(in_channels=8, fc_out_channels=16, roi_feat_size=2, num_classes=4)
    assert (default.loss_cls.scale, default.loss_cls.alpha, default.fc_cls.scale) == \
        (30.0, 0.5, 30.0)
    head = C2AMBBoxHead(in_channels=8, fc_out_channels=16, roi_feat_size=2, num_classes=4,
                        loss_cls=dict(type='C2AMLoss', scale=16.0),
                        cls_predictor_cfg=dict(type='C2AMCosineClassifier', scale=16.0))
    assert head.fc_cls.scale == 16.0
    with pytest.raises(TypeError, match='CosineClassifier'):
        C2AMBBoxHead(in_channels=8, fc_out_channels=16, roi_feat_size=2, num_classes=4,
                     cls_predictor_cfg=dict(type='Linear'))


def test_head_type_errors_and_default_width():
    assert C2AMBBoxHead(in_channels=8, roi_feat_size=2, num_classes=4).fc_cls.in_features == \
        1024  # Shared2FCBBoxHead's width
    with pytest.raises(TypeError, match='^C2AMBBoxHead needs loss_cls of type C2AMLoss, got '
                                        'CrossEntropyLoss$'):
        C2AMBBoxHead(in_channels=8, fc_out_channels=16, roi_feat_size=2, num_classes=4,
                     loss_cls=dict(type='CrossEntropyLoss'))
    with pytest.raises(TypeError, match='^C2AMBBoxHead needs a CosineClassifier predictor, got '
                                        'Linear$'):
        C2AMBBoxHead(in_channels=8, fc_out_channels=16, roi_feat_size=2, num_classes=4,
                     cls_predictor_cfg=dict(type='Linear'))


def test_head_box_loss_is_bbox_heads():
    """The box branch is BBoxHead.loss's: the RoIs reach a decoded-box loss and
    reduction_override reaches loss_bbox."""
    from mmdet.models.roi_heads.bbox_heads import BBoxHead
    head = C2AMBBoxHead(in_channels=8, fc_out_channels=16, roi_feat_size=2, num_classes=4,
                        reg_decoded_bbox=True, loss_bbox=dict(type='GIoULoss', loss_weight=1.0))
    head.init_weights()
    torch.manual_seed(4)
    cls_score, bbox_pred, _ = _captured_forward(head, torch.randn(10, 8, 2, 2))
    rois = torch.cat([torch.zeros(10, 1), torch.rand(10, 2) * 10, torch.rand(10, 2) * 10 + 10],
                     dim=1)
    targets = rois[:, 1:] + torch.rand(10, 4)
    args = (rois, LABELS, torch.ones(10), targets, torch.ones(10, 4))
    for override in (None, 'none'):
        got = head.loss(cls_score, bbox_pred, *args, reduction_override=override)['loss_bbox']
        want = BBoxHead.loss(head, None, bbox_pred, *args, reduction_override=override)
        torch.testing.assert_close(got, want['loss_bbox'])
    assert got.shape == (int((LABELS < 4).sum()),)  # per positive RoI


def test_classifier_takes_the_loss_scale_when_its_config_names_none():
    head = C2AMBBoxHead(num_classes=3, in_channels=4, fc_out_channels=8, roi_feat_size=1,
                        loss_cls=dict(type='C2AMLoss', scale=16.0),
                        cls_predictor_cfg=dict(type='C2AMCosineClassifier'))
    assert head.fc_cls.scale == 16.0 == head.loss_cls.scale
    with pytest.raises(ValueError, match='differs from loss_cls scale'):
        C2AMBBoxHead(num_classes=3, in_channels=4, fc_out_channels=8, roi_feat_size=1,
                     loss_cls=dict(type='C2AMLoss', scale=16.0),
                     cls_predictor_cfg=dict(type='C2AMCosineClassifier', scale=30.0))


def test_margin_norm_cap_caps_the_norms_eq7_reads_and_nothing_else():
    """Foreground norms 8, 2, 1, 4 (background 16): their median as torch takes it is the
    lower middle one, 2; with cap 2 (x 2 = 4) the row of norm 8 enters Eq. 7 as 4, the others
    as they are."""
    torch.manual_seed(3)
    capped = _small_head()
    with torch.no_grad():
        capped.fc_cls.weight.copy_(F.normalize(capped.fc_cls.weight, dim=1)
                                   * torch.tensor([[8.0], [2.0], [1.0], [4.0], [16.0]]))
    capped.margin_norm_cap = 2.0
    plain = _small_head()
    plain.load_state_dict(capped.state_dict())
    losses, cls_score, x = _head_loss(capped, torch.ones(10), LABELS)
    norms = capped.fc_cls.weight.detach().norm(dim=1)
    expected_norms = torch.tensor([4.0, 2.0, 1.0, 4.0, 16.0])
    torch.testing.assert_close(capped.margin_norms(), expected_norms)
    # the loss is C2AM's with those norms: rescale row 0 so that its norm IS the capped one
    weight = capped.fc_cls.weight.detach().clone()
    weight[0] *= expected_norms[0] / norms[0]
    per = _expected_per_roi(x, weight, LABELS, 30.0, 0.5, exclude=4)
    assert losses['loss_cls'].item() == pytest.approx(float(per.sum()) / (10 + 2.0 ** -23),
                                                      rel=1e-5)
    uncapped, score_plain, _ = _head_loss(plain, torch.ones(10), LABELS)
    torch.testing.assert_close(cls_score, score_plain)  # same scores; only the margins differ
    assert uncapped['loss_cls'].item() != pytest.approx(losses['loss_cls'].item(), rel=1e-4)


@pytest.mark.parametrize('cap', [0.5, 0.999, 0.0, float('inf'), float('nan'), '2'])
def test_margin_norm_cap_refuses_nonsense(cap):
    with pytest.raises(ValueError, match='margin_norm_cap must be a finite number >= 1'):
        C2AMBBoxHead(in_channels=8, fc_out_channels=16, roi_feat_size=2, num_classes=4,
                     margin_norm_cap=cap)


@pytest.mark.parametrize('cap', [1, 1.0, 1.5, 3])
def test_margin_norm_cap_accepts_multiples_from_one(cap):
    head = C2AMBBoxHead(in_channels=8, fc_out_channels=16, roi_feat_size=2, num_classes=4,
                        margin_norm_cap=cap)
    assert head.margin_norm_cap == cap
