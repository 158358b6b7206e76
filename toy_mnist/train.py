"""Training and evaluation of the imbalanced-MNIST toy."""
from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from projects.c2am.c2am import ALPHA, SCALE, C2AMLoss, DivergedWeightsError
from projects.c2am.cli import UserError, resolve_device, torch_device

from .data import imbalanced_indices, load_mnist
from .model import ToyNet

LOSSES = ('ce', 'cosine', 'fixed', 'c2am')
MEAN, STD = 0.1307, 0.3081
MAX_SEED = 2**32 - 1  # numpy's RandomState (t-SNE) takes seeds below 2**32
MAX_FEAT_DIM = 4096  # the feature layer is Linear(128, feat_dim)


class ToyConfigError(UserError, ValueError):
    """A :class:`ToyConfig` that does not describe a valid run (checked before any work)."""


class DivergedError(UserError, ArithmeticError):
    """Training produced a non-finite loss or weights; nothing is written."""


@dataclass
class ToyConfig:
    """Everything that defines a toy run (saved into metrics.json)."""
    loss: str = 'c2am'
    balanced: bool = False
    tail_classes: list = field(default_factory=lambda: [7, 8, 9])
    tail_count: int = 100
    feat_dim: int = 50
    scale: float = SCALE
    alpha: float = ALPHA
    margin: float = 0.1
    epochs: int = 5
    batch_size: int = 128
    lr: float = 0.05
    weight_decay: float = 5e-4
    warmup_iters: int = 100
    seed: int = 0
    device: str = 'auto'
    data_root: str | None = None
    max_train_per_class: int | None = None  # subsample (smoke tests)
    max_test: int | None = None


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) \
        and not isinstance(value, bool) and math.isfinite(value)


def check_config(cfg: ToyConfig, train_labels: np.ndarray | None = None) -> None:
    """Check every setting of ``cfg`` and the rules between them, before any work is done.

    Args:
        cfg (ToyConfig): the run.
        train_labels (ndarray, optional): ``[N]`` MNIST training labels; when given, also
            check that each tail class has ``tail_count`` images to draw from.

    Raises:
        ToyConfigError: naming the setting (as its command-line flag) and what is allowed.
    """
    def bad(flag: str, rule: str, value) -> ToyConfigError:
        name = flag if '_' in flag else f'--{flag}'  # warmup_iters has no flag
        return ToyConfigError(f'{name} must be {rule}, got {value!r}')

    if cfg.loss not in LOSSES:
        raise bad('loss', f'one of {", ".join(LOSSES)}', cfg.loss)
    for flag, low, high in (('tail-count', 1, None), ('feat-dim', 1, MAX_FEAT_DIM),
                            ('epochs', 1, None), ('batch-size', 1, None),
                            ('warmup_iters', 0, None)):
        value = getattr(cfg, flag.replace('-', '_'))
        if not _is_int(value) or value < low or (high is not None and value > high):
            raise bad(flag, f'an integer >= {low}' if high is None
                      else f'an integer in {low}..{high}', value)
    for flag in ('max-train-per-class', 'max-test'):
        value = getattr(cfg, flag.replace('-', '_'))
        if value is not None and (not _is_int(value) or value < 1):
            raise bad(flag, 'an integer >= 1 (or left out)', value)
    if not _is_int(cfg.seed) or not 0 <= cfg.seed <= MAX_SEED:
        raise bad('seed', f'an integer in 0..{MAX_SEED}', cfg.seed)
    for flag, rule, ok in (('scale', 'a finite number > 0', lambda v: v > 0),
                           ('alpha', 'a finite number >= 0', lambda v: v >= 0),
                           ('margin', 'a finite angle in [0, pi] radians',
                            lambda v: 0 <= v <= math.pi),
                           ('lr', 'a finite number > 0', lambda v: v > 0),
                           ('weight-decay', 'a finite number >= 0', lambda v: v >= 0)):
        value = getattr(cfg, flag.replace('-', '_'))
        if not _is_real(value) or not ok(value):
            raise bad(flag, rule, value)
    tails = list(cfg.tail_classes)
    if not all(_is_int(c) and 0 <= c <= 9 for c in tails):
        raise ToyConfigError(f'--tail-classes must lie in 0-9, got {tails}')
    if len(set(tails)) != len(tails):
        raise ToyConfigError(f'--tail-classes lists a class twice: {tails}; name each tail '
                             'class once')
    if not tails or len(tails) > 9:
        raise ToyConfigError(f'--tail-classes must name 1 to 9 classes (at least one head '
                             f'class must remain), got {tails}')
    if not cfg.balanced and cfg.max_train_per_class is not None \
            and cfg.max_train_per_class <= cfg.tail_count:
        raise ToyConfigError(
            f'--max-train-per-class {cfg.max_train_per_class} must exceed --tail-count '
            f'{cfg.tail_count}: otherwise head classes get no more images than tail classes and '
            'the training set is not imbalanced')
    try:
        torch_device(str(cfg.device))
    except argparse.ArgumentTypeError as err:
        raise ToyConfigError(f'--device: {err}') from None
    if train_labels is not None and not cfg.balanced:
        counts = np.bincount(train_labels, minlength=10)
        short = [c for c in tails if counts[c] < cfg.tail_count]
        if short:
            raise ToyConfigError(
                f'--tail-count {cfg.tail_count} is more than the {counts[short[0]]} training '
                f'images of class {short[0]}; lower --tail-count')


def make_criterion(cfg: ToyConfig):
    if cfg.loss == 'ce':
        return None
    margin = {'cosine': 'none', 'fixed': 'fixed', 'c2am': 'adaptive'}[cfg.loss]
    return C2AMLoss(scale=cfg.scale, alpha=cfg.alpha, margin=margin, fixed_margin=cfg.margin)


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    return ((torch.from_numpy(images).float() / 255.0 - MEAN) / STD).unsqueeze(1)


def select_training_set(train_y: np.ndarray, cfg: ToyConfig) -> np.ndarray:
    """Indices of the training images this run uses."""
    if cfg.balanced:
        idx = np.arange(len(train_y))
    else:
        idx = imbalanced_indices(train_y, cfg.tail_classes, cfg.tail_count, cfg.seed)
    if cfg.max_train_per_class:
        rng = np.random.default_rng(cfg.seed + 1)
        parts = []
        for c in range(10):
            cls_idx = idx[train_y[idx] == c]
            if len(cls_idx) > cfg.max_train_per_class:
                cls_idx = rng.choice(cls_idx, cfg.max_train_per_class, replace=False)
            parts.append(cls_idx)
        idx = np.sort(np.concatenate(parts))
    return idx


def train_and_evaluate(cfg: ToyConfig, progress: bool = True, data: tuple | None = None) -> dict:
    """Train one toy model and evaluate it on the full test set.

    Args:
        cfg (ToyConfig): the run (checked with :func:`check_config` first).
        progress (bool): show a progress bar.
        data (tuple, optional): ``load_mnist(cfg.data_root)`` when already loaded.

    Returns:
        dict: ``metrics`` (JSON-ready; ``None`` where a class or group has no test image),
        ``model`` (trained ToyNet on CPU), ``test_features`` ``[N, feat_dim]`` and
        ``test_labels`` ``[N]`` numpy arrays.

    Raises:
        ToyConfigError: a setting is invalid.
        DivergedError: the loss, the weights or the test features became NaN or infinite.
    """
    train_x, train_y, test_x, test_y = data if data is not None else load_mnist(cfg.data_root)
    check_config(cfg, train_y)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    idx = select_training_set(train_y, cfg)
    if cfg.max_test:
        test_x, test_y = test_x[:cfg.max_test], test_y[:cfg.max_test]
    x_train = _to_tensor(train_x[idx]).to(device)
    y_train = torch.from_numpy(train_y[idx]).to(device)

    model = ToyNet(cfg.loss, cfg.feat_dim, cfg.scale).to(device)
    criterion = make_criterion(cfg)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9,
                          weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(idx) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs

    def lr_at(step: int) -> float:  # linear warm-up, then cosine decay
        if step < cfg.warmup_iters:
            return cfg.lr * (step + 1) / cfg.warmup_iters
        t = (step - cfg.warmup_iters) / max(1, total - cfg.warmup_iters)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * t))

    gen = torch.Generator().manual_seed(cfg.seed)
    step = 0
    bar = tqdm(total=total, desc=f'train {cfg.loss}', disable=not progress, unit='it')
    model.train()
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(idx), generator=gen).to(device)
        for b in range(steps_per_epoch):
            sel = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            for group in opt.param_groups:
                group['lr'] = lr_at(step)
            _, logits = model(x_train[sel])
            if criterion is None:
                loss = F.cross_entropy(logits, y_train[sel])
            else:
                try:
                    loss = criterion(logits, y_train[sel],
                                     weight_norm=model.classifier.weight_norm())
                except DivergedWeightsError:
                    raise _diverged(cfg, f'the classifier weights became NaN or infinite at '
                                         f'step {step + 1} of {total}') from None
            if not torch.isfinite(loss):
                raise _diverged(cfg, f'the loss became {loss.item()} at step {step + 1} of '
                                     f'{total}')
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(loss=f'{loss.item():.3f}')
    bar.close()
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise _diverged(cfg, 'the weights became NaN or infinite')

    feats, preds = _predict(model, test_x, device)
    if not np.isfinite(feats).all():
        raise _diverged(cfg, 'the test features are NaN or infinite')
    metrics = _metrics(cfg, preds, test_y, train_y[idx], model)
    return dict(metrics=metrics, model=model.cpu(), test_features=feats, test_labels=test_y)


def _diverged(cfg: ToyConfig, what: str) -> DivergedError:
    return DivergedError(f'training diverged ({cfg.loss}, seed {cfg.seed}): {what}; nothing '
                         f'was written. Lower --lr (now {cfg.lr}) or --scale (now {cfg.scale})')


def _mean_or_none(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


@torch.no_grad()
def _predict(model: ToyNet, images: np.ndarray, device: torch.device) -> tuple:
    model.eval()
    feats, preds = [], []
    for start in range(0, len(images), 1000):
        f, logits = model(_to_tensor(images[start:start + 1000]).to(device))
        feats.append(f.float().cpu())
        preds.append(logits.argmax(1).cpu())  # test time: no margin
    return torch.cat(feats).numpy(), torch.cat(preds).numpy()


def _metrics(cfg: ToyConfig, preds: np.ndarray, labels: np.ndarray, train_labels: np.ndarray,
             model: ToyNet) -> dict:
    tail = [] if cfg.balanced else sorted(cfg.tail_classes)
    tail_ref = sorted(cfg.tail_classes)  # report the same groups for balanced runs
    head_ref = [c for c in range(10) if c not in tail_ref]
    per_class = [_mean_or_none(preds[labels == c] == c) for c in range(10)]
    precision = [float((labels[preds == c] == c).mean()) if (preds == c).any() else 0.0
                 for c in range(10)]
    correct = preds == labels
    return dict(
        config=asdict(cfg),
        per_class_accuracy=per_class,
        per_class_precision=precision,
        head_classes=head_ref,
        tail_classes=tail_ref,
        head_accuracy=_mean_or_none(correct[np.isin(labels, head_ref)]),
        tail_accuracy=_mean_or_none(correct[np.isin(labels, tail_ref)]),
        overall_accuracy=_mean_or_none(correct),
        train_class_counts=np.bincount(train_labels, minlength=10).tolist(),
        test_class_counts=np.bincount(labels, minlength=10).tolist(),
        weight_norms=model.classifier.weight.detach().float().norm(dim=1).cpu().tolist(),
        imbalanced=bool(tail),
    )
