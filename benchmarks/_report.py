"""The output side every benchmark shares: ``results.json`` + ``table.md`` in ``--out``,
``--force`` and ``--render-only``, with the project's safety rules (projects/c2am/outputs.py):
checked before anything touches the disk, written atomically, no NaN in JSON, and a report this
tool did not write is never overwritten (``results.json`` names its tool; ``table.md`` belongs
to the ``results.json`` beside it).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from projects.c2am.cli import UserError, check_output_location  # noqa: E402
from projects.c2am.outputs import dumps_json, write_atomic  # noqa: E402

RESULTS, TABLE = 'results.json', 'table.md'


def add_report_arguments(parser: argparse.ArgumentParser, default_out: Path,
                         force_help: str = 'replace an existing report of this benchmark') -> None:
    """Add ``--out``, ``--force`` and ``--render-only``."""
    parser.add_argument('--out', type=Path, default=default_out, help='output folder')
    parser.add_argument('--force', action='store_true', help=force_help)
    parser.add_argument('--render-only', action='store_true',
                        help=f'no training: re-write {TABLE} from the recorded results')


def _owner(out: Path) -> str | None:
    try:
        record = json.loads((out / RESULTS).read_text())
    except (OSError, ValueError):
        return None
    return record.get('tool') if isinstance(record, dict) else None


def check_report(out: Path, tool: str, *, force: bool, replace_own: bool = False) -> Path:
    """Check that the report in ``out`` may be written; touches nothing.

    Args:
        out (Path): output folder.
        tool (str): the benchmark's name, recorded in ``results.json``.
        force (bool): replace a report this tool wrote.
        replace_own (bool): replace one this tool wrote even without ``force`` (a benchmark
            whose report is a summary of resumable runs).

    Raises:
        UserError: ``out`` can not be written, a report file there was not written by
            ``tool``, or one was and neither ``force`` nor ``replace_own`` is set.
    """
    out = check_output_location(out, is_dir=True)
    present = [name for name in (RESULTS, TABLE) if (out / name).exists()]
    if not present:
        return out
    if _owner(out) != tool:
        raise UserError(f'{out / present[0]} was not written by {tool}; it is never '
                        'overwritten: move it or choose another --out')
    if not (force or replace_own):
        raise UserError(f'{out / RESULTS} exists; pass --force to replace it or choose another '
                        '--out')
    return out


def read_report(out: Path, tool: str) -> dict:
    """The record of ``out/results.json`` (for ``--render-only``).

    Raises:
        UserError: no readable ``results.json`` written by ``tool``.
    """
    path = out / RESULTS
    try:
        record = json.loads(path.read_text())
    except OSError:
        raise UserError(f'{path}: no results to render (run the benchmark first)') from None
    except ValueError as err:
        raise UserError(f'{path}: not valid JSON ({err})') from None
    if not isinstance(record, dict) or record.get('tool') != tool:
        raise UserError(f'{path} was not written by {tool}')
    return record


def write_report(out: Path, tool: str, record: dict, table: str) -> None:
    """Write ``results.json`` (``record`` plus its ``tool``) and ``table.md``, each atomically,
    and print the table. Check first with :func:`check_report`.

    Raises:
        ValueError: a NaN or infinity in ``record`` (JSON has none; use ``None``).
    """
    text = dumps_json(dict(record, tool=tool), indent=2)
    write_atomic(out / RESULTS, text)
    write_atomic(out / TABLE, table + '\n')
    print('\n' + table)
