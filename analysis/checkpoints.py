"""Safe checkpoint loading and classifier discovery (detectors, Cascade stages, toy models)."""
from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import torch

from .errors import AnalysisError

# Keys of classifier weights: mmdet bbox heads (Cascade: bbox_head.<stage>.) and the toy.
CLASSIFIER_PATTERNS = (
    re.compile(r'^(?:.*\.)?bbox_head(?:\.(?P<stage>\d+))?\.fc_cls\.weight$'),
    re.compile(r'^(?:.*\.)?classifier\.weight$'),
)


def _torch_load(path: Path):
    # weights_only=True: a checkpoint is code when unpickled freely. mmengine checkpoints also
    # hold message_hub objects; the project's compat module allow-lists exactly those types
    # (loaded lazily: plain state_dicts, like the toy's, need no mmengine).
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as first:
        try:
            import projects.c2am.compat  # noqa: F401
        except ImportError:
            raise AnalysisError(f'{path}: needs types outside the safe allow-list '
                                f'({str(first).splitlines()[0][:120]})') from None
        return torch.load(path, map_location='cpu', weights_only=True)


def load_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """Load a checkpoint safely.

    Args:
        path: an mmengine checkpoint (``{'state_dict': ..., 'meta': ...}``) or a plain
            state_dict (toy_mnist ``model.pth``).

    Returns:
        tuple: ``(state_dict, meta)``; ``meta`` is ``{}`` for plain state_dicts.
    """
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f'checkpoint not found: {path}')
    if not zipfile.is_zipfile(path):
        raise AnalysisError(f'{path} is not a PyTorch checkpoint (not a torch.save zip file)')
    try:
        obj = _torch_load(path)
    except AnalysisError:
        raise
    except Exception as err:  # corrupt archive, unsupported pickle, ...
        raise AnalysisError(f'{path} could not be read as a checkpoint: '
                            f'{str(err).splitlines()[0][:160]}') from None
    if isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict):
        return obj['state_dict'], obj.get('meta') or {}
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, {}
    raise AnalysisError(f'{path} holds no state_dict (found {type(obj).__name__})')


def classifier_keys(state_dict: dict) -> list[str]:
    """Keys that look like classifier weights, in state_dict order."""
    return [k for k in state_dict
            if any(p.match(k) for p in CLASSIFIER_PATTERNS) and state_dict[k].dim() == 2]


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
        out[k] = w
    return out


def _two_d_keys(state_dict: dict, limit: int = 8) -> list[str]:
    keys = [k for k, v in state_dict.items() if isinstance(v, torch.Tensor) and v.dim() == 2]
    return keys[-limit:]
