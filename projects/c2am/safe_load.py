"""Reading pickled files without running code from them (no mmdet needed).

A pickle names functions that the reader calls; ``pickle.load`` on a file from anywhere can
therefore run any command. Result pickles (``tools/test.py --out``, mmdet's ``DumpDetResults``)
hold only plain data: builtins, numpy arrays and scalars, torch tensors. :func:`load_pickle`
resolves exactly those and refuses everything else with :class:`UnsafePickleError`.

Checkpoints go through :func:`load_torch`: ``torch.load(weights_only=True)`` (zip and legacy
format), plus the allow-list of mmengine's own types from :mod:`projects.c2am.compat`.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path

from .cli import UserError


class UnsafePickleError(UserError):
    """The file asks the unpickler for something that is not plain data."""


def _torch_storage_from_bytes(data: bytes):
    # torch pickles a storage as ``torch.storage._load_from_bytes(<torch.save bytes>)``, which
    # calls torch.load(weights_only=False) on the inner archive: load it safely instead.
    import torch
    return torch.load(io.BytesIO(data), weights_only=True)


def _allowed() -> dict:
    import builtins
    import collections

    import numpy as np
    allowed = {('builtins', n): getattr(builtins, n)
               for n in ('dict', 'list', 'tuple', 'set', 'frozenset', 'bytearray', 'complex',
                         'int', 'float', 'bool', 'str', 'bytes', 'slice', 'range')}
    allowed[('collections', 'OrderedDict')] = collections.OrderedDict
    allowed[('numpy', 'ndarray')] = np.ndarray
    allowed[('numpy', 'dtype')] = np.dtype
    try:
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core import multiarray
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):  # numpy 2 / 1 pickles
        allowed[(module, '_reconstruct')] = multiarray._reconstruct
        allowed[(module, 'scalar')] = multiarray.scalar
    for name in dir(np.dtypes):
        if name.endswith('DType'):
            allowed[('numpy.dtypes', name)] = getattr(np.dtypes, name)
    try:
        import torch
        import torch._utils
    except ImportError:  # pragma: no cover - torch is a dependency
        return allowed
    allowed[('torch._utils', '_rebuild_tensor_v2')] = torch._utils._rebuild_tensor_v2
    allowed[('torch._utils', '_rebuild_tensor')] = torch._utils._rebuild_tensor
    allowed[('torch._utils', '_rebuild_parameter')] = torch._utils._rebuild_parameter
    allowed[('torch.storage', '_load_from_bytes')] = _torch_storage_from_bytes
    allowed[('torch', 'Size')] = torch.Size
    for name in ('float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8',
                 'uint8', 'bool'):
        allowed[('torch', name)] = getattr(torch, name)
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):

    def __init__(self, file, path: Path):
        super().__init__(file)
        self._path = path
        self._allowed = _allowed()

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f'{self._path}: refused to load, the pickle asks for {module}.{name}, which is '
                'not plain data (only builtins, numpy arrays and torch tensors are read)') \
                from None


def load_pickle(path: str | Path):
    """Load a pickle of plain data (builtins, numpy arrays/scalars, torch tensors).

    Args:
        path: the file.

    Returns:
        The unpickled object.

    Raises:
        UnsafePickleError: the pickle names any other function or class.
        UserError: the file is missing, empty, truncated or not a pickle.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f'file not found: {path}')
    try:
        with open(path, 'rb') as f:
            return _RestrictedUnpickler(f, path).load()
    except UserError:
        raise
    except Exception as err:  # EOFError, UnpicklingError, ValueError, ...
        reason = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise UserError(f'{path}: not a readable pickle ({reason})') from None


def load_torch(path: str | Path):
    """``torch.load`` with ``weights_only=True`` (zip or legacy format) on the CPU, allowing
    mmengine's checkpoint types (see :mod:`projects.c2am.compat`) when mmengine is installed.

    Raises:
        UserError: missing, not a checkpoint, corrupt, or asks for types outside the allow-list.
    """
    import torch
    path = Path(path)
    if not path.is_file():
        raise UserError(f'checkpoint not found: {path}')
    try:
        from . import compat
        compat.allow_mmengine_checkpoints()
    except ImportError:  # no mmengine: plain state_dicts still load
        pass
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        asks = [line for line in lines if 'GLOBAL' in line or 'nsupported global' in line]
        if asks:  # the file names a function or class: code, or a type not allow-listed
            raise UserError(f'{path}: refused to load, it needs types outside the safe '
                            f'allow-list ({asks[0][:160]})') from None
        reason = lines[-1][:160] if lines else 'unreadable pickle data'
        raise UserError(f'{path}: not a PyTorch checkpoint ({reason})') from None
    except Exception as err:  # truncated zip, text file, ...
        reason = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise UserError(f'{path}: not a readable PyTorch checkpoint ({reason})') from None
