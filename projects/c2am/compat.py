"""Fixes for the pinned OpenMMLab stack on current numpy / torch, in ONE place.

Imported first by :mod:`projects.c2am.mmdet_plugin` (so by every config through
``custom_imports``) and by ``tools/train.py`` / ``tools/test.py``; the analysis scripts use it
without mmdet. Each fix is idempotent.
See README "Environment" for the failures these address.
"""
from __future__ import annotations

import numpy as np
import torch

# Statistics methods that mmengine's HistoryBuffer pickles into every checkpoint
# (``getattr(HistoryBuffer, name)``), see mmengine/logging/history_buffer.py.
_HISTORY_BUFFER_METHODS = frozenset({'min', 'max', 'current', 'mean'})


def _patch_numpy_float() -> None:
    # Fix 1: lvis 0.5.3 (lvis/eval.py:361) uses np.float, removed in numpy 1.24; every LVIS
    # evaluation (mmdet's LVISMetric included) dies at its very end with AttributeError.
    if 'float' not in np.__dict__:
        np.float = float  # type: ignore[attr-defined]


def _history_buffer_getattr(obj, name: str):
    """A ``getattr`` for the safe unpickler that only resolves HistoryBuffer's statistics."""
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(obj, name)
    raise ValueError(f'checkpoint asks for getattr({obj!r}, {name!r}); only '
                     f'HistoryBuffer.{sorted(_HISTORY_BUFFER_METHODS)} are allowed')


def mmengine_checkpoint_safe_globals() -> list:
    """The non-tensor globals of an mmengine checkpoint (``meta`` and ``message_hub``)."""
    from mmengine.logging.history_buffer import HistoryBuffer
    try:  # numpy >= 2 pickles its reconstructors from numpy._core
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    dtypes = [type(np.dtype(t)) for t in ('float64', 'float32', 'int64', 'int32', 'bool')]
    return [HistoryBuffer, np.ndarray, np.dtype, _reconstruct, scalar, *dtypes,
            (_history_buffer_getattr, 'builtins.getattr')]


def allow_mmengine_checkpoints() -> None:
    # Fix 2: torch >= 2.6 loads with weights_only=True by default and mmengine 0.10.7 calls
    # torch.load without weights_only, so load_from / --resume / test.py fail with
    # "Weights only load failed ... HistoryBuffer". Instead of turning the safe unpickler off
    # (TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1: a checkpoint would be code), allow-list exactly the
    # types mmengine stores, with a getattr that resolves nothing but HistoryBuffer's methods.
    # Older torch (no add_safe_globals, weights_only=False by default) needs nothing.
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(mmengine_checkpoint_safe_globals())


def setup_cpu_distributed(cfg) -> bool:
    """Fix 3: let ``--launcher pytorch`` run on hosts without CUDA (gloo backend).

    mmengine 0.10.7's pytorch launcher calls ``torch.cuda.set_device`` unconditionally and its
    default DDP wrapper passes ``device_ids=[LOCAL_RANK]``; both fail with a CPU-only torch.
    When (and only when) CUDA is unavailable, initialise the process group with gloo ourselves
    (mmengine then skips its own init) and wrap with ``device_ids=None``. GPU runs are left
    exactly as mmengine does them.

    Args:
        cfg (Config): the run's config (``launcher``, ``env_cfg``, ``model_wrapper_cfg``).

    Returns:
        bool: whether the CPU path was taken.
    """
    import os

    import torch.distributed as dist
    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available():
        return False
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo', rank=int(os.environ['RANK']),
                                world_size=int(os.environ['WORLD_SIZE']))
    wrapper = dict(type='MMDistributedDataParallel', broadcast_buffers=False,
                   find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper.update(cfg.get('model_wrapper_cfg') or {})
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    return True


def apply() -> None:
    """Apply every fix (idempotent)."""
    _patch_numpy_float()
    allow_mmengine_checkpoints()


apply()
