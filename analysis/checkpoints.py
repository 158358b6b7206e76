"""Safe checkpoint loading and classifier discovery (detectors, Cascade stages, toy models)."""
from __future__ import annotations

import re
from pathlib import Path

import torch

from projects.c2am.cli import UserError
from projects.c2am.safe_load import load_torch

from .errors import AnalysisError

# Keys of classifier weights: mmdet bbox heads (Cascade: bbox_head.<stage>.) and the toy.
CLASSIFIER_PATTERNS = (
    re.compile(r'^(?:.*\.)?bbox_head(?:\.(?P<stage>\d+))?\.fc_cls\.weight$'),
    re.compile(r'^(?:.*\.)?classifier\.weight$'),
)


def load_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """Load a checkpoint safely (``weights_only``, zip or legacy ``torch.save`` format).

    Args:
        path: an mmengine checkpoint (``{'state_dict': ..., 'meta': ...}``) or a plain
            state_dict (toy_mnist ``model.pth``).

    Returns:
        tuple: ``(state_dict, meta)``; ``meta`` is ``{}`` for plain state_dicts.

    Raises:
        AnalysisError: missing, not a checkpoint, asks for code, or holds no state_dict.
    """
    path = Path(path)
    try:
        obj = load_torch(path)
    except UserError as err:
        raise AnalysisError(str(err)) from None
    if isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict):
        state, meta = obj['state_dict'], obj.get('meta')
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor)
                                               for v in obj.values()):
        state, meta = obj, {}
    else:
        raise AnalysisError(f'{path} holds no state_dict (found {type(obj).__name__})')
    state = {k: v for k, v in state.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not state:
        raise AnalysisError(f'{path}: its state_dict holds no tensors')
    return state, meta if isinstance(meta, dict) else {}


def classifier_keys(state_dict: dict) -> list[str]:
    """Keys that look like classifier weights, in state_dict order."""
    return [k for k in state_dict
            if any(p.match(k) for p in CLASSIFIER_PATTERNS) and state_dict[k].dim() == 2
            and state_dict[k].is_floating_point()]


def is_detector_key(key: str) -> bool:
    return 'bbox_head' in key


def detector_extra_rows(meta: dict) -> int | None:
    """Rows a detector classifier has beyond its categories, read from the checkpoint's config.

    mmengine checkpoints store the config text in ``meta['cfg']``: Seesaw loss adds two
    objectness rows, every other mmdet classification loss one background row. ``None`` when
    the checkpoint carries no config.
    """
    cfg = meta.get('cfg') if isinstance(meta, dict) else None
    if not isinstance(cfg, str):
        return None
    return 2 if 'SeesawLoss' in cfg else 1


def select_classifiers(state_dict: dict, key: str | None = None, stage: int | None = None,
                       num_classes: int | None = None,
                       extra_rows: int | None = None) -> dict[str, torch.Tensor]:
    """Classifier weight matrices ``{name: [C, D]}``, the detector's extra rows removed.

    Args:
        state_dict (dict): the checkpoint's state_dict.
        key (str, optional): explicit key (overrides discovery).
        stage (int, optional): Cascade stage to keep (default: all stages).
        num_classes (int, optional): the number of categories, when known: detector rows beyond
            it are dropped (background, and Seesaw's two objectness rows).
        extra_rows (int, optional): the detector's rows beyond its categories when known (see
            :func:`detector_extra_rows`); otherwise 1 or 2 are accepted with ``num_classes``
            and 1 is assumed without.

    Returns:
        dict: name (the key) -> float32 weight of the categories only (mmdet's convention:
        category rows first, background LAST).
    """
    if key is not None:
        if key not in state_dict:
            raise AnalysisError(f'--key {key} is not in the checkpoint; candidates: '
                                f'{classifier_keys(state_dict) or _two_d_keys(state_dict)}')
        t = state_dict[key]
        if t.dim() != 2 or not t.is_floating_point():
            raise AnalysisError(f'--key {key} is a {t.dim()}-D {str(t.dtype)[6:]} tensor of '
                                f'shape {tuple(t.shape)}; a classifier weight is a 2-D float '
                                f'[classes, features] matrix, candidates: '
                                f'{classifier_keys(state_dict) or _two_d_keys(state_dict)}')
        keys = [key]
    else:
        keys = classifier_keys(state_dict)
        if not keys:
            raise AnalysisError('no classifier weight found; pass --key, candidates: '
                                f'{_two_d_keys(state_dict)}')
        if stage is not None:
            keys = [k for k in keys if f'bbox_head.{stage}.' in k]
            if not keys:
                raise AnalysisError(f'no Cascade stage {stage} classifier; found '
                                    f'{classifier_keys(state_dict)}')
    out = {}
    for k in keys:
        w = state_dict[k].detach().float()
        if is_detector_key(k):
            extra = w.shape[0] - num_classes if num_classes else (extra_rows or 1)
            allowed = (extra_rows,) if extra_rows else (1, 2)  # background / Seesaw's pair
            if extra not in allowed:
                rows = {1: 'background', 2: "Seesaw's 2 objectness rows"}
                what = ' or '.join(rows[a] for a in allowed)
                raise AnalysisError(f'{k} has {w.shape[0]} rows, which does not fit the '
                                    f'{num_classes} categories of the annotation file plus '
                                    f'{what}; LVIS v1 has 1203, v0.5 1230')
            w = w[:-extra]
        if w.shape[0] < 2 or w.shape[1] < 1:
            raise AnalysisError(f'{k} has {w.shape[0]} category rows of {w.shape[1]} features '
                                f'(shape {tuple(state_dict[k].shape)}); a classifier needs at '
                                'least 2 categories')
        check_finite_rows(k, w)
        out[k] = w
    return out


def check_finite_rows(name: str, w: torch.Tensor) -> None:
    """Refuse weights whose norms can not be compared.

    NaN / Inf entries mean the run diverged; a row of norm 0 makes the norm ratios and the
    C2AM margins (``log(||W_i|| / ||W_j||)``) undefined. Either is an error rather than a
    figure and json of NaN / Infinity.

    Raises:
        AnalysisError: naming the first bad row and how many there are.
    """
    bad = (~torch.isfinite(w)).any(dim=1)
    if bad.any():
        rows = torch.nonzero(bad).flatten().tolist()
        raise AnalysisError(f'{name}: {len(rows)} row(s) hold NaN/Inf (first: class index '
                            f'{rows[0]}); the checkpoint comes from a diverged run')
    zero = w.norm(dim=1) == 0
    if zero.any():
        rows = torch.nonzero(zero).flatten().tolist()
        raise AnalysisError(f'{name}: {len(rows)} row(s) are all zero (first: class index '
                            f'{rows[0]}); norm ratios and C2AM margins are undefined for them')


def _two_d_keys(state_dict: dict, limit: int = 8) -> list[str]:
    keys = [k for k, v in state_dict.items() if isinstance(v, torch.Tensor) and v.dim() == 2]
    return keys[-limit:]
