"""What ``tools/train.py`` and ``tools/test.py`` check before an mmengine Runner touches the disk.

* :class:`CfgOptionsAction`: mmengine's ``--cfg-options`` parser, with a malformed item
  (``key`` without ``=``, unbalanced brackets) reported by argparse as a usage error;
* :func:`load_config`: a config that does not parse, an option that does not merge, or a config
  without a model is a :class:`~projects.c2am.cli.UserError`, not a traceback;
* :func:`build_model` / :func:`check_checkpoint_fits`: a checkpoint is loaded safely
  (:func:`~projects.c2am.safe_load.load_torch`) and compared key by key, shape by shape with
  the model the config builds; one that does not fit is an error unless a partial load is
  asked for explicitly;
* :class:`StopOnInvalidLoss`: training stops with one clear line at the first iteration whose
  loss is NaN or infinite (before a checkpoint of NaN weights is written).

Needs mmengine (imported lazily); no mmdet import here (the config's ``custom_imports`` and
default scope bring in what it uses).
"""
from __future__ import annotations

import re
from pathlib import Path

from .cli import UserError
from .safe_load import load_torch


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f'{type(err).__name__}: {text[0][:200]}' if text else type(err).__name__


def cfg_options_action():
    """``--cfg-options`` action: mmengine's ``DictAction`` with argparse errors for bad items."""
    from mmengine.config import DictAction

    class CfgOptionsAction(DictAction):
        def __call__(self, parser, namespace, values, option_string=None):
            for kv in values or []:
                key = kv.split('=', 1)[0]
                if '=' not in kv or not re.fullmatch(r'[A-Za-z_][\w.]*', key):
                    parser.error(f'{option_string}: {kv!r} is not KEY=VALUE (e.g. '
                                 'train_cfg.max_iters=10)')
                try:
                    self._parse_iterable(kv.split('=', 1)[1])
                except (AssertionError, ValueError, IndexError) as err:
                    parser.error(f'{option_string}: {kv!r}: {_first_line(err)}')
            super().__call__(parser, namespace, values, option_string)

    return CfgOptionsAction


def load_config(path: str | Path, cfg_options: dict | None = None):
    """Load a config file and merge ``--cfg-options`` into it.

    Args:
        path: the config (``.py``, ``.json`` or ``.yaml``, as mmengine reads them).
        cfg_options (dict, optional): parsed ``--cfg-options``.

    Returns:
        Config: the merged config.

    Raises:
        UserError: the file does not load (syntax error, garbage, a failing import), an option
            does not merge, or the result has no ``model`` dict with a ``type``.
    """
    from mmengine.config import Config
    path = Path(path)
    if not path.is_file():
        raise UserError(f'config not found: {path}')
    try:
        cfg = Config.fromfile(str(path))
    except Exception as err:  # the config is the user's code: any failure is theirs to fix
        raise UserError(f'{path}: the config does not load ({_first_line(err)})') from None
    if cfg_options:
        try:
            cfg.merge_from_dict(cfg_options)
        except Exception as err:
            raise UserError(f'--cfg-options do not apply to {path.name} '
                            f'({_first_line(err)})') from None
    model = cfg.get('model')
    if not isinstance(model, dict) or 'type' not in model:
        raise UserError(f'{path}: the config defines no model (a dict with a "type"); is it a '
                        'detector config?')
    return cfg


def build_model(cfg):
    """Build ``cfg.model`` in the config's default scope (no weights loaded, nothing written).

    Raises:
        UserError: the model does not build from the config.
    """
    from mmengine.registry import MODELS, init_default_scope
    try:
        init_default_scope(cfg.get('default_scope', 'mmdet'))
        return MODELS.build(cfg.model)
    except Exception as err:
        raise UserError(f'the model of the config does not build ({_first_line(err)})') \
            from None


def checkpoint_state_dict(path: str | Path) -> dict:
    """The state_dict of a checkpoint, loaded without running code (``module.`` prefixes of
    DDP-saved checkpoints removed, as mmengine does).

    Raises:
        UserError: not a readable checkpoint, or no state_dict of tensors in it.
    """
    import torch
    obj = load_torch(path)
    state = obj.get('state_dict', obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise UserError(f'{path}: not a model checkpoint (no state_dict of tensors)')
    return {re.sub(r'^module\.', '', k): v for k, v in state.items()}


def check_checkpoint_fits(model, path: str | Path, *, allow_partial: bool) -> str:
    """Compare a checkpoint's state_dict with ``model``'s, key by key and shape by shape.

    Args:
        model (nn.Module): the model the config builds.
        path: the checkpoint.
        allow_partial (bool): accept a checkpoint that fits only in part (at least one key).

    Returns:
        str: one line saying how many keys matched.

    Raises:
        UserError: the checkpoint does not fit (missing keys, other shapes, keys the model
            lacks) and ``allow_partial`` is False; or nothing at all matches.
    """
    state = checkpoint_state_dict(path)
    own = model.state_dict()
    matched = [k for k in own if k in state and tuple(state[k].shape) == tuple(own[k].shape)]
    missing = [k for k in own if k not in state]
    shape = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    extra = [k for k in state if k not in own]
    summary = f'{len(matched)} of {len(own)} model keys match'
    if not (missing or shape or extra):
        return f'{path}: all {len(own)} keys fit the model'
    parts = []
    if missing:
        parts.append(f'{len(missing)} missing (e.g. {missing[0]})')
    if shape:
        k = shape[0]
        parts.append(f'{len(shape)} of another shape (e.g. {k}: {list(state[k].shape)} in the '
                     f'checkpoint, {list(own[k].shape)} in the model)')
    if extra:
        parts.append(f'{len(extra)} not in the model (e.g. {extra[0]})')
    detail = f'{path} does not fit the model of the config: {summary}; ' + ', '.join(parts)
    if not matched:
        raise UserError(detail + '; is it a checkpoint of this config?')
    if not allow_partial:
        raise UserError(detail + '; pass --allow-partial-load to load the matching keys anyway')
    return f'partial load: {summary} ({", ".join(parts)})'


def stop_on_invalid_loss():
    """A hook (priority VERY_HIGH) that stops training at the first non-finite loss.

    Registered by ``tools/train.py`` on every run; it runs before the checkpoint hook, so no
    checkpoint of NaN weights is written. It raises :class:`InvalidLoss`, a
    :class:`~projects.c2am.cli.UserError`: one line, exit status 2.
    """
    import torch
    from mmengine.hooks import Hook

    class StopOnInvalidLoss(Hook):
        priority = 'VERY_HIGH'

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            if not isinstance(outputs, dict) or outputs.get('loss') is None:
                return
            values = {k: torch.as_tensor(v).detach() for k, v in outputs.items()
                      if k.startswith('loss')}
            if bool(torch.isfinite(values['loss']).all()):
                return
            bad = {k: float(v.float().mean()) for k, v in values.items()
                   if not bool(torch.isfinite(v).all())}
            parts = ', '.join(f'{k}={v}' for k, v in bad.items())
            raise InvalidLoss(f'training stopped at iteration {runner.iter + 1}: the loss is not '
                              f'finite ({parts}); lower the learning rate, enable gradient '
                              'clipping (optim_wrapper.clip_grad) or check the data; the '
                              'checkpoints written so far are kept')

    return StopOnInvalidLoss()


class InvalidLoss(UserError):
    """Training produced a NaN or infinite loss."""
