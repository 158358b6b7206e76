"""Convert Detectron2's LVIS category lists into the json files shipped beside this script.

    python tools/make_lvis_categories.py DETECTRON2_DIR

DETECTRON2_DIR holds ``detectron2/data/datasets/lvis_v1_categories.py`` and
``lvis_v0_5_categories.py`` (Detectron2, Copyright (c) Facebook, Inc. and its affiliates,
Apache License 2.0). Those files hold the ``categories`` list of the LVIS v1 / v0.5 annotation
files without ``image_count`` and ``instance_count``; the literal is read with
:func:`ast.literal_eval` (nothing of the file is executed). Checked on the way: ids 1..N in
order, the published group sizes (v1: 405 frequent, 461 common, 337 rare; v0.5: 315 / 461 /
454) and, when mmdet is installed, the names against mmdet's ``LVISV1Dataset`` /
``LVISV05Dataset`` class lists (mmdet's label order; mmdet corrects one typo of the LVIS
files, 'speaker_(stero_equipment)', which is kept here as LVIS spells it).
"""
from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / 'analysis' / 'data'  # where the json files go
# the LVIS files spell this category 'stero'; mmdet's class list corrects it (same label)
KNOWN_RENAMES = {('speaker_(stero_equipment)', 'speaker_(stereo_equipment)')}
SOURCES = {
    'v1': ('lvis_v1_categories.py', 'lvis_v1_categories.json', 1203,
           {'f': 405, 'c': 461, 'r': 337}, 'LVISV1Dataset'),
    'v0.5': ('lvis_v0_5_categories.py', 'lvis_v0.5_categories.json', 1230,
             {'f': 315, 'c': 461, 'r': 454}, 'LVISV05Dataset'),
}


def read_categories(path: Path) -> list[dict]:
    """The ``LVIS_CATEGORIES = [...]`` literal of a Detectron2 category file."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets
                                             if isinstance(t, ast.Name)] == ['LVIS_CATEGORIES']:
            return ast.literal_eval(node.value)
    raise ValueError(f'{path}: no LVIS_CATEGORIES list')


def convert(src: Path, version: str) -> dict:
    _, _, size, groups, dataset = SOURCES[version]
    cats = read_categories(src)
    ids = [c['id'] for c in cats]
    if ids != list(range(1, size + 1)):
        raise ValueError(f'{src}: ids are not 1..{size} in order')
    found = {g: sum(c['frequency'] == g for c in cats) for g in groups}
    if found != groups:
        raise ValueError(f'{src}: group sizes {found}, expected {groups}')
    try:
        import mmdet.datasets as ds
        classes = getattr(ds, dataset).METAINFO['classes']
        diff = {(c['name'], m) for c, m in zip(cats, classes) if c['name'] != m}
        if len(classes) != size or diff - KNOWN_RENAMES:
            raise ValueError(f'{src}: names differ from mmdet {dataset}: {sorted(diff)[:3]}')
    except ImportError:
        print('mmdet not installed: names not cross-checked', file=sys.stderr)
    return dict(
        source=f'Detectron2 detectron2/data/datasets/{src.name} (Copyright (c) Facebook, Inc. '
               'and its affiliates; Apache License 2.0), converted by '
               'tools/make_lvis_categories.py',
        lvis_version=version,
        note='category ids, names and r/c/f groups of the LVIS annotation files; '
             'image_count and instance_count are not part of the source',
        categories=[dict(id=c['id'], name=c['name'], frequency=c['frequency'],
                         synset=c['synset']) for c in cats])


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    folder = Path(argv[0]) / 'detectron2' / 'data' / 'datasets'
    for version, (src, dst, *_) in SOURCES.items():
        data = convert(folder / src, version)
        cats = data.pop('categories')
        head = json.dumps(data, indent=1, ensure_ascii=False)[:-2]  # one category a line
        body = ',\n'.join('  ' + json.dumps(c, ensure_ascii=False) for c in cats)
        (HERE / dst).write_text(f'{head},\n "categories": [\n{body}\n ]\n}}\n')
        print(f'wrote {dst}: {len(cats)} categories')
    return 0


if __name__ == '__main__':
    sys.exit(main())
