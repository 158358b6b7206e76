"""The shared safety helpers: restricted unpickling, atomic outputs, output-location checks."""
import argparse
import io
import os
import pickle

import numpy as np
import pytest
import torch

from projects.c2am.cli import (
    ArgumentParser,
    UserError,
    check_output_location,
    int_in_range,
    positive_int,
    run_cli,
    torch_device,
)
from projects.c2am.outputs import (
    MANIFEST,
    atomic_output_dir,
    check_output_files,
    dumps_json,
    nan_to_none,
    prepare_output_dir,
    repoint,
    write_atomic,
)
from projects.c2am.safe_load import UnsafePickleError, load_pickle, load_torch


class _RunsCode:
    def __reduce__(self):
        return (os.system, ('echo pwned > /dev/null',))


def test_results_pickle_with_tensors_and_arrays_loads(tmp_path):
    data = [{'img_id': 3, 'pred_instances': {'bboxes': torch.arange(8.).reshape(2, 4),
                                             'labels': torch.tensor([1, 2]),
                                             'masks': [{'size': [2, 2], 'counts': b'ab'}]},
             'array': np.arange(3, dtype=np.float32), 'scalar': np.float64(0.5)}]
    path = tmp_path / 'results.pkl'
    path.write_bytes(pickle.dumps(data))
    loaded = load_pickle(path)
    assert torch.equal(loaded[0]['pred_instances']['bboxes'], data[0]['pred_instances']['bboxes'])
    assert loaded[0]['array'].dtype == np.float32 and loaded[0]['scalar'] == 0.5
    assert loaded[0]['pred_instances']['masks'][0]['counts'] == b'ab'


def test_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / 'evil.pkl'
    path.write_bytes(pickle.dumps([_RunsCode()]))
    with pytest.raises(UnsafePickleError, match='posix.system|os.system'):
        load_pickle(path)


class _StorageWithCode:
    def __init__(self, archive):
        self.archive = archive

    def __reduce__(self):
        return (torch.storage._load_from_bytes, (self.archive,))


def test_tensor_storage_with_code_inside_is_refused(tmp_path):
    # a storage's bytes are a torch.save archive: loaded with weights_only, so code is refused
    inner = io.BytesIO()
    torch.save([_RunsCode()], inner)
    path = tmp_path / 'evil_storage.pkl'
    path.write_bytes(pickle.dumps(_StorageWithCode(inner.getvalue())))
    with pytest.raises(UserError, match='not a readable pickle.*[Ww]eights only'):
        load_pickle(path)


@pytest.mark.parametrize('content', [b'', b'not a pickle', pickle.dumps([1, 2, 3])[:-3]])
def test_broken_pickles_are_user_errors(tmp_path, content):
    path = tmp_path / 'broken.pkl'
    path.write_bytes(content)
    with pytest.raises(UserError, match='not a readable pickle'):
        load_pickle(path)


def test_load_torch_reads_legacy_format_and_refuses_text(tmp_path):
    legacy = tmp_path / 'legacy.pth'
    torch.save({'w': torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    assert torch.equal(load_torch(legacy)['w'], torch.ones(2))
    text = tmp_path / 'notes.pth'
    text.write_text('hello')
    with pytest.raises(UserError, match='notes.pth'):
        load_torch(text)
    evil = tmp_path / 'evil.pth'
    torch.save([_RunsCode()], evil)
    with pytest.raises(UserError, match='refused'):
        load_torch(evil)


def test_output_location_checks(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    with pytest.raises(UserError, match='is a file'):
        check_output_location(blocker / 'out.json')
    with pytest.raises(UserError, match='expected a directory'):
        check_output_location(blocker, is_dir=True)
    assert check_output_location(tmp_path / 'a' / 'b.json') == tmp_path / 'a' / 'b.json'


def test_atomic_dir_keeps_old_results_when_the_run_fails(tmp_path):
    out = tmp_path / 'run'
    with atomic_output_dir(out, force=False) as tmp:
        (tmp / 'metrics.json').write_text('{"v": 1}')
    assert (out / MANIFEST).is_file()
    with pytest.raises(RuntimeError), atomic_output_dir(out, force=True) as tmp:
        (tmp / 'metrics.json').write_text('{"v": 2}')
        raise RuntimeError('training diverged')
    assert (out / 'metrics.json').read_text() == '{"v": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['run']  # no temporaries left
    with atomic_output_dir(out, force=True) as tmp:
        (tmp / 'other.json').write_text('{}')
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, 'other.json']


def test_force_never_deletes_files_the_tool_did_not_write(tmp_path):
    out = tmp_path / 'run'
    with atomic_output_dir(out, force=False) as tmp:
        (tmp / 'metrics.json').write_text('{}')
    (out / 'my_notes.txt').write_text('precious')
    with pytest.raises(UserError, match='did not write'):
        prepare_output_dir(out, force=True)
    with pytest.raises(UserError, match='already holds'):
        prepare_output_dir(out, force=False)
    assert (out / 'my_notes.txt').read_text() == 'precious'
    foreign = tmp_path / 'home'
    foreign.mkdir()
    (foreign / 'thesis.tex').write_text('x')
    with pytest.raises(UserError, match='did not write'):
        prepare_output_dir(foreign, force=True)


def test_single_files_are_checked_and_written_whole(tmp_path):
    path = tmp_path / 'a.json'
    write_atomic(path, '{}')
    with pytest.raises(UserError, match='--force'):
        check_output_files([path], force=False)
    assert check_output_files([path], force=True) == [path]
    with pytest.raises(ValueError):
        dumps_json({'x': float('nan')})
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.json']


def test_cli_errors_are_one_line(capsys):
    def main(argv):
        raise UserError('bad thing')
    assert run_cli(main, []) == 2
    assert capsys.readouterr().err == 'error: bad thing\n'
    with pytest.raises(argparse.ArgumentTypeError):
        positive_int('0')
    with pytest.raises(argparse.ArgumentTypeError):
        positive_int('x')


def test_group_of_files_is_written_all_or_nothing(tmp_path):
    from projects.c2am.outputs import atomic_output_files
    paths = [tmp_path / 'fig.png', tmp_path / 'fig.json']
    with atomic_output_files(paths, force=False) as (png, js):
        assert png.suffix == '.png' and js.suffix == '.json'  # writers pick formats by suffix
        png.write_bytes(b'png')
        js.write_text('{}')
    assert [p.read_bytes() for p in paths] == [b'png', b'{}']
    with pytest.raises(UserError, match='was not produced'), \
            atomic_output_files(paths, force=True) as (png, _):
        png.write_bytes(b'new')  # the json is missing: nothing may be replaced
    with pytest.raises(RuntimeError), atomic_output_files(paths, force=True) as (png, js):
        png.write_bytes(b'new')
        raise RuntimeError('plot failed')
    assert [p.read_bytes() for p in paths] == [b'png', b'{}']
    assert sorted(p.name for p in tmp_path.iterdir()) == ['fig.json', 'fig.png']
    with pytest.raises(UserError, match='exists; pass --force'):
        atomic_output_files(paths, force=False).__enter__()


def test_temporaries_of_dead_processes_are_removed(tmp_path):
    stale = tmp_path / '.a.tmp-999999999-0badf00d.json'  # pid that does not exist
    stale.write_text('left by a killed run')
    live = tmp_path / f'.a.tmp-{os.getpid()}-0badf00d.json'  # a run still going
    live.write_text('in progress')
    write_atomic(tmp_path / 'a.json', '{}')
    assert not stale.exists() and live.exists()


def test_load_torch_names_garbage_and_code_differently(tmp_path):
    garbage = tmp_path / 'random.pth'
    garbage.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(UserError, match='not a PyTorch checkpoint'):
        load_torch(garbage)
    evil = tmp_path / 'evil.pth'
    torch.save({'w': torch.ones(1), 'x': _RunsCode()}, evil)
    with pytest.raises(UserError, match='refused to load.*system'):
        load_torch(evil)


def test_range_and_device_checkers():
    check = int_in_range(0, 9)
    assert check('9') == 9 and check('0') == 0
    for bad in ('10', '-1', '1.5', 'x', ''):
        with pytest.raises(argparse.ArgumentTypeError, match='0..9'):
            check(bad)
    assert torch_device('auto') == 'auto' and torch_device('CPU') == 'cpu'
    for bad in ('tpu', 'cuda:x', 'cuda:-1', 'cpu:0:1'):
        with pytest.raises(argparse.ArgumentTypeError):
            torch_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(argparse.ArgumentTypeError, match='no CUDA device'):
            torch_device('cuda')
    with pytest.raises(argparse.ArgumentTypeError, match='CUDA'):
        torch_device('cuda:4096')


def test_parser_errors_are_one_user_error_line(capsys):
    parser = ArgumentParser(prog='tool.py')
    parser.add_argument('--n', type=positive_int, default=1)

    def main(argv):
        return parser.parse_args(argv).n - 1

    assert run_cli(main, ['--n', '1']) == 0
    assert run_cli(main, ['--n', '0']) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('error: argument --n: expected an integer')
    assert 'tool.py --help' in err
    assert run_cli(main, ['--bogus']) == 2
    assert '--bogus' in capsys.readouterr().err


def test_nan_to_none_and_repoint(tmp_path):
    data = {'a': float('nan'), 'b': [1.0, float('inf'), {'c': -float('inf')}], 'd': 'x', 'e': 2}
    assert nan_to_none(data) == {'a': None, 'b': [1.0, None, {'c': None}], 'd': 'x', 'e': 2}
    assert dumps_json(nan_to_none(data))
    tmp = tmp_path / '.run.tmp-1-ab'
    (tmp / 'ce').mkdir(parents=True)
    (tmp / 'ce' / 'last_checkpoint').write_text(str(tmp / 'ce' / 'iter_2.pth'))
    (tmp / 'other.txt').write_text(str(tmp))
    repoint(tmp, tmp_path / 'run')
    assert (tmp / 'ce' / 'last_checkpoint').read_text() == str(tmp_path / 'run/ce/iter_2.pth')
    assert (tmp / 'other.txt').read_text() == str(tmp)  # only the named files


def test_atomic_dir_through_a_link_replaces_the_target_and_keeps_the_link(tmp_path):
    real, link = tmp_path / 'real', tmp_path / 'link'
    with atomic_output_dir(real, force=False) as tmp:
        (tmp / 'a.txt').write_text('1')
    link.symlink_to(real)
    with atomic_output_dir(link, force=True) as tmp:
        (tmp / 'a.txt').write_text('2')
    assert link.is_symlink() and (real / 'a.txt').read_text() == '2'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['link', 'real']
