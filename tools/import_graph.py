"""Print the import graph of the project and check its layering rules.

    python tools/import_graph.py [--root DIR] [--files] [--check]

Reads every ``.py`` file under ``projects/``, ``lt_digits/``, ``analysis/``, ``toy_mnist/``,
``tools/`` and ``benchmarks/`` of ROOT (default: this checkout; give another checkout to compare
layouts) with :mod:`ast`, nothing is imported or run. Prints the arrows between parts (the loss
core, the other ``projects/c2am`` modules, the mmdet plugin, each subproject), module-level and
lazy (inside a function) imports alike, the circles among files, and the rules:

* the loss core (``projects/c2am/c2am``) imports nothing of the project but itself, and no
  mmdet / mmcv / mmengine;
* the subprojects (``analysis``, ``lt_digits``, ``toy_mnist``) never import each other, nor
  does ``projects/`` import them; ``analysis`` never imports mmdet or the plugin;
* no file imports another that imports it back (no circles).

``--check`` exits 1 when a rule is broken.
"""
from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOTS = ('projects', 'lt_digits', 'analysis', 'toy_mnist', 'tools', 'benchmarks')
SUBPROJECTS = ('analysis', 'lt_digits', 'toy_mnist')
MM = ('mmdet', 'mmcv', 'mmengine')


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def part_of(module: str) -> str:
    """The part a module belongs to (what the summary graph draws)."""
    if module.startswith('projects.c2am.c2am'):
        return 'core (projects/c2am/c2am)'
    if module.startswith('projects.c2am.mmdet_plugin'):
        return 'mmdet plugin'
    if module.startswith('projects'):
        return 'projects/c2am (shared)'
    top = module.split('.')[0]
    return top if top in ROOTS else module.split('.')[0]


def imports_of(path: Path, module: str, is_package: bool):
    """Yield ``(imported module, lazy)`` for every import statement of the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if is_package else module.rpartition('.')[0]
    lazy_nodes = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lazy_nodes.update(id(n) for n in ast.walk(node) if n is not node)
    for node in ast.walk(tree):
        lazy = id(node) in lazy_nodes
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, lazy
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ''
            for alias in node.names:
                yield (f'{target}.{alias.name}', lazy)


def read_graph(root: Path) -> tuple[dict, set]:
    files = {}
    for top in ROOTS:
        for path in sorted((root / top).rglob('*.py')) if (root / top).is_dir() else []:
            files[module_name(root, path)] = path
    edges = defaultdict(set)  # module -> {(target module, lazy)}
    external = defaultdict(set)
    for module, path in files.items():
        for target, lazy in imports_of(path, module, path.name == '__init__.py'):
            resolved = target
            while resolved and resolved not in files:
                resolved = resolved.rpartition('.')[0]
            if resolved and resolved != module:
                edges[module].add((resolved, lazy))
            elif not resolved and target.split('.')[0] in MM:
                external[module].add(target.split('.')[0])
    return dict(edges), (files, external)


def circles(edges: dict) -> list[list[str]]:
    """Strongly connected groups of more than one file (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w, _ in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def broken_rules(edges: dict, external: dict) -> list[str]:
    broken = []
    for module, targets in edges.items():
        src = part_of(module)
        for target, _ in targets:
            dst = part_of(target)
            if src.startswith('core') and not dst.startswith('core'):
                broken.append(f'the loss core imports {target} ({module})')
            if src in SUBPROJECTS and dst in SUBPROJECTS and src != dst:
                broken.append(f'subproject {src} imports subproject {dst} ({module} -> {target})')
            if src not in SUBPROJECTS + ('tools', 'benchmarks') and dst in SUBPROJECTS:
                broken.append(f'the library leans on subproject {dst} ({module} -> {target})')
            if src == 'analysis' and dst == 'mmdet plugin':
                broken.append(f'analysis imports the mmdet plugin ({module} -> {target})')
    for module, libs in external.items():
        src = part_of(module)
        if src.startswith('core') or (src == 'analysis' and 'mmdet' in libs):
            broken.append(f'{module} imports {", ".join(sorted(libs))}')
    return broken


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--root', type=Path, default=Path(__file__).resolve().parents[1],
                   help='checkout to read (default: this one)')
    p.add_argument('--files', action='store_true', help='also list every file-level arrow')
    p.add_argument('--check', action='store_true', help='exit 1 when a rule is broken')
    args = p.parse_args(argv)
    if not (args.root / 'projects').is_dir():
        print(f'error: {args.root} is not a checkout of this project (no projects/)',
              file=sys.stderr)
        return 2
    edges, (files, external) = read_graph(args.root)
    parts = defaultdict(lambda: [0, 0])
    for module, targets in edges.items():
        for target, lazy in targets:
            a, b = part_of(module), part_of(target)
            if a != b:
                parts[(a, b)][1 if lazy else 0] += 1
    print(f'import graph of {args.root} ({len(files)} files)')
    print('parts (A -> B: module-level imports + lazy imports inside functions):')
    for (a, b), (eager, lazy) in sorted(parts.items()):
        print(f'  {a:28s} -> {b:28s} {eager:3d} + {lazy} lazy')
    mm = defaultdict(set)
    for module, libs in external.items():
        mm[part_of(module)] |= libs
    print('OpenMMLab imports by part: ' + '; '.join(
        f'{k}: {", ".join(sorted(v))}' for k, v in sorted(mm.items())))
    if args.files:
        print('files:')
        for module in sorted(edges):
            for target, lazy in sorted(edges[module]):
                print(f'  {module} -> {target}{" (lazy)" if lazy else ""}')
    loops = circles(edges)
    print(f'circles: {len(loops)}' + ''.join(f'\n  {" <-> ".join(g)}' for g in loops))
    broken = broken_rules(edges, external) + [f'circle: {" <-> ".join(g)}' for g in loops]
    print(f'rules broken: {len(broken)}' + ''.join(f'\n  {b}' for b in broken))
    return 1 if args.check and broken else 0


if __name__ == '__main__':
    sys.exit(main())
