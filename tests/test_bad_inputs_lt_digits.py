"""LT-Digits generation (make_dataset.py and the API), the demo's dataset reuse and arguments,
and tools/smoke_train.py under bad input: one line and exit status 2 before anything is
written, old outputs kept on failure or interruption, --force never deletes a user's file,
and a dataset is reused only when every generation setting matches."""
import gzip
import importlib.util
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lt_digits import generate, make_lt_digits
from lt_digits.generate import (
    GENERATION_DEFAULTS,
    GenerationError,
    check_dataset,
    check_generation_params,
    recorded_generation,
)
from projects.c2am.cli import run_cli
from projects.c2am.outputs import MANIFEST

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(max_images=30, min_images=1.0, image_size=48, progress=False)
TINY_FLAGS = ['--max-images', '30', '--min-images', '1', '--image-size', '48']


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_dataset = _load(ROOT / 'lt_digits' / 'make_dataset.py', 'make_dataset_cli')
demo = _load(ROOT / 'tools' / 'demo.py', 'demo_cli')


def run(module, argv, capsys):
    """Run a CLI in-process; returns ``(exit status, stderr)``."""
    status = run_cli(module.main, [str(a) for a in argv])
    return status, capsys.readouterr().err


def assert_one_line_error(status, err, *fragments):
    assert status == 2, err
    assert err.startswith('error: ') and err.count('\n') == 1, err
    assert 'Traceback' not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def snapshot(folder: Path) -> dict:
    """Every entry under ``folder`` (hidden ones and folders too), files with their bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() if p.is_file() else None
            for p in sorted(folder.rglob('*'))}


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """A small LT-Digits (seed 0, non-default size) to copy and damage."""
    root = tmp_path_factory.mktemp('tiny') / 'ltd'
    make_lt_digits(root, seed=0, **TINY)
    return root


def _copy(tiny: Path, dest: Path) -> Path:
    shutil.copytree(tiny, dest)
    return dest


# ---------------------------------------------------------------- make_dataset.py flags

def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b''.join(int(d).to_bytes(4, 'big')
                                                     for d in array.shape)
    with gzip.open(path, 'wb') as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def broken_fashion(tmp_path):
    """Four Fashion-MNIST IDX files, the training images truncated."""
    root = tmp_path / 'fashion'
    root.mkdir()
    for split, n in (('train', 20), ('t10k', 10)):
        _write_idx(root / f'{split}-images-idx3-ubyte.gz', np.zeros((n, 28, 28)))
        _write_idx(root / f'{split}-labels-idx1-ubyte.gz', np.arange(n) % 10)
    images = root / 'train-images-idx3-ubyte.gz'
    images.write_bytes(gzip.compress(gzip.decompress(images.read_bytes())[:-50]))
    return root


BAD_FLAGS = [
    (['--seed', '-1'], '--seed'), (['--seed', 'x'], '--seed'),
    (['--seed', str(2**32)], '--seed'),
    (['--max-images', '1'], '--max-images'), (['--max-images', '0'], '--max-images'),
    (['--max-images', '1e9'], '--max-images'), (['--max-images', '100001'], '--max-images'),
    (['--min-images', '0.5'], '--min-images'), (['--min-images', 'nan'], '--min-images'),
    (['--min-images', '600'], '--min-images'), (['--min-images', '-inf'], '--min-images'),
    (['--image-size', '0'], '--image-size'), (['--image-size', '20'], '--image-size'),
    (['--image-size', '47'], '--image-size'), (['--image-size', '5000'], '--image-size'),
    (['--image-size', '12.5'], '--image-size'),
    (['--num-neg', '-1'], '--num-neg'), (['--num-neg', '201'], '--num-neg'),
    (['--num-neg', 'x'], '--num-neg'),
    (['--bogus'], '--bogus'), (['--seed'], '--seed'),
]


@pytest.mark.parametrize('args, fragment', BAD_FLAGS, ids=[' '.join(a) for a, _ in BAD_FLAGS])
def test_bad_flag_is_one_line_and_writes_nothing(args, fragment, tmp_path, capsys):
    status, err = run(make_dataset, [*args, '--out', tmp_path / 'out'], capsys)
    assert_one_line_error(status, err, fragment)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('kind', ['missing', 'file', 'empty dir', 'truncated'])
def test_bad_fashion_folder_writes_nothing(kind, tmp_path, capsys, broken_fashion):
    root = {'missing': tmp_path / 'nowhere', 'file': tmp_path / 'f.txt',
            'empty dir': tmp_path / 'empty', 'truncated': broken_fashion}[kind]
    if kind == 'file':
        root.write_text('x')
    if kind == 'empty dir':
        root.mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    status, err = run(make_dataset, ['--fashion', root, '--out', tmp_path / 'out', *TINY_FLAGS],
                      capsys)
    assert_one_line_error(status, err, 'Fashion-MNIST' if kind != 'truncated' else 'truncated')
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# ---------------------------------------------------------------- the API

@pytest.mark.parametrize('change, fragment', [
    (dict(seed=-1), 'seed'), (dict(seed=1.5), 'seed'), (dict(seed=True), 'seed'),
    (dict(max_images=1), 'max_images'), (dict(max_images='480'), 'max_images'),
    (dict(min_images=0.0), 'min_images'), (dict(min_images=float('nan')), 'min_images'),
    (dict(min_images=500.0), 'min_images'), (dict(val_fraction=-0.1), 'val_fraction'),
    (dict(val_fraction=float('inf')), 'val_fraction'),
    (dict(min_val_instances=0), 'min_val_instances'),
    (dict(min_val_instances=10, max_val_instances=5), 'max_val_instances'),
    (dict(image_size=47), 'image_size'), (dict(image_size=10**6), 'image_size'),
    (dict(max_objects=0), 'max_objects'), (dict(num_neg=-1), 'num_neg'),
    (dict(strict='yes'), 'strict'), (dict(colour='red'), 'unknown'),
])
def test_api_refuses_bad_settings_before_writing(change, fragment, tmp_path):
    with pytest.raises(GenerationError, match=fragment):
        check_generation_params(**change)
    with pytest.raises((GenerationError, TypeError)):
        make_lt_digits(tmp_path / 'out', progress=False, **change)
    assert list(tmp_path.iterdir()) == []


def test_every_setting_is_recorded(tiny):
    recorded = recorded_generation(tiny)
    assert set(recorded) == set(GENERATION_DEFAULTS) | {'sources'}
    assert recorded['max_images'] == 30 and recorded['image_size'] == 48
    assert recorded['sources'] == ['mnist']
    for split in ('train', 'val'):
        info = json.loads((tiny / 'annotations' / f'lvis_v1_{split}.json').read_text())['info']
        assert info['generation'] == recorded and info['seed'] == 0


# ---------------------------------------------------------------- reuse: every setting compared

def test_check_dataset_accepts_only_the_same_settings(tiny, tmp_path):
    assert check_dataset(tiny, seed=0, **{k: v for k, v in TINY.items() if k != 'progress'})
    assert check_dataset(tmp_path / 'missing') is False
    (tmp_path / 'empty').mkdir()
    assert check_dataset(tmp_path / 'empty') is False
    same = dict(seed=0, max_images=30, min_images=1.0, image_size=48)
    for change in (dict(max_images=480), dict(image_size=128), dict(num_neg=3),
                   dict(strict=True), dict(seed=1), dict(min_images=1.5),
                   dict(max_objects=2), dict(val_fraction=0.5), dict(max_val_instances=41)):
        (name, value), = change.items()
        with pytest.raises(GenerationError, match=f'{name}=.*wanted {value!r}'):
            check_dataset(tiny, **{**same, **change})
    with pytest.raises(GenerationError, match='sources'):
        check_dataset(tiny, sources=('mnist', 'fashion-mnist'), max_images=30, min_images=1.0,
                      image_size=48)


@pytest.mark.parametrize('damage, fragment', [
    ('no generation record', 'no LT-Digits dataset of this version'),
    ('image missing', 'images missing'),
    ('val annotations missing', 'lvis_v1_val.json is missing'),
    ('annotations not JSON', 'unreadable'),
    ('a folder of other files', 'missing'),
    ('a file', 'is a file'),
])
def test_damaged_or_foreign_folders_are_never_reused(damage, fragment, tiny, tmp_path):
    root = tmp_path / 'root'
    if damage == 'a file':
        root.write_text('x')
    elif damage == 'a folder of other files':
        root.mkdir()
        (root / 'thesis.tex').write_text('x')
    else:
        _copy(tiny, root)
        train = root / 'annotations' / 'lvis_v1_train.json'
        if damage == 'no generation record':
            data = json.loads(train.read_text())
            del data['info']['generation']
            train.write_text(json.dumps(data))
        elif damage == 'image missing':
            next((root / 'val2017').glob('*.png')).unlink()
        elif damage == 'val annotations missing':
            (root / 'annotations' / 'lvis_v1_val.json').unlink()
        else:
            train.write_text(train.read_text()[:100])
    with pytest.raises(GenerationError, match=fragment):
        check_dataset(root, max_images=30, min_images=1.0, image_size=48)


# ---------------------------------------------------------------- output folder of make_dataset

def test_output_of_the_wrong_kind(tmp_path, capsys):
    (tmp_path / 'file').write_text('mine')
    for out in (tmp_path / 'file', tmp_path / 'file' / 'ltd'):
        for extra in ([], ['--force']):
            status, err = run(make_dataset, ['--out', out, *TINY_FLAGS, *extra], capsys)
            assert_one_line_error(status, err, 'file')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['file']
    assert (tmp_path / 'file').read_text() == 'mine'


def test_user_files_survive_with_and_without_force(tmp_path, capsys):
    out = tmp_path / 'mine'
    out.mkdir()
    (out / 'annotations').mkdir()
    (out / 'annotations' / 'lvis_v1_train.json').write_text('{"my": "labels"}')
    (out / 'notes.txt').write_text('precious')
    before = snapshot(out)
    status, err = run(make_dataset, ['--out', out, *TINY_FLAGS], capsys)
    assert_one_line_error(status, err, '--force')
    status, err = run(make_dataset, ['--out', out, '--force', *TINY_FLAGS], capsys)
    assert_one_line_error(status, err, 'did not write')
    assert snapshot(out) == before


def test_force_replaces_only_its_own_dataset(tiny, tmp_path, capsys):
    out = _copy(tiny, tmp_path / 'ltd')
    before = snapshot(out)
    status, err = run(make_dataset, ['--out', out, *TINY_FLAGS], capsys)
    assert_one_line_error(status, err, '--force')
    assert snapshot(out) == before
    status, err = run(make_dataset, ['--out', out, '--force', '--seed', '2', *TINY_FLAGS], capsys)
    assert status == 0, err
    assert recorded_generation(out)['seed'] == 2
    assert (out / MANIFEST).is_file()
    (out / 'annotations' / 'my_subset.json').write_text('{}')
    status, err = run(make_dataset, ['--out', out, '--force', *TINY_FLAGS], capsys)
    assert_one_line_error(status, err, 'my_subset.json')
    assert (out / 'annotations' / 'my_subset.json').read_text() == '{}'


# ---------------------------------------------------------------- interruption

def test_exception_midway_keeps_the_old_dataset(tiny, tmp_path, capsys, monkeypatch):
    out = _copy(tiny, tmp_path / 'ltd')
    before = snapshot(out)
    real, calls = generate._render, []

    def fails_later(*args, **kwargs):
        calls.append(1)
        if len(calls) > 50:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(generate, '_render', fails_later)
    status, _ = run(make_dataset, ['--out', out, '--force', '--seed', '4', *TINY_FLAGS], capsys)
    assert status == 130
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ltd']
    monkeypatch.undo()
    assert run(make_dataset, ['--out', out, '--force', '--seed', '4', *TINY_FLAGS], capsys)[0] == 0
    assert recorded_generation(out)['seed'] == 4


def test_killed_generation_keeps_the_old_dataset_and_the_rerun_works(tiny, tmp_path):
    out = _copy(tiny, tmp_path / 'ltd')
    before = snapshot(out)
    cmd = [sys.executable, str(ROOT / 'lt_digits' / 'make_dataset.py'), '--out', str(out),
           '--force']
    proc = subprocess.Popen([*cmd, '--max-images', '3000'], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while not list(tmp_path.glob('.ltd.tmp-*/train2017/*.png')) and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, 'the generation ended before it could be killed'
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert snapshot(out) == before
    rerun = subprocess.run([*cmd, *TINY_FLAGS, '--seed', '6'], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert recorded_generation(out)['seed'] == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ltd']  # the stale folder is gone


# ---------------------------------------------------------------- the demo (checks only)

@pytest.mark.parametrize('args, fragment', [
    (['--iters', '0'], '--iters'), (['--iters', 'x'], '--iters'),
    (['--val-images', '-1'], '--val-images'), (['--toy-epochs', '0'], '--toy-epochs'),
    (['--toy-epochs', '1.5'], '--toy-epochs'), (['--bogus'], '--bogus'),
])
def test_demo_bad_flags(args, fragment, tmp_path, capsys):
    status, err = run(demo, [*args, '--out', tmp_path / 'out', '--data-root',
                             tmp_path / 'data'], capsys)
    assert_one_line_error(status, err, fragment)
    assert list(tmp_path.iterdir()) == []


def test_demo_refuses_a_dataset_of_other_settings(tiny, tmp_path, capsys):
    data = _copy(tiny, tmp_path / 'data')
    before = snapshot(data)
    status, err = run(demo, ['--out', tmp_path / 'out', '--data-root', data], capsys)
    assert_one_line_error(status, err, 'max_images=30', 'image_size=48')
    assert snapshot(data) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['data']


@pytest.mark.parametrize('case', ['data root is a file', 'data root holds other files',
                                  'out parent is a file', 'out holds user files',
                                  'out holds user files, --force', 'out inside data root'])
def test_demo_refuses_bad_locations_before_writing(case, tmp_path, capsys):
    data, out, extra = tmp_path / 'data', tmp_path / 'out', []
    if case == 'data root is a file':
        data.write_text('x')
    elif case == 'data root holds other files':
        data.mkdir()
        (data / 'mine.txt').write_text('x')
    elif case == 'out parent is a file':
        (tmp_path / 'f').write_text('x')
        out = tmp_path / 'f' / 'out'
    elif case.startswith('out holds user files'):
        out.mkdir()
        (out / 'index.md').write_text('my notes')
        extra = ['--force'] if case.endswith('--force') else []
    else:
        out = data / 'demo'
    before = snapshot(tmp_path)
    status, err = run(demo, ['--out', out, '--data-root', data, *extra], capsys)
    assert_one_line_error(status, err)
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- tools/smoke_train.py (checks)

@pytest.fixture(scope='module')
def smoke():
    return _load(ROOT / 'tools' / 'smoke_train.py', 'smoke_cli')


@pytest.mark.parametrize('case, fragment', [
    ('config missing', 'not found'), ('config is a folder', 'a directory'),
    ('config not Python', 'not a readable mmengine config'),
    ('config of another kind', 'can shrink'), ('iters 0', '--iters'),
    ('iters 10**6', '--iters'), ('work dir parent is a file', 'is a file'),
    ('work dir holds user files, --force', 'did not write'),
])
def test_smoke_train_refusals(case, fragment, smoke, tmp_path, capsys):
    work, args = tmp_path / 'work', []
    if case == 'config missing':
        args = ['--config', tmp_path / 'nope.py']
    elif case == 'config is a folder':
        args = ['--config', tmp_path]
    elif case == 'config not Python':
        (tmp_path / 'c.py').write_text('model = dict(\n')
        args = ['--config', tmp_path / 'c.py']
    elif case == 'config of another kind':
        (tmp_path / 'c.py').write_text("model = dict(type='RetinaNet')\n")
        args = ['--config', tmp_path / 'c.py']
    elif case.startswith('iters'):
        args = ['--iters', str(eval(case.split()[1]))]
    elif case == 'work dir parent is a file':
        (tmp_path / 'f').write_text('x')
        work = tmp_path / 'f' / 'work'
    else:
        work.mkdir()
        (work / 'mine.txt').write_text('x')
        args = ['--force']
    before = snapshot(tmp_path)
    status, err = run(smoke, [*args, '--work-dir', work], capsys)
    assert_one_line_error(status, err, fragment)
    assert snapshot(tmp_path) == before
