"""Watch the classifier norms (and C2AM's margins) per frequency group while a detector trains.

Every ``interval`` iterations (default: the LoggerHook's) the hook reduces the box classifier's
foreground rows ``W[:C]`` to a few numbers and puts them in mmengine's message hub as
``train/...`` scalars, so they are printed with the training log and written by every enabled
visualizer backend (``scalars.json``, TensorBoard, W&B):

* ``cls_norm/r``, ``cls_norm/c``, ``cls_norm/f``: mean row norm of the rare / common / frequent
  categories; ``cls_norm/bg``: the background row; ``cls_norm/f_over_r``: frequent / rare;
* ``cls_norm/spearman_freq``: Spearman correlation of the row norm with the training image count;
* ``cls_norm/max_over_median`` and ``cls_norm/spikes``: the largest row norm over the median,
  and how many rows exceed ``SPIKE`` (2) x the median (single categories whose norm runs away);
* for a C2AM head with adaptive margins: ``c2am_margin/f_to_r`` and ``c2am_margin/f_to_c``, the
  mean margin (radians, Eq. 7) a frequent-class sample puts on a rare / common class, from the
  norms the loss reads (capped where the head caps them, ``margin_norm_cap``).

Cascade heads get one set per stage (``cls_norm_s0/...``). The groups and image counts come from
the training dataset's annotation file (LVIS ``frequency`` / ``image_count``). The cost is one
``[C, D]`` norm and a sort of ``C`` values.
"""
from __future__ import annotations

import torch
from mmdet.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch import Tensor

from ..c2am import C2AMLoss, c2am_margins
from .lvis_categories import GROUPS, load_lvis_categories

SPIKE = 2.0  # a row norm above SPIKE x the median counts as a spike


def average_ranks(values: Tensor) -> Tensor:
    """Ranks (0-based) of ``values`` ``[C]``, ties sharing their mean rank (as Spearman's rho)."""
    _, inverse, counts = torch.unique(values, return_inverse=True, return_counts=True)
    end = counts.cumsum(0).to(torch.float64)
    return ((end - counts + end - 1) / 2)[inverse]


def spearman(values: Tensor, reference_ranks: Tensor) -> float:
    """Spearman's rho of ``values`` ``[C]`` against precomputed ``reference_ranks`` ``[C]``."""
    a = average_ranks(values.detach().double().cpu())
    b = reference_ranks.double()
    a, b = a - a.mean(), b - b.mean()
    denom = (a.norm() * b.norm()).item()
    return float((a @ b).item() / denom) if denom > 0 else float('nan')


def classifier_norm_statistics(norms: Tensor, groups: list[str], frequency_ranks: Tensor,
                               alpha: float | None = None,
                               margin_norms: Tensor | None = None) -> dict[str, float]:
    """The per-group statistics the hook logs.

    Args:
        norms (Tensor): ``[C]`` foreground row norms.
        groups (list[str]): ``C`` frequency groups, each ``'r'``, ``'c'`` or ``'f'``.
        frequency_ranks (Tensor): ``[C]`` average ranks of the training image counts.
        alpha (float, optional): C2AM's alpha; adds the mean margins frequent -> rare / common.
        margin_norms (Tensor, optional): ``[C]`` the norms Eq. 7 reads when they are not
            ``norms`` (a head that caps them); defaults to ``norms``.

    Returns:
        dict: ``cls_norm/<g>`` for each group present, ``cls_norm/f_over_r`` (both present),
        ``cls_norm/spearman_freq``, ``cls_norm/max_over_median``, ``cls_norm/spikes`` and, with
        ``alpha``, ``c2am_margin/f_to_r`` /
        ``c2am_margin/f_to_c``.
    """
    norms = norms.detach().float().cpu()
    index = {g: torch.tensor([i for i, x in enumerate(groups) if x == g], dtype=torch.long)
             for g in GROUPS}
    out = {f'cls_norm/{g}': float(norms[idx].mean()) for g, idx in index.items() if len(idx)}
    if len(index['f']) and len(index['r']):
        out['cls_norm/f_over_r'] = out['cls_norm/f'] / out['cls_norm/r']
    median = float(norms.median())  # torch: the lower middle value for an even count
    if median > 0:
        out['cls_norm/max_over_median'] = float(norms.max()) / median
        out['cls_norm/spikes'] = float((norms > SPIKE * median).sum())
    rho = spearman(norms, frequency_ranks)
    if rho == rho:  # undefined when all norms (or all counts) are equal
        out['cls_norm/spearman_freq'] = rho
    if alpha is not None and len(index['f']):
        read = norms if margin_norms is None else margin_norms.detach().float().cpu()
        margins = c2am_margins(read, index['f'], alpha=alpha)  # [n_f, C]
        for g in ('r', 'c'):
            if len(index[g]):
                out[f'c2am_margin/f_to_{g}'] = float(margins[:, index[g]].mean())
    return out


@HOOKS.register_module()
class ClassifierNormHook(Hook):
    """Log classifier norm statistics per frequency group (and C2AM margins) during training.

    Args:
        interval (int, optional): every this many iterations; defaults to the LoggerHook's
            interval so each logged line carries fresh values.
        ann_file (str, optional): LVIS-format annotation file with the categories' ``frequency``
            and ``image_count``; defaults to the training dataset's ``ann_file`` (wrappers such
            as ``ClassBalancedDataset`` are looked through).
    """

    priority = 'NORMAL'  # before the LoggerHook (BELOW_NORMAL) in the same iteration

    def __init__(self, interval: int | None = None, ann_file: str | None = None) -> None:
        if interval is not None and interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        self.interval = interval
        self.ann_file = ann_file
        self._groups: list[str] = []
        self._ranks: Tensor | None = None
        self._active = False

    def before_train(self, runner) -> None:
        """Resolve the interval, read the categories in the dataset's label order (on the main
        process only: the others log nothing)."""
        self._active = is_main_process()
        if not self._active:
            return
        if self.interval is None:
            logger = [h for h in runner.hooks if type(h).__name__ == 'LoggerHook']
            self.interval = logger[0].interval if logger else 50
        dataset = runner.train_dataloader.dataset
        while hasattr(dataset, 'dataset'):  # ClassBalancedDataset, RepeatDataset, ...
            dataset = dataset.dataset
        ann_file = self.ann_file or getattr(dataset, 'ann_file', None)
        if not ann_file:
            raise ValueError('ClassifierNormHook: the training dataset has no ann_file; pass '
                             'ann_file=')
        cats = load_lvis_categories(ann_file)
        order = list(range(len(cats['ids'])))
        cat_ids = getattr(dataset, 'cat_ids', None)
        if cat_ids:  # the dataset's own label order
            position = {cid: i for i, cid in enumerate(cats['ids'])}
            order = [position[cid] for cid in cat_ids]
        self._groups = [cats['frequency'][i] for i in order]
        self._ranks = average_ranks(cats['image_count'][order])

    def _heads(self, runner) -> list:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        heads = model.roi_head.bbox_head
        return list(heads) if isinstance(heads, torch.nn.ModuleList) else [heads]

    def statistics(self, runner) -> dict[str, float]:
        """The current statistics, keys as logged without the ``train/`` prefix."""
        heads = self._heads(runner)
        out = {}
        for stage, head in enumerate(heads):
            num_classes = head.num_classes
            if num_classes != len(self._groups):
                raise ValueError(f'ClassifierNormHook: the head has {num_classes} classes, the '
                                 f'annotation file {len(self._groups)}')
            with torch.no_grad():
                norms = head.fc_cls.weight.detach().float().norm(dim=1)  # [rows]
            loss = head.loss_cls
            alpha = (loss.alpha if isinstance(loss, C2AMLoss) and loss.margin == 'adaptive'
                     else None)
            # the margins the loss applies: a head may cap the norms Eq. 7 reads
            margin_norms = head.margin_norms()[:num_classes] if (
                alpha is not None and hasattr(head, 'margin_norms')) else None
            stats = classifier_norm_statistics(norms[:num_classes], self._groups, self._ranks,
                                               alpha, margin_norms)
            if norms.shape[0] == num_classes + 1:  # softmax layout: background last
                stats['cls_norm/bg'] = float(norms[num_classes])
            suffix = f'_s{stage}' if len(heads) > 1 else ''
            out.update({k.replace('/', f'{suffix}/', 1): v for k, v in stats.items()})
        return out

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Every ``interval`` iterations (and at the last), update the scalars."""
        if not self._active or not (self.every_n_train_iters(runner, self.interval)
                                    or self.is_last_train_iter(runner)):
            return
        for key, value in self.statistics(runner).items():
            runner.message_hub.update_scalar(f'train/{key}', value)
