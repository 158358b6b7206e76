"""Writing results without losing what is already on disk (no mmdet needed).

Rules every script follows through this module:

* check before touching the disk: :func:`prepare_output_dir` / :func:`check_output_files` raise
  :class:`~projects.c2am.cli.UserError` for an existing output without ``--force``, an unwritable
  location, or (with ``--force``) a folder holding files the project did not write;
* write into a temporary sibling and swap it in only when the run has succeeded
  (:func:`atomic_output_dir`, :func:`write_atomic`): a failed or interrupted run leaves the old
  output exactly as it was, and no half-written file under the final name;
* a group of files that belong together (a figure as .png, .pdf and .json) is written to
  temporaries and renamed only when all of them exist (:func:`atomic_output_files`);
* never delete a file the project did not write: an output folder carries a manifest
  (``MANIFEST``) of the files written into it, and ``--force`` replaces a folder only when every
  file in it is listed there.
"""
from __future__ import annotations

import glob
import json
import math
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .cli import UserError, check_output_location

MANIFEST = '.c2am-outputs.json'


def _listing(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob('*')
            if p.is_file() or p.is_symlink()} - {MANIFEST}


def _owned(folder: Path) -> set[str]:
    try:
        return set(json.loads((folder / MANIFEST).read_text())['files'])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def prepare_output_dir(folder: str | os.PathLike, *, force: bool) -> Path:
    """Check that ``folder`` may be (re)written; touches nothing.

    Allowed: a missing or empty folder; with ``force``, a folder whose every file is listed in
    its manifest (written by this project).

    Raises:
        UserError: otherwise, naming what is in the way.
    """
    folder = check_output_location(folder, is_dir=True)
    if not folder.exists():
        return folder
    present = _listing(folder)
    if not present:
        return folder
    if not force:
        raise UserError(f'{folder} already holds results; pass --force to replace them or '
                        'choose another output folder')
    foreign = sorted(present - _owned(folder))
    if foreign:
        raise UserError(f'{folder} holds files this tool did not write (e.g. {foreign[0]}); '
                        '--force only replaces its own outputs: remove them or choose another '
                        'output folder')
    return folder


def _remove_stale_temporaries(folder: Path) -> None:
    for stale in folder.parent.glob(f'.{folder.name}.tmp-*'):
        pid = stale.name.rsplit('-', 2)[-2]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def atomic_output_dir(folder: str | os.PathLike, *, force: bool) -> Iterator[Path]:
    """Yield a fresh temporary sibling of ``folder`` to write into; on success it replaces
    ``folder`` (with a manifest of its files), on any exception it is removed and ``folder``
    stays as it was.

    Call :func:`prepare_output_dir` first (the same check runs here again).
    """
    folder = prepare_output_dir(folder, force=force).resolve()  # a linked folder: its target
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(folder)
    tmp = folder.parent / f'.{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}'
    tmp.mkdir()
    try:
        yield tmp
        (tmp / MANIFEST).write_text(json.dumps({'files': sorted(_listing(tmp))}, indent=1))
        old = None
        if folder.exists():
            prepare_output_dir(folder, force=force)  # nothing foreign appeared meanwhile
            old = folder.parent / f'.{folder.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}'
            folder.rename(old)
        tmp.rename(folder)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_output_files(paths, *, force: bool) -> list[Path]:
    """Check that each of ``paths`` may be written; touches nothing.

    Raises:
        UserError: a path exists (without ``force``), is a directory, or can not be written.
    """
    out = []
    for path in map(Path, paths):
        check_output_location(path)
        if path.exists() and not force:
            raise UserError(f'{path} exists; pass --force to overwrite it')
        out.append(path)
    return out


def _temporary_for(path: Path) -> Path:
    # keeps the suffix: writers such as matplotlib's savefig choose the format by it
    return path.parent / f'.{path.stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}'


def _remove_stale_files(path: Path) -> None:
    # temporaries of runs that were killed (SIGKILL, power loss) before they could clean up
    for stale in path.parent.glob(f'.{glob.escape(path.stem)}.tmp-*'):
        pid = stale.name[len(path.stem) + 6:].split('-', 1)[0]
        if stale.is_file() and pid.isdigit() and not _alive(int(pid)):
            stale.unlink(missing_ok=True)


@contextmanager
def atomic_output_files(paths, *, force: bool) -> Iterator[list[Path]]:
    """Yield one temporary sibling per path (same suffix) to write into; when the block
    succeeds each is renamed to its path, on any exception all are removed and the paths stay
    as they were.

    Args:
        paths: the final files.
        force (bool): whether existing files may be replaced (checked here again, with
            :func:`check_output_files`).

    Raises:
        UserError: a path is not writable or exists without ``force``; or the block did not
            write every temporary.
    """
    finals = check_output_files(paths, force=force)
    for path in finals:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_files(path)
    tmps = [_temporary_for(p) for p in finals]
    try:
        yield tmps
        missing = [f for f, t in zip(finals, tmps) if not t.is_file()]
        if missing:
            raise UserError(f'{missing[0]} was not produced; nothing was written')
        for tmp, path in zip(tmps, finals):
            os.replace(tmp, path)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` to a temporary sibling, then rename it to ``path`` (never half a file).

    Check the path first with :func:`check_output_files`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_files(path)
    tmp = _temporary_for(path)
    try:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def dumps_json(obj, **kwargs) -> str:
    """``json.dumps`` that refuses NaN / Infinity (not JSON; most readers reject them).

    Raises:
        ValueError: a non-finite float in ``obj``; callers turn missing values into ``None``.
    """
    return json.dumps(obj, allow_nan=False, **kwargs)


def nan_to_none(obj):
    """A copy of ``obj`` (dicts, lists, tuples of plain values) with every NaN or infinite
    float replaced by ``None``, ready for :func:`dumps_json`; use it where a missing value is
    expected (an empty group, a metric a run did not log)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [nan_to_none(v) for v in obj]
    return obj


def repoint(tmp: str | os.PathLike, final: str | os.PathLike,
            names: tuple[str, ...] = ('last_checkpoint',)) -> None:
    """In the small text files called ``names`` under ``tmp`` (mmengine's ``last_checkpoint``
    holds an absolute path), replace the path of ``tmp`` by that of ``final``, so that they
    are right once :func:`atomic_output_dir` has renamed ``tmp`` to ``final``."""
    tmp, final = Path(tmp).absolute(), Path(final).absolute()
    for name in names:
        for path in tmp.rglob(name):
            text = path.read_text()
            if str(tmp) in text:
                path.write_text(text.replace(str(tmp), str(final)))
