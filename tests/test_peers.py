"""The peer methods (EQLv2 with sigmoid scores, Federated loss, EQL, BAGS, RFS) and the
classifier norm hook:
values against hand computations, finite gradients, real mmdet training steps on LT-Digits."""
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

import projects.c2am.mmdet_plugin  # noqa: F401  (registers the modules)
from projects.c2am.mmdet_plugin import (
    BalancedGroupSoftmaxLoss,
    ClassifierNormHook,
    EqualizationLoss,
    FederatedLoss,
    SigmoidEQLV2Loss,
)
from projects.c2am.mmdet_plugin.classifier_norm_hook import (
    average_ranks,
    classifier_norm_statistics,
)
from projects.c2am.mmdet_plugin.federated_loss import federated_classes

ROOT = Path(__file__).resolve().parents[1]
LT = ROOT / 'configs' / 'lt_digits'


def _bce(x: float, y: float) -> float:
    return -(y * math.log(1 / (1 + math.exp(-x))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-x))))


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# ---------------------------------------------------------------- EQLv2 ---------------------
def test_eqlv2_loss_matches_hand_computation_over_two_steps():
    loss = SigmoidEQLV2Loss(num_classes=2)  # mu 0.8, alpha 4, gamma 12
    x = [[0.5, -1.0, 0.2], [-0.3, 0.8, -0.1], [0.1, 0.4, 1.5]]
    labels = [0, 1, 2]  # 2 = background (last column)
    score = torch.tensor(x, requires_grad=True)
    first = loss(score, torch.tensor(labels))
    # step 1: pos_neg starts at 100, so neg_w = 1 / (1 + e^(-12 (100 - 0.8))) = 1, pos_w = 1
    hand = sum(_bce(x[n][j], float(labels[n] == j)) for n in range(3) for j in range(3)) / 3
    assert first.item() == pytest.approx(hand, rel=1e-6)
    first.backward()
    assert torch.isfinite(score.grad).all()
    # the statistics it collected: |grad| of the positives and negatives per foreground class
    pos = [sum(1 - _sig(x[n][j]) for n in range(3) if labels[n] == j) for j in range(2)]
    neg = [sum(_sig(x[n][j]) for n in range(3) if labels[n] != j) for j in range(2)]
    torch.testing.assert_close(loss.pos_grad, torch.tensor(pos))
    torch.testing.assert_close(loss.neg_grad, torch.tensor(neg))
    # step 2: neg_w_j = sigmoid(12 (pos_j / neg_j - 0.8)), pos_w_j = 1 + 4 (1 - neg_w_j); 1 for bg
    neg_w = [_sig(12 * (pos[j] / neg[j] - 0.8)) for j in range(2)] + [1.0]
    pos_w = [1 + 4 * (1 - w) for w in neg_w]
    second = loss(torch.tensor(x), torch.tensor(labels))
    hand2 = sum((pos_w[j] if labels[n] == j else neg_w[j]) * _bce(x[n][j], float(labels[n] == j))
                for n in range(3) for j in range(3)) / 3
    assert second.item() == pytest.approx(hand2, rel=1e-6)


def _linear_head(loss_cls):
    from mmdet.models.roi_heads.bbox_heads import Shared2FCBBoxHead
    head = Shared2FCBBoxHead(in_channels=4, fc_out_channels=8, roi_feat_size=2, num_classes=3,
                             loss_cls=loss_cls)
    head.init_weights()
    return head.eval()


def _scores(head, cls_score):
    rois = torch.tensor([[0, 1.0, 1.0, 20.0, 20.0]] * cls_score.shape[0])
    bbox_pred = torch.zeros(cls_score.shape[0], 12)
    return head._predict_by_feat_single(rois, cls_score, bbox_pred, img_meta=dict(
        img_shape=(32, 32), scale_factor=(1.0, 1.0)), rescale=False, rcnn_test_cfg=None).scores


def test_eqlv2_test_time_scores_are_sigmoid_not_mmdet_softmax():
    torch.manual_seed(0)
    logits = torch.randn(5, 4)
    ours = _linear_head(dict(type='SigmoidEQLV2Loss', num_classes=3))
    mmdet = _linear_head(dict(type='EQLV2Loss', num_classes=3))
    assert ours.fc_cls.out_features == mmdet.fc_cls.out_features == 4  # same checkpoints
    p = torch.sigmoid(logits)
    expected = torch.cat([p[:, :3] * (1 - p[:, 3:]), p[:, 3:]], dim=1)
    torch.testing.assert_close(_scores(ours, logits), expected)
    # mmdet 3.3 as shipped: softmax over the sigmoid-trained logits
    torch.testing.assert_close(_scores(mmdet, logits), F.softmax(logits, dim=1))
    with pytest.raises(ValueError, match='num_classes'):
        _linear_head(dict(type='SigmoidEQLV2Loss', num_classes=5))


# ---------------------------------------------------------------- Federated loss ------------
def _ann(tmp_path, counts, groups=None):
    groups = groups or ['f'] * len(counts)
    cats = [dict(id=10 + i, name=f'c{i}', image_count=n, frequency=g)
            for i, (n, g) in enumerate(zip(counts, groups))]
    path = tmp_path / 'ann.json'
    path.write_text(json.dumps(dict(images=[], annotations=[], categories=cats)))
    return str(path)


def test_federated_loss_matches_hand_computation(tmp_path):
    loss = FederatedLoss(_ann(tmp_path, [9, 4, 1, 16]), num_classes=4, num_classes_per_batch=3)
    torch.testing.assert_close(loss.sample_weight, torch.tensor([3.0, 2.0, 1.0, 4.0]))
    x = [[0.5, -1.0, 0.2, 0.3, 2.0], [-0.3, 0.8, -0.1, 1.1, -2.0], [0.1, 0.4, 1.5, -0.6, 0.7]]
    labels = [0, 2, 4]  # present: 0, 2 and background 4 -> 3 classes, nothing sampled
    score = torch.tensor(x, requires_grad=True)
    value = loss(score, torch.tensor(labels))
    hand = sum(_bce(x[n][j], float(labels[n] == j)) for n in range(3) for j in (0, 2)) / 3
    assert value.item() == pytest.approx(hand, rel=1e-6)
    value.backward()
    assert torch.isfinite(score.grad).all()
    assert (score.grad[:, [1, 3, 4]] == 0).all()  # classes outside the batch, background logit
    # per-RoI weights and mmdet's avg_factor
    weighted = loss(torch.tensor(x), torch.tensor(labels), torch.tensor([1.0, 0.0, 2.0]),
                    avg_factor=2.0)
    hand_w = sum(w * _bce(x[n][j], float(labels[n] == j))
                 for n, w in enumerate((1.0, 0.0, 2.0)) for j in (0, 2)) / 2
    assert weighted.item() == pytest.approx(hand_w, rel=1e-6)


# ---------------------------------------------------------------- EQL -----------------------
def test_equalization_loss_matches_hand_computation(tmp_path):
    # 10 training images; image frequencies 0.9, 0.4, 0.1, 0.05 -> tail below 0.2: classes 2, 3
    path = Path(_ann(tmp_path, [9, 4, 1, 0.5]))
    data = json.loads(path.read_text())
    data['images'] = [dict(id=i) for i in range(10)]
    path.write_text(json.dumps(data))
    loss = EqualizationLoss(str(path), num_classes=4, freq_threshold=0.2)
    assert loss.tail.tolist() == [False, False, True, True]
    x = [[0.5, -1.0, 0.2, 0.3, 2.0], [-0.3, 0.8, -0.1, 1.1, -2.0], [0.1, 0.4, 1.5, -0.6, 0.7]]
    labels = [0, 2, 4]  # foreground 0, foreground 2 (itself a tail class), background
    # Eq. 3-5: a foreground RoI keeps its own column and the non-tail negatives; background
    # RoIs keep every foreground column; the background logit (column 4) is never used
    kept = {0: (0, 1), 1: (0, 1, 2), 2: (0, 1, 2, 3)}
    score = torch.tensor(x, requires_grad=True)
    value = loss(score, torch.tensor(labels))
    hand = sum(_bce(x[n][j], float(labels[n] == j)) for n in range(3) for j in kept[n]) / 3
    assert value.item() == pytest.approx(hand, rel=1e-6)
    value.backward()
    assert torch.isfinite(score.grad).all()
    dropped = [(0, 2), (0, 3), (1, 3), (0, 4), (1, 4), (2, 4)]
    assert all(score.grad[n, j] == 0 for n, j in dropped)
    assert all(score.grad[n, j] != 0 for n in range(3) for j in kept[n])
    weighted = loss(torch.tensor(x), torch.tensor(labels), torch.tensor([1.0, 0.0, 2.0]),
                    avg_factor=2.0)
    hand_w = sum(w * _bce(x[n][j], float(labels[n] == j))
                 for n, w in enumerate((1.0, 0.0, 2.0)) for j in kept[n]) / 2
    assert weighted.item() == pytest.approx(hand_w, rel=1e-6)
    with pytest.raises(ValueError, match='only mean reduction'):
        loss(torch.tensor(x), torch.tensor(labels), reduction_override='sum')


def test_equalization_loss_checks_its_annotation_file(tmp_path):
    with pytest.raises(ValueError, match='lists no images'):
        EqualizationLoss(_ann(tmp_path, [1, 2]), num_classes=2)
    with pytest.raises(ValueError, match='has 2 categories, num_classes is 3'):
        EqualizationLoss(_ann(tmp_path, [1, 2]), num_classes=3)
    with pytest.raises(ValueError, match='freq_threshold must be in'):
        EqualizationLoss(_ann(tmp_path, [1, 2]), num_classes=2, freq_threshold=0.0)


def test_lt_digits_eql_threshold_puts_rare_and_common_in_the_tail(tmp_path):
    """lambda of the LT-Digits config at LT-Digits' 3,422 training images: the LVIS groups'
    boundaries (r <= 10 < c <= 100 < f images) fall on the right side of it."""
    lam = Config.fromfile(str(LT / 'mask-rcnn_r18-half_fpn_eql_lt-digits.py')) \
        .model.roi_head.bbox_head.loss_cls.freq_threshold
    path = Path(_ann(tmp_path, [1, 10, 11, 100, 101, 480], ['r', 'r', 'c', 'c', 'f', 'f']))
    data = json.loads(path.read_text())
    data['images'] = [dict(id=i) for i in range(3422)]
    path.write_text(json.dumps(data))
    loss = EqualizationLoss(str(path), num_classes=6, freq_threshold=lam)
    assert loss.tail.tolist() == [True, True, True, True, False, False]
    ann = ROOT / 'data' / 'lt_digits' / 'annotations' / 'lvis_v1_train.json'
    if ann.is_file():  # the generated dataset itself, where it exists
        real = EqualizationLoss(str(ann), num_classes=100, freq_threshold=lam)
        groups = [c['frequency'] for c in json.loads(ann.read_text())['categories']]
        assert real.tail.tolist() == [g != 'f' for g in groups]


def test_federated_classes_sample_by_frequency():
    weight = torch.tensor([0.0, 0.0, 5.0, 0.0, 1.0])  # only classes 2 and 4 can be drawn
    got = federated_classes(torch.tensor([0, 0, 5]), 5, 3, weight)
    assert got[:2].tolist() == [0, 5] and got[2].item() in (2, 4)
    assert sorted(federated_classes(torch.tensor([0, 5]), 5, 10, weight).tolist()) == [0, 2, 4, 5]
    torch.manual_seed(0)  # the draw follows the weights: 2 five times as often as 4
    draws = [federated_classes(torch.tensor([0]), 5, 2, weight)[1].item() for _ in range(600)]
    assert 4.0 < draws.count(2) / draws.count(4) < 6.5


def test_federated_loss_checks_its_annotation_file(tmp_path):
    with pytest.raises(ValueError, match='3 categories'):
        FederatedLoss(_ann(tmp_path, [1, 2, 3]), num_classes=4)
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps(dict(categories=[dict(id=1, name='a', frequency='f')])))
    with pytest.raises(ValueError, match='image_count'):
        FederatedLoss(str(bad), num_classes=1)


def test_federated_test_time_scores_are_sigmoid(tmp_path):
    head = _linear_head(dict(type='FederatedLoss', ann_file=_ann(tmp_path, [3, 2, 1]),
                             num_classes=3))
    logits = torch.randn(4, 4)
    expected = torch.sigmoid(logits)
    expected[:, 3] = 0
    torch.testing.assert_close(_scores(head, logits), expected)


# ---------------------------------------------------------------- norm statistics -----------
def test_norm_statistics_against_hand_and_scipy():
    from scipy.stats import spearmanr
    norms = torch.tensor([4.0, 1.0, 2.0, 0.5, 3.0, 1.5])
    groups = ['f', 'r', 'c', 'r', 'f', 'c']
    counts = torch.tensor([200.0, 3.0, 40.0, 3.0, 150.0, 60.0])  # a tie among the rare
    stats = classifier_norm_statistics(norms, groups, average_ranks(counts), alpha=0.5)
    assert stats['cls_norm/f'] == pytest.approx(3.5)
    assert stats['cls_norm/c'] == pytest.approx(1.75)
    assert stats['cls_norm/r'] == pytest.approx(0.75)
    assert stats['cls_norm/f_over_r'] == pytest.approx(3.5 / 0.75)
    assert stats['cls_norm/spearman_freq'] == pytest.approx(spearmanr(norms, counts)[0])
    # median of 6 values as torch takes it: the lower middle one (1.5); only 4.0 is ABOVE 2x
    assert stats['cls_norm/max_over_median'] == pytest.approx(4.0 / 1.5)
    assert stats['cls_norm/spikes'] == 1  # 3.0 equals 2 x 1.5: not a spike
    # Eq. 7 by hand: m_ij = alpha / pi * log(||W_i|| / ||W_j||) for i frequent, j rare
    f_to_r = [0.5 / math.pi * math.log(a / b) for a in (4.0, 3.0) for b in (1.0, 0.5)]
    assert stats['c2am_margin/f_to_r'] == pytest.approx(sum(f_to_r) / 4, rel=1e-6)
    f_to_c = [0.5 / math.pi * math.log(a / b) for a in (4.0, 3.0) for b in (2.0, 1.5)]
    assert stats['c2am_margin/f_to_c'] == pytest.approx(sum(f_to_c) / 4, rel=1e-6)
    assert not any(k.startswith('c2am') for k in
                   classifier_norm_statistics(norms, groups, average_ranks(counts)))


def test_hook_margins_are_those_the_loss_applies_when_the_head_caps_its_norms():
    """Foreground norms 8 (f), 2 (f), 1 (r), 4 (c); cap 2 x median (2) = 4: Eq. 7 reads the
    frequent row of norm 8 as 4, so the logged margins use 4, the logged norms 8."""
    from types import SimpleNamespace

    from projects.c2am.mmdet_plugin import C2AMBBoxHead
    head = C2AMBBoxHead(in_channels=8, fc_out_channels=16, roi_feat_size=2, num_classes=4,
                        loss_cls=dict(type='C2AMLoss', scale=30.0, alpha=0.5),
                        margin_norm_cap=2.0)
    head.init_weights()
    with torch.no_grad():
        head.fc_cls.weight.copy_(F.normalize(head.fc_cls.weight, dim=1)
                                 * torch.tensor([[8.0], [2.0], [1.0], [4.0], [16.0]]))
    hook = ClassifierNormHook()
    hook._groups = ['f', 'f', 'r', 'c']
    hook._ranks = average_ranks(torch.tensor([100.0, 50.0, 2.0, 20.0]))
    runner = SimpleNamespace(model=SimpleNamespace(roi_head=SimpleNamespace(bbox_head=head)))
    stats = hook.statistics(runner)
    assert stats['cls_norm/f'] == pytest.approx(5.0, rel=1e-5)  # the raw norms
    eq7 = lambda a, b: max(0.0, 0.5 / math.pi * math.log(a / b))  # noqa: E731
    assert stats['c2am_margin/f_to_r'] == pytest.approx((eq7(4, 1) + eq7(2, 1)) / 2, rel=1e-5)
    assert stats['c2am_margin/f_to_c'] == pytest.approx(0.0, abs=1e-6)  # 4 -> 4 and 2 -> 4
    head.margin_norm_cap = None  # uncapped: the raw norm 8 enters Eq. 7
    stats = hook.statistics(runner)
    assert stats['c2am_margin/f_to_r'] == pytest.approx((eq7(8, 1) + eq7(2, 1)) / 2, rel=1e-5)
    assert stats['c2am_margin/f_to_c'] == pytest.approx(eq7(8, 4) / 2, rel=1e-5)


# ---------------------------------------------------------------- BAGS ----------------------
def _bags_ann(tmp_path, instances, field=True):
    """Categories with these training instance counts (as fields, or as annotations)."""
    cats = [dict(id=10 + i, name=f'c{i}', image_count=1, frequency='f',
                 **({'instance_count': n} if field else {})) for i, n in enumerate(instances)]
    anns = [] if field else [dict(id=k, category_id=10 + i, image_id=1)
                             for i, n in enumerate(instances) for k in range(n)]
    path = tmp_path / 'bags.json'
    path.write_text(json.dumps(dict(images=[dict(id=1)], annotations=anns, categories=cats)))
    return str(path)


def _log_softmax_at(row: list[float], index: int) -> float:
    return row[index] - math.log(sum(math.exp(v) for v in row))


def _bags_by_hand(x, labels, weights=None):
    """BAGS with every "others" kept, written out for C = 4 in groups {0, 1}, {2}, {3}:
    columns 0-3 categories, 4 background, 5 foreground, 6-8 the groups' "others"."""
    weights = weights or [1.0] * len(labels)
    groups = [([6, 0, 1], {0: 1, 1: 2}), ([7, 2], {2: 1}), ([8, 3], {3: 1})]
    total = sum(-w * _log_softmax_at([r[4], r[5]], int(y < 4))
                for r, y, w in zip(x, labels, weights)) / sum(weights)
    for columns, position in groups:
        if not any(y in position for y in labels):
            continue  # a group without positives takes no part
        total += sum(-w * _log_softmax_at([r[c] for c in columns], position.get(y, 0))
                     for r, y, w in zip(x, labels, weights)) / sum(weights)
    return total


def test_bags_loss_matches_hand_computation(tmp_path):
    loss = BalancedGroupSoftmaxLoss(_bags_ann(tmp_path, [2, 5, 50, 500]), num_classes=4,
                                    others_ratio=100.0)
    assert loss.get_cls_channels(4) == 4 + 2 + 3
    torch.manual_seed(0)
    x = torch.randn(5, 9).tolist()
    for labels in ([0, 2, 4, 3, 1], [0, 4, 4, 1, 2]):  # the second: group {3} has no positive
        value = loss(torch.tensor(x), torch.tensor(labels))
        assert value.item() == pytest.approx(_bags_by_hand(x, labels), rel=1e-6)
    weights = [1.0, 0.5, 2.0, 1.0, 0.0]
    value = loss(torch.tensor(x), torch.tensor([0, 2, 4, 3, 1]), torch.tensor(weights))
    assert value.item() == pytest.approx(_bags_by_hand(x, [0, 2, 4, 3, 1], weights), rel=1e-6)
    # counted from the annotations when the categories carry no instance_count
    counted = BalancedGroupSoftmaxLoss(_bags_ann(tmp_path, [2, 5, 50, 500], field=False),
                                       num_classes=4, others_ratio=100.0)
    assert counted(torch.tensor(x), torch.tensor([0, 2, 4, 3, 1])).item() == \
        pytest.approx(_bags_by_hand(x, [0, 2, 4, 3, 1]), rel=1e-6)


def test_bags_gradients_and_others_sampling(tmp_path):
    loss = BalancedGroupSoftmaxLoss(_bags_ann(tmp_path, [2, 5, 50, 500]), num_classes=4,
                                    others_ratio=2.0)
    labels = torch.tensor([2, 2] + [4] * 18)  # two positives of group {2}, 18 background RoIs
    x = torch.randn(20, 9, dtype=torch.float64, requires_grad=True)
    loss(x, labels).backward()
    assert torch.isfinite(x.grad).all()
    used = x.grad[:, 7] != 0  # group {2}'s "others" column
    assert used[:2].all() and int(used.sum()) == 2 + 4  # the positives and 2 x 2 others
    assert (x.grad[:, [6, 8, 0, 1, 3]] == 0).all()  # groups without positives take no part
    assert (x.grad[:, [4, 5]] != 0).all()  # every RoI is a sample of background vs foreground
    every = BalancedGroupSoftmaxLoss(_bags_ann(tmp_path, [2, 5, 50, 500]), num_classes=4,
                                     others_ratio=100.0)
    x0 = torch.randn(6, 9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: every(t, torch.tensor([0, 1, 2, 3, 4, 4])), (x0,))


def test_bags_test_time_scores_through_the_head(tmp_path):
    loss_cfg = dict(type='BalancedGroupSoftmaxLoss', ann_file=_bags_ann(tmp_path, [3, 30, 300]),
                    num_classes=3)
    head = _linear_head(loss_cfg)
    assert head.fc_cls.out_features == 3 + 2 + 3
    torch.manual_seed(1)
    x = torch.randn(4, 8)
    p0 = F.softmax(x[:, [3, 4]], dim=1)  # background, foreground
    expected = torch.stack([p0[:, 1] * F.softmax(x[:, [5 + g, g]], dim=1)[:, 1]
                            for g in range(3)] + [p0[:, 0]], dim=1)
    torch.testing.assert_close(_scores(head, x), expected)
    acc = head.loss_cls.get_accuracy(x, expected.argmax(dim=1))['acc']
    assert acc.item() == pytest.approx(100.0)


@pytest.mark.parametrize('kwargs, message', [
    (dict(bins=(100, 10)), 'increasing'), (dict(bins=()), 'increasing'),
    (dict(others_ratio=0), 'others_ratio'), (dict(num_classes=5), 'num_classes is 5'),
])
def test_bags_refuses_bad_settings(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        BalancedGroupSoftmaxLoss(**dict(dict(ann_file=_bags_ann(tmp_path, [2, 50, 500]),
                                             num_classes=3), **kwargs))
    bare = tmp_path / 'bare.json'
    bare.write_text(json.dumps(dict(images=[], annotations=[], categories=[
        dict(id=1, image_count=1, frequency='r')])))
    with pytest.raises(ValueError, match='instance_count'):
        BalancedGroupSoftmaxLoss(str(bare), num_classes=1)


def test_bags_groups_are_half_open_bins_and_the_lt_digits_config_keeps_the_papers():
    from projects.c2am.mmdet_plugin.balanced_group_softmax import instance_groups
    counts = torch.tensor([2.0, 9.0, 10.0, 99.0, 100.0, 480.0])
    assert [g.tolist() for g in instance_groups(counts)] == [[0, 1], [2, 3], [4, 5]]
    cfg = Config.fromfile(str(LT / 'mask-rcnn_r18-half_fpn_bags_lt-digits.py'))
    loss = cfg.model.roi_head.bbox_head.loss_cls
    assert (tuple(loss.bins), loss.others_ratio, loss.loss_weight) == ((10, 100, 1000), 8.0, 0.25)


# ---------------------------------------------------------------- real training steps ------
@pytest.fixture(scope='module')
def small_lt(tmp_path_factory):
    from lt_digits import make_lt_digits
    return make_lt_digits(tmp_path_factory.mktemp('ltd'), seed=3, max_images=150,
                          min_images=1.5, progress=False)


def _tiny(config: str, data: dict, work_dir: Path, iters: int = 2) -> Config:
    """An LT-Digits config on the small dataset, shrunk to seconds (nothing else changed)."""
    cfg = Config.fromfile(str(LT / config))
    root = data['data_root'] + '/'
    train = cfg.train_dataloader.dataset
    (train.dataset if train.type == 'ClassBalancedDataset' else train).data_root = root
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None  # training only
    loss = cfg.model.roi_head.bbox_head.loss_cls
    if 'ann_file' in loss:
        loss.ann_file = data['train_ann']
    cfg.train_dataloader.batch_size = 2
    cfg.model.train_cfg.rpn_proposal.max_per_img = 32
    cfg.model.train_cfg.rcnn.sampler.num = 16
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=10_000)
    cfg.param_scheduler = []
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10_000, by_epoch=False)
    cfg.log_processor.window_size = 1
    cfg.work_dir = str(work_dir)
    cfg.visualizer.name = f'visualizer_{work_dir.name}'  # one per run (a process-wide instance)
    return cfg


def _scalars(work_dir: Path) -> list[dict]:
    (path,) = work_dir.glob('*/vis_data/scalars.json')
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize('config', [
    'mask-rcnn_r18-half_fpn_eqlv2_lt-digits.py',
    'mask-rcnn_r18-half_fpn_fed_lt-digits.py',
    'mask-rcnn_r18-half_fpn_eql_lt-digits.py',
    'mask-rcnn_r18-half_fpn_bags_lt-digits.py',
    'mask-rcnn_r18-half_fpn_c2am_sample3e-2_lt-digits.py',
])
def test_real_training_step_logs_losses_and_norm_statistics(config, small_lt, tmp_path):
    from mmengine.runner import Runner
    runner = Runner.from_cfg(_tiny(config, small_lt, tmp_path))
    before = runner.model.roi_head.bbox_head.fc_cls.weight.detach().clone()
    runner.train()
    assert not torch.equal(runner.model.roi_head.bbox_head.fc_cls.weight, before)  # it learned
    rows = _scalars(tmp_path)
    assert [r['step'] for r in rows] == [1, 2]
    for row in rows:
        assert math.isfinite(row['loss_cls']) and math.isfinite(row['loss'])
        for g in ('r', 'c', 'f'):
            assert row[f'cls_norm/{g}'] > 0
        assert -1 <= row['cls_norm/spearman_freq'] <= 1
        assert ('c2am_margin/f_to_r' in row) == ('c2am' in config)
    hook = next(h for h in runner.hooks if isinstance(h, ClassifierNormHook))
    assert hook.interval == 1  # the LoggerHook's
    # the logged numbers are those of the trained classifier
    ann = json.loads(Path(small_lt['train_ann']).read_text())
    rare = [i for i, c in enumerate(ann['categories']) if c['frequency'] == 'r']
    w = runner.model.roi_head.bbox_head.fc_cls.weight.detach()
    assert rows[-1]['cls_norm/r'] == pytest.approx(w[rare].norm(dim=1).mean().item(), rel=1e-5)
    if 'sample3e-2' in config:
        assert runner.train_dataloader.dataset.oversample_thr == 0.03
        assert len(runner.train_dataloader.dataset) > len(runner.train_dataloader.dataset.dataset)
