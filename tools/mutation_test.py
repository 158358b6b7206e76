"""Mutation testing of the loss core and the mmdet head with mutmut (a tool, not run in CI).

mutmut (``pip install mutmut==3.8.1``, the ``mutation`` extra) copies ``projects/`` to
``mutants/``, plants one small change at a time in ``projects/c2am/c2am/*.py`` and
``projects/c2am/mmdet_plugin/c2am_bbox_head.py`` and runs the quick tests (``-m "not slow"``)
that cover the changed function; its settings are ``[tool.mutmut]`` in ``pyproject.toml``.
A mutant is killed when a test fails. This script runs it, then prints the score and every
survivor, and checks the survivors against ``[tool.c2am-mutation] equivalent`` in
``pyproject.toml``: mutants shown to change nothing a user can observe, each with its reason.

Usage (from the repository root; ~20 min on one core, results cached in ``mutants/``)::

    OMP_NUM_THREADS=1 .venv/bin/python tools/mutation_test.py [--max-children 1] [--diffs]
    .venv/bin/python tools/mutation_test.py --report-only   # the last run's results again

Exit status 1 when the score is below ``--min-score`` (95 %) or a survivor is not listed as
equivalent.
"""
from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
DETECTED = ('killed', 'timeout', 'segfault')  # a test run noticed the change


def mutmut(*args: str, capture: bool = False) -> str:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'))
    proc = subprocess.run([sys.executable, '-m', 'mutmut', *args], cwd=ROOT, env=env,
                          text=True, capture_output=capture, check=False)
    if proc.returncode != 0:
        raise SystemExit(f'mutmut {" ".join(args)} failed with status {proc.returncode}'
                         + (f':\n{proc.stderr}' if capture else ''))
    return proc.stdout if capture else ''


def statuses() -> dict[str, str]:
    """``{mutant name: status}`` of every generated mutant."""
    out = {}
    for line in mutmut('results', '--all', 'true', capture=True).splitlines():
        name, sep, status = line.strip().rpartition(': ')
        if sep and name:
            out[name] = status
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--max-children', type=int, default=1,
                        help='mutants tested in parallel (default 1)')
    parser.add_argument('--report-only', action='store_true',
                        help='do not run; report the results cached in mutants/')
    parser.add_argument('--diffs', action='store_true', help='print the diff of each survivor')
    parser.add_argument('--min-score', type=float, default=95.0)
    args = parser.parse_args(argv)

    config = tomllib.loads((ROOT / 'pyproject.toml').read_text())
    selected = set(config['tool']['mutmut']['pytest_add_cli_args_test_selection'])
    missing = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob('tests/test_loss_core_*.py')
                     if str(p.relative_to(ROOT)) not in selected)
    if missing:
        print(f'add to [tool.mutmut] pytest_add_cli_args_test_selection: {missing}')
        return 1
    if not args.report_only:
        mutmut('run', '--max-children', str(args.max_children))
    result = statuses()
    if not result:
        print('no mutants found: run without --report-only first')
        return 1
    equivalent = set(config.get('tool', {}).get('c2am-mutation', {}).get('equivalent', []))

    counts = collections.Counter(result.values())
    by_file = collections.defaultdict(collections.Counter)
    for name, status in result.items():
        by_file[name.split('.x')[0].rsplit('__mutmut', 1)[0]][status in DETECTED] += 1
    survivors = sorted(name for name, status in result.items() if status not in DETECTED)
    unexplained = [name for name in survivors if name not in equivalent]
    stale = sorted(equivalent - set(survivors))
    killed = sum(counts[s] for s in DETECTED)
    total = len(result)
    score = 100.0 * killed / total
    adjusted = 100.0 * killed / max(1, total - (len(survivors) - len(unexplained)))

    print('\nper module (killed / generated):')
    for module in sorted(by_file):
        c = by_file[module]
        print(f'  {module:40s} {c[True]:4d} / {c[True] + c[False]:4d}')
    print('\nstatuses: ' + ', '.join(f'{k} {v}' for k, v in sorted(counts.items())))
    print(f'survivors ({len(survivors)}; {len(survivors) - len(unexplained)} listed as '
          f'equivalent in pyproject.toml):')
    for name in survivors:
        mark = '  equivalent' if name in equivalent else '  NOT EXPLAINED'
        print(f'  {result[name]:9s} {name}{mark}')
        if args.diffs:
            print(mutmut('show', name, capture=True))
    if stale:
        print('listed as equivalent but not surviving (remove from the list):')
        for name in stale:
            print(f'  {name}')
    print(f'\nmutation score: {killed} / {total} killed = {score:.1f} %; '
          f'excluding the {len(survivors) - len(unexplained)} equivalent mutants: '
          f'{adjusted:.1f} %; unexplained survivors: {len(unexplained)}')
    return 0 if score >= args.min_score and not unexplained else 1


if __name__ == '__main__':
    sys.exit(main())
