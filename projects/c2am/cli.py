"""Command-line plumbing shared by every script of the project (no mmdet needed).

* :class:`UserError`: a problem with the user's arguments or files. :func:`run_cli` prints it as
  one line ``error: ...`` and returns exit status 2, never a traceback.
* argparse ``type=`` checkers (:func:`positive_int`, :func:`finite_float`, ...): a wrong value
  is reported by argparse as one usage line, exit status 2, before anything runs.
* :func:`check_output_location`: refuse an output path whose folder can not be created (a
  parent that is a file, no permission) before any work is done.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path


class UserError(Exception):
    """A user-facing problem with an argument or an input file (one line, exit status 2)."""


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run ``main(argv)``; a :class:`UserError` becomes ``error: <message>`` and status 2,
    Ctrl-C status 130. Other exceptions are bugs and keep their traceback."""
    try:
        return int(main(argv) or 0)
    except UserError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130


def _number(text: str, kind: type, what: str):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f'expected {what}, got {text!r}') from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f'expected {what}, got {text!r}')
    return value


def finite_float(text: str) -> float:
    """A finite float (no nan / inf)."""
    return _number(text, float, 'a finite number')


def _bounded(text: str, kind: type, what: str, ok: Callable) -> float | int:
    """``_number`` plus a range test ``ok(value)``; the message names the range (``what``)."""
    value = _number(text, kind, what)
    if not ok(value):
        raise argparse.ArgumentTypeError(f'expected {what}, got {text!r}')
    return value


def positive_float(text: str) -> float:
    """A finite float > 0."""
    return _bounded(text, float, 'a finite number > 0', lambda v: v > 0)


def nonnegative_float(text: str) -> float:
    """A finite float >= 0."""
    return _bounded(text, float, 'a finite number >= 0', lambda v: v >= 0)


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _bounded(text, int, 'an integer >= 1', lambda v: v >= 1)


def nonnegative_int(text: str) -> int:
    """An integer >= 0."""
    return _bounded(text, int, 'an integer >= 0', lambda v: v >= 0)


def existing_file(text: str) -> Path:
    """A path to an existing regular file."""
    path = Path(text)
    if not path.is_file():
        what = 'a directory' if path.is_dir() else 'not found'
        raise argparse.ArgumentTypeError(f'{text}: {what}, expected a file')
    return path


def existing_dir(text: str) -> Path:
    """A path to an existing directory."""
    path = Path(text)
    if not path.is_dir():
        what = 'a file' if path.exists() else 'not found'
        raise argparse.ArgumentTypeError(f'{text}: {what}, expected a directory')
    return path


def check_output_location(path: str | os.PathLike, *, is_dir: bool = False) -> Path:
    """Raise :class:`UserError` unless ``path`` can be written: every existing ancestor is a
    writable directory, and ``path`` itself is not of the other kind (a file where a directory
    is wanted or the reverse). Touches nothing on disk.

    Returns:
        Path: ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    if path.exists() and path.is_dir() != is_dir:
        kind = 'a directory' if path.is_dir() else 'a file'
        raise UserError(f'{path} is {kind}; expected {"a directory" if is_dir else "a file"}')
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f'can not write {path}: {parent} is a file, not a directory')
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f'can not write {path}: no write permission in {parent}')
    return path


def int_in_range(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type=`` for an integer in ``[low, high]``.

    Args:
        low (int): smallest accepted value.
        high (int): largest accepted value.

    Returns:
        Callable[[str], int]: the checker.
    """
    what = f'an integer in {low}..{high}'

    def check(text: str) -> int:
        return _bounded(text, int, what, lambda v: low <= v <= high)

    check.__name__ = f'int_in_{low}_{high}'
    return check


def torch_device(text: str) -> str:
    """A torch device this machine has: ``auto`` (a GPU when present), ``cpu``, ``cuda`` or
    ``cuda:N``. Returns the text unchanged."""
    name = text.strip().lower()
    if name in ('auto', 'cpu'):
        return name
    kind, _, index = name.partition(':')
    if kind != 'cuda' or (index and not index.isdigit()):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}")
    import torch
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not available:
        raise argparse.ArgumentTypeError(f'{text!r}: no CUDA device is available here; use '
                                         '--device cpu (or auto)')
    if index and int(index) >= available:
        raise argparse.ArgumentTypeError(f'{text!r}: only {available} CUDA device(s) here '
                                         f'(cuda:0..cuda:{available - 1})')
    return name


def resolve_device(name: str):
    """The ``torch.device`` of a :func:`torch_device` value: ``auto`` is a GPU when present."""
    import torch
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    return torch.device(name)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are :class:`UserError` (one line through
    :func:`run_cli`, exit status 2) instead of a usage block and ``SystemExit``."""

    def error(self, message: str):
        """Raise :class:`UserError` for a bad command line.

        Raises:
            UserError: always, with argparse's message and a pointer to ``--help``.
        """
        raise UserError(f'{message} (see {self.prog} --help)')
