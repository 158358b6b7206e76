"""Balanced group softmax (BAGS; Li et al., "Overcoming Classifier Imbalance for Long-tail Object
Detection with Balanced Group Softmax", CVPR 2020) as an mmdet classification loss.

The categories are split into groups by their number of training instances (bins ``[0, 10)``,
``[10, 100)``, ``[100, 1000)``, ``[1000, inf)`` in the paper; empty groups are dropped), so that
the categories sharing a softmax differ in training data by at most about 10x. Each group has its
own softmax over its categories and an extra "others" output; group 0 is background against
foreground. Training (Sec. 3.3): every RoI is a sample of group 0; a group's positives are the
RoIs of its categories and its "others" every other RoI, of which ``others_ratio`` x the
positives are drawn at random (all when fewer; a group without positives in the batch takes no
part). The loss is the sum over the groups of their mean cross-entropy over the sampled RoIs.
Test time: a category of group ``g`` scores ``p_0(foreground) * p_g(category)``, the background
``p_0(background)`` (the official code's merge; the "others" outputs are dropped).

Classifier outputs (``C + 2 + G`` columns): the ``C`` categories in label order (so norm
statistics of the first ``C`` rows mean what they mean for the other heads), background,
foreground, then one "others" column per group.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmdet.models.losses import accuracy
from mmdet.registry import MODELS
from torch import Tensor, nn

from .lvis_categories import load_lvis_categories

BINS = (10, 100, 1000)  # instance-count edges of the groups (the paper's, LVIS v0.5)
OTHERS_RATIO = 8.0  # "others" drawn per positive of a group (the paper's beta)


def instance_groups(instance_count: Tensor, bins: tuple[int, ...] = BINS) -> list[Tensor]:
    """Indices of the categories in each non-empty group, fewest instances first.

    Args:
        instance_count (Tensor): ``[C]`` training instances per category.
        bins (tuple[int]): increasing edges; group ``k`` holds ``bins[k-1] <= count < bins[k]``.

    Returns:
        list[Tensor]: one ``[n_g]`` long tensor per non-empty group.
    """
    group = torch.bucketize(instance_count, torch.tensor(bins, dtype=instance_count.dtype),
                            right=True)
    return [torch.nonzero(group == g).flatten() for g in range(len(bins) + 1)
            if bool((group == g).any())]


def _at_least_float32(x: Tensor) -> Tensor:
    """Softmax in float32 (or float64) also under fp16 / bf16 autocast."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _mean_ce(logits: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """``sum_n weight_n * CE(logits_n, target_n) / max(sum_n weight_n, 1)``."""
    per_roi = F.cross_entropy(_at_least_float32(logits), target, reduction='none')
    return (per_roi * weight).sum() / weight.sum().clamp_min(1.0)


@MODELS.register_module()
class BalancedGroupSoftmaxLoss(nn.Module):
    """BAGS as an mmdet classification loss; sets the classifier's outputs (``C + 2 + G``) and
    the test-time scores.

    Args:
        ann_file (str): the TRAINING annotation file (LVIS format), read once for each
            category's ``instance_count`` (counted over its annotations when the field is
            missing); label ``k`` is its ``k``-th category.
        num_classes (int): ``C``; must match the file and the head.
        bins (tuple[int]): increasing instance-count edges of the groups. Defaults to the
            paper's (10, 100, 1000).
        others_ratio (float): "others" drawn per positive of a group. Defaults to 8.
        loss_weight (float): multiplier. Defaults to 1.0.
    """

    custom_cls_channels = True
    custom_activation = True
    custom_accuracy = True

    def __init__(self, ann_file: str, num_classes: int, bins: tuple[int, ...] = BINS,
                 others_ratio: float = OTHERS_RATIO, loss_weight: float = 1.0) -> None:
        super().__init__()
        bins = tuple(bins)
        if not bins or any(not isinstance(b, int) or b < 1 for b in bins) \
                or list(bins) != sorted(set(bins)):
            raise ValueError(f'BalancedGroupSoftmaxLoss: bins must be increasing positive '
                             f'integers, got {bins!r}')
        if not others_ratio > 0:
            raise ValueError(f'BalancedGroupSoftmaxLoss: others_ratio must be > 0, got '
                             f'{others_ratio!r}')
        cats = load_lvis_categories(ann_file)
        if len(cats['ids']) != num_classes:
            raise ValueError(f'BalancedGroupSoftmaxLoss: {ann_file} has {len(cats["ids"])} '
                             f'categories, num_classes is {num_classes}')
        if cats['instance_count'] is None:
            raise ValueError(f'BalancedGroupSoftmaxLoss: {ann_file} has neither '
                             'instance_count fields nor annotations to count')
        self.num_classes, self.bins, self.others_ratio = num_classes, bins, float(others_ratio)
        self.loss_weight = loss_weight
        groups = instance_groups(cats['instance_count'], bins)
        self.num_groups = len(groups)
        group_of = torch.empty(num_classes, dtype=torch.long)
        index_in_group = torch.empty(num_classes, dtype=torch.long)
        for g, members in enumerate(groups):
            group_of[members] = g
            index_in_group[members] = torch.arange(1, len(members) + 1)  # 0: "others"
            # the group's softmax: its "others" column, then its categories
            self.register_buffer(f'group{g}_columns', torch.cat([
                torch.tensor([num_classes + 2 + g]), members]), persistent=False)
        self.register_buffer('group_of', group_of, persistent=False)
        self.register_buffer('index_in_group', index_in_group, persistent=False)

    def group_columns(self) -> list[Tensor]:
        """Per group, the classifier columns of its softmax (``[1 + n_g]``, "others" first)."""
        return [getattr(self, f'group{g}_columns') for g in range(self.num_groups)]

    def get_cls_channels(self, num_classes: int) -> int:
        """``C + 2 + G`` classifier outputs."""
        if num_classes != self.num_classes:
            raise ValueError(f'BalancedGroupSoftmaxLoss: num_classes {self.num_classes} '
                             f"differs from the head's {num_classes}")
        return num_classes + 2 + self.num_groups

    def get_activation(self, cls_score: Tensor) -> Tensor:
        """Test-time scores ``[N, C + 1]``: ``p_0(fg) * p_g(c)`` per category, then
        ``p_0(bg)``, from ``[N, C + 2 + G]`` logits."""
        c = self.num_classes
        logits = _at_least_float32(cls_score)
        binary = F.softmax(logits[:, c:c + 2], dim=1)  # background, foreground
        scores = logits.new_zeros(logits.shape[0], c + 1)
        for columns in self.group_columns():
            scores[:, columns[1:]] = F.softmax(logits[:, columns], dim=1)[:, 1:]
        scores[:, :c] *= binary[:, 1:]
        scores[:, c] = binary[:, 0]
        return scores

    def get_accuracy(self, cls_score: Tensor, labels: Tensor) -> dict:
        """Accuracy (percent) of the arg-max of the test-time scores, background included."""
        return dict(acc=accuracy(self.get_activation(cls_score.detach()), labels))

    def forward(self, cls_score: Tensor, label: Tensor, weight: Tensor | None = None,
                avg_factor: float | None = None, reduction_override: str | None = None,
                **kwargs) -> Tensor:
        """The BAGS loss of a batch of RoIs.

        Args:
            cls_score (Tensor): ``[N, C + 2 + G]`` logits.
            label (Tensor): ``[N]`` labels, background = ``C``.
            weight (Tensor, optional): ``[N]`` per-RoI weights.
            avg_factor (float, optional): unused: each group averages over its own sampled
                RoIs (the official code).
            reduction_override (str, optional): only ``None`` / ``'mean'`` are supported.

        Returns:
            Tensor: scalar ``loss_weight * sum_g mean CE_g``.
        """
        if reduction_override not in (None, 'mean'):
            raise ValueError(f'BalancedGroupSoftmaxLoss supports only mean reduction, got '
                             f'{reduction_override!r}')
        c = self.num_classes
        weight = cls_score.new_ones(label.shape) if weight is None else weight
        weight = _at_least_float32(weight)
        foreground = label < c
        loss = _mean_ce(cls_score[:, c:c + 2], foreground.long(), weight)  # group 0
        category = label.clamp(max=c - 1)  # background rows are masked out below
        for g, columns in enumerate(self.group_columns()):
            positive = foreground & (self.group_of[category] == g)
            num_pos = int(positive.sum())
            if num_pos == 0:
                continue
            others = torch.nonzero(~positive).flatten()
            draw = int(num_pos * self.others_ratio)
            if draw < len(others):
                others = others[torch.randperm(len(others), device=others.device)[:draw]]
            keep = positive.clone()
            keep[others] = True
            target = torch.where(positive, self.index_in_group[category], 0)
            loss = loss + _mean_ce(cls_score[keep][:, columns], target[keep], weight[keep])
        return self.loss_weight * loss
