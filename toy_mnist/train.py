"""Training and evaluation of the imbalanced-MNIST toy."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from projects.c2am.c2am import ALPHA, SCALE, C2AMLoss

from .data import imbalanced_indices, load_mnist
from .model import ToyNet

LOSSES = ('ce', 'cosine', 'fixed', 'c2am')
MEAN, STD = 0.1307, 0.3081


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


def resolve_device(name: str) -> torch.device:
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    return torch.device(name)


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


def train_and_evaluate(cfg: ToyConfig, progress: bool = True) -> dict:
    """Train one toy model and evaluate it on the full test set.

    Returns:
        dict: ``metrics`` (JSON-ready), ``model`` (trained ToyNet on CPU), ``test_features``
        ``[N, feat_dim]`` and ``test_labels`` ``[N]`` numpy arrays.
    """
    if cfg.loss not in LOSSES:
        raise ValueError(f'loss must be one of {LOSSES}, got {cfg.loss!r}')
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    train_x, train_y, test_x, test_y = load_mnist(cfg.data_root)
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
                loss = criterion(logits, y_train[sel],
                                 weight_norm=model.classifier.weight_norm())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(loss=f'{loss.item():.3f}')
    bar.close()

    feats, preds = _predict(model, test_x, device)
    metrics = _metrics(cfg, preds, test_y, train_y[idx], model)
    return dict(metrics=metrics, model=model.cpu(), test_features=feats, test_labels=test_y)


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
    per_class = [float((preds[labels == c] == c).mean()) for c in range(10)]
    precision = [float((labels[preds == c] == c).mean()) if (preds == c).any() else 0.0
                 for c in range(10)]
    correct = preds == labels
    return dict(
        config=asdict(cfg),
        per_class_accuracy=per_class,
        per_class_precision=precision,
        head_classes=head_ref,
        tail_classes=tail_ref,
        head_accuracy=float(correct[np.isin(labels, head_ref)].mean()),
        tail_accuracy=float(correct[np.isin(labels, tail_ref)].mean()),
        overall_accuracy=float(correct.mean()),
        train_class_counts=np.bincount(train_labels, minlength=10).tolist(),
        test_class_counts=np.bincount(labels, minlength=10).tolist(),
        weight_norms=model.classifier.weight.detach().float().norm(dim=1).cpu().tolist(),
        imbalanced=bool(tail),
    )
