"""tools/train.py and tools/test.py on bad input.

Every refused case: exit status 2, one ``error:`` line naming the problem, no traceback, and
the files on disk as they were (checked before the Runner writes anything). Then the cases
that used to lose data or report wrong numbers: a checkpoint that does not fit, a NaN loss,
``--force`` over an earlier run, an interrupted evaluation.
"""
import importlib.util
import os
import pickle
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from projects.c2am.cli import run_cli
from projects.c2am.safe_load import load_torch
from projects.c2am.testing import cpu_smoke_config

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _tool(name):
    spec = importlib.util.spec_from_file_location(f'c2am_tools_{name}', ROOT / 'tools' /
                                                  f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOLS = {name: _tool(name) for name in ('train', 'test')}


class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


@pytest.fixture(scope='module')
def smoke(synthetic_lvis, tmp_path_factory):
    """The real C2AM config at CPU size, a checkpoint that fits it, and broken variants."""
    from projects.c2am.run_checks import build_model, load_config
    d = tmp_path_factory.mktemp('tools_inputs')
    cfg = cpu_smoke_config(Config.fromfile(str(ROOT / 'configs/mask_rcnn/'
                                                  'mask-rcnn_r50_fpn_c2am_ms-2x_lvis-v1.py')),
                           synthetic_lvis['data_root'], str(d / 'unused'), max_iters=2,
                           val_interval=10_000)
    config = d / 'smoke.py'
    cfg.dump(str(config))
    state = build_model(load_config(config)).state_dict()
    fit = d / 'fit.pth'
    torch.save({'state_dict': state, 'meta': {}}, fit)
    partial = d / 'partial.pth'
    torch.save({'state_dict': {k: v for k, v in state.items() if 'fc_cls' not in k}}, partial)
    shape = d / 'shape.pth'
    torch.save({'state_dict': {k: (v[:-1] if 'fc_cls' in k else v) for k, v in state.items()}},
               shape)
    nofit = d / 'nofit.pth'
    torch.save({'state_dict': {'classifier.weight': torch.ones(10, 5)}}, nofit)
    return dict(config=config, fit=fit, partial=partial, shape=shape, nofit=nofit, dir=d)


@pytest.fixture
def work(tmp_path):
    return tmp_path


def _cli(capsys, tool, *args):
    try:
        status = run_cli(TOOLS[tool].main, [str(a) for a in args])
    except SystemExit as exc:  # argparse
        status = exc.code
    return status, capsys.readouterr().err


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob('*'))
            if p.is_file()}


def _refused(capsys, tool, args, message, folder):
    before = _snapshot(folder)
    status, err = _cli(capsys, tool, *args)
    assert status == 2, err[-3000:]
    assert 'Traceback' not in err, err[-3000:]
    lines = [line for line in err.splitlines() if 'error:' in line]
    assert len(lines) == 1, err[-3000:]
    assert message in lines[0], lines[0]
    assert _snapshot(folder) == before  # nothing written, nothing changed


def _args(tool, smoke, config, work, *extra):
    """Command line of ``tool`` with ``config`` (test.py also gets the fitting checkpoint)."""
    ckpt = [smoke['fit']] if tool == 'test' else []
    return [config, *ckpt, '--work-dir', work / 'wd', *extra]


# -- configs ----------------------------------------------------------------------------------

CONFIGS = [
    ('syntax.py', 'model = dict(type=\n', 'the config does not load (SyntaxError'),
    ('garbage.py', b'\x00\xff\xfe garbage \x80' * 10, 'the config does not load'),
    ('empty.py', '', 'the config defines no model'),
    ('number.py', 'model = 3\n', 'the config defines no model'),
    ('no_type.py', 'model = dict(backbone=dict())\n', 'the config defines no model'),
    ('imports.py', "custom_imports = dict(imports=['no_such_module_c2am'])\n"
     "model = dict(type='MaskRCNN')\n", 'the config does not load'),
    ('incomplete.py', "model = dict(type='MaskRCNN')\n", 'the model of the config does not build'),
    ('base.py', "_base_ = './no_such_base.py'\n", 'the config does not load'),
    ('bad.yaml', 'model: [unclosed\n  - : :\n', 'the config does not load'),
    ('text.json', 'these are notes, not json', 'the config does not load'),
]


@pytest.mark.parametrize('tool', ['train', 'test'])
@pytest.mark.parametrize('name, content, message', CONFIGS)
def test_broken_configs(capsys, smoke, work, tool, name, content, message):
    config = work / name
    (config.write_bytes if isinstance(content, bytes) else config.write_text)(content)
    _refused(capsys, tool, _args(tool, smoke, config, work), message, work)


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_config_path_that_is_missing_or_a_folder(capsys, smoke, work, tool):
    _refused(capsys, tool, _args(tool, smoke, work / 'nope.py', work), 'not found', work)
    _refused(capsys, tool, _args(tool, smoke, work, work), 'a directory, expected a file', work)


@pytest.mark.parametrize('tool', ['train', 'test'])
@pytest.mark.parametrize('option, message', [
    ('model', "'model' is not KEY=VALUE"),
    ('=3', "'=3' is not KEY=VALUE"),
    ('model.backbone depth=3', 'is not KEY=VALUE'),
    ('train_cfg.max_iters=[1,2', 'Imbalanced brackets'),
    ('model=3', 'the config defines no model'),
    ('model.type=NoSuchDetector', 'does not build'),
    ('model.backbone.depth=abc', 'does not build'),
])
def test_bad_cfg_options(capsys, smoke, work, tool, option, message):
    _refused(capsys, tool, _args(tool, smoke, smoke['config'], work, '--cfg-options', option),
             message, work)


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_work_dir_that_is_a_file(capsys, smoke, work, tool):
    blocker = work / 'blocker'
    blocker.write_text('mine')
    args = _args(tool, smoke, smoke['config'], work)
    args[args.index('--work-dir') + 1] = blocker
    _refused(capsys, tool, args, 'is a file; expected a directory', work)
    args[args.index('--work-dir') + 1] = blocker / 'sub'
    _refused(capsys, tool, args, 'is a file, not a directory', work)


# -- checkpoints ------------------------------------------------------------------------------

def _bad_checkpoint(smoke, work, kind):
    path = work / f'{kind}.pth'
    if kind == 'text':
        path.write_text('my notes')
    elif kind == 'empty':
        path.write_bytes(b'')
    elif kind == 'truncated':
        path.write_bytes(smoke['fit'].read_bytes()[:5000])
    elif kind == 'pickle':
        path.write_bytes(pickle.dumps({'state_dict': {'a': 1}}))
    elif kind == 'tensor':
        torch.save(torch.ones(3), path)
    elif kind == 'strings':
        torch.save({'state_dict': {'backbone.conv1.weight': 'x'}}, path)
    else:
        return smoke[kind]
    return path


@pytest.mark.parametrize('kind, message', [
    ('text', 'not a'),
    ('empty', 'not a readable PyTorch checkpoint'),
    ('truncated', 'not a readable PyTorch checkpoint'),
    ('pickle', 'not a'),
    ('tensor', 'not a model checkpoint'),
    ('strings', 'not a model checkpoint'),
    ('nofit', '0 of 161 model keys match'),
    ('partial', 'pass --allow-partial-load'),
    ('shape', 'of another shape (e.g. roi_head.bbox_head.fc_cls.weight: [1203, 64]'),
])
def test_test_refuses_checkpoints_that_do_not_fit(capsys, smoke, work, kind, message):
    ckpt = _bad_checkpoint(smoke, work, kind)
    _refused(capsys, 'test', [smoke['config'], ckpt, '--work-dir', work / 'wd', '--out',
                              work / 'r.pkl'], message, work)


def test_nothing_matching_is_refused_even_with_partial_load(capsys, smoke, work):
    _refused(capsys, 'test', [smoke['config'], smoke['nofit'], '--allow-partial-load',
                              '--work-dir', work / 'wd'], 'is it a checkpoint of this config',
             work)


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_checkpoint_that_runs_code_is_refused(capsys, smoke, work, tool):
    marker = work / 'pwned'
    evil = work / 'evil.pth'
    torch.save({'state_dict': {'a': torch.ones(1)}, 'x': _RunsCode(marker)}, evil)
    args = [smoke['config'], evil] if tool == 'test' else [smoke['config'], '--resume', evil]
    _refused(capsys, tool, [*args, '--work-dir', work / 'wd'], 'refused to load', work)
    assert not marker.exists()


def test_test_checkpoint_missing(capsys, smoke, work):
    _refused(capsys, 'test', [smoke['config'], work / 'nope.pth'], 'nope.pth: not found', work)


@pytest.mark.parametrize('kind, message', [
    ('text', 'not a'),
    ('nofit', '0 of 161 model keys match'),
    ('partial', 'pass --allow-partial-load'),
])
def test_train_refuses_start_checkpoints_that_do_not_fit(capsys, smoke, work, kind, message):
    ckpt = _bad_checkpoint(smoke, work, kind)
    _refused(capsys, 'train', [smoke['config'], '--work-dir', work / 'wd', '--resume', ckpt],
             message, work)
    _refused(capsys, 'train', [smoke['config'], '--work-dir', work / 'wd', '--cfg-options',
                               f'load_from={ckpt}'], message, work)


# -- outputs ----------------------------------------------------------------------------------

def test_test_outputs(capsys, smoke, work):
    base = [smoke['config'], smoke['fit'], '--work-dir', work / 'wd']
    _refused(capsys, 'test', [*base, '--out', work / 'r.txt'], '--out must be a .pkl', work)
    blocker = work / 'blocker'
    blocker.write_text('mine')
    _refused(capsys, 'test', [*base, '--out', blocker / 'r.pkl'], 'is a file, not a directory',
             work)
    (work / 'r.pkl').write_text('earlier results')
    _refused(capsys, 'test', [*base, '--out', work / 'r.pkl'], 'r.pkl exists; pass --force',
             work)
    (work / 'res.segm.json').write_text('[]')
    _refused(capsys, 'test', [*base, '--outfile-prefix', work / 'res'],
             'res.segm.json exists; pass --force', work)
    _refused(capsys, 'test', [*base, '--outfile-prefix', work / 'p', '--cfg-options',
                              'test_evaluator.type=VOCMetric'],
             'needs an LVISMetric or CocoMetric (or subclass) test_evaluator', work)


def test_interrupted_evaluation_keeps_earlier_results(capsys, smoke, work, monkeypatch):
    from mmengine.runner import Runner
    (work / 'r.pkl').write_text('earlier results')
    (work / 'res.bbox.json').write_text('[1]')

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Runner, 'test', interrupted)
    status, err = _cli(capsys, 'test', smoke['config'], smoke['fit'], '--work-dir', work / 'wd',
                       '--out', work / 'r.pkl', '--outfile-prefix', work / 'res', '--force')
    assert status == 130, err[-2000:]
    assert (work / 'r.pkl').read_text() == 'earlier results'
    assert (work / 'res.bbox.json').read_text() == '[1]'
    assert sorted(p.name for p in work.iterdir()) == ['r.pkl', 'res.bbox.json', 'wd']


def test_partial_load_runs_only_when_asked_and_says_how_much_matched(capsys, smoke, work):
    status, err = _cli(capsys, 'test', smoke['config'], smoke['partial'], '--work-dir',
                       work / 'wd', '--out', work / 'r.pkl', '--outfile-prefix', work / 'res',
                       '--allow-partial-load')
    assert status == 0, err[-3000:]
    assert 'partial load: 160 of 161 model keys match (1 missing' in err
    assert (work / 'r.pkl').stat().st_size > 0
    assert {p.name for p in work.iterdir()} == {'r.pkl', 'res.bbox.json', 'res.segm.json', 'wd'}


# -- training ---------------------------------------------------------------------------------

def _earlier_run(work):
    wd = work / 'wd'
    wd.mkdir()
    (wd / 'iter_2.pth').write_text('earlier checkpoint')
    (wd / 'last_checkpoint').write_text(str(wd / 'iter_2.pth'))
    (wd / 'notes.txt').write_text('mine')
    return wd


def test_train_argument_errors(capsys, smoke, work):
    base = [smoke['config'], '--work-dir', work / 'wd']
    _refused(capsys, 'train', [*base, '--resume', work / 'nope.pth'], 'not found', work)
    _refused(capsys, 'train', [*base, '--resume', '--force'], 'pick one', work)
    minimal = work / 'minimal.py'
    minimal.write_text("model = dict(type='MaskRCNN')\n")
    _refused(capsys, 'train', [minimal, '--work-dir', work / 'wd', '--auto-scale-lr'],
             '--auto-scale-lr needs auto_scale_lr.base_batch_size', work)
    if not torch.cuda.is_available():
        _refused(capsys, 'train', [*base, '--amp'], '--amp needs a CUDA device', work)


def test_train_keeps_an_earlier_run(capsys, smoke, work):
    wd = _earlier_run(work)
    _refused(capsys, 'train', [smoke['config'], '--work-dir', wd], 'already holds checkpoints',
             work)


def test_resume_after_an_interrupted_save(capsys, smoke, work):
    wd = _earlier_run(work)
    (wd / 'iter_2.pth').write_bytes(smoke['fit'].read_bytes()[:4096])  # killed while saving
    _refused(capsys, 'train', [smoke['config'], '--work-dir', wd, '--resume'],
             'iter_2.pth: not a readable PyTorch checkpoint', work)
    (wd / 'last_checkpoint').write_text(str(wd / 'iter_9.pth'))
    _refused(capsys, 'train', [smoke['config'], '--work-dir', wd, '--resume'],
             'iter_9.pth, which does not exist', work)


def test_nan_loss_stops_training_and_keeps_the_earlier_run(capsys, smoke, work):
    wd = _earlier_run(work)
    before = _snapshot(wd)
    status, err = _cli(capsys, 'train', smoke['config'], '--work-dir', wd, '--force',
                       '--cfg-options', 'model.roi_head.bbox_head.loss_bbox.loss_weight=nan')
    assert status == 2, err[-3000:]
    assert 'Traceback' not in err
    (line,) = [line for line in err.splitlines() if 'error:' in line]
    assert 'training stopped at iteration 1: the loss is not finite' in line
    assert 'loss_bbox=nan' in line
    # the run failed before its first checkpoint: the earlier one was not even moved
    after = {k: v for k, v in _snapshot(wd).items()  # less the new log dir and config dump
             if not k.startswith('2') and k != 'smoke.py'}
    assert after == before


def test_force_moves_the_earlier_checkpoints_aside_once_a_new_one_exists(capsys, smoke, work):
    wd = _earlier_run(work)
    status, err = _cli(capsys, 'train', smoke['config'], '--work-dir', wd, '--force')
    assert status == 0, err[-3000:]
    (aside,) = wd.glob('replaced-*')
    assert (aside / 'iter_2.pth').read_text() == 'earlier checkpoint'
    assert (aside / 'last_checkpoint').read_text() == str(wd / 'iter_2.pth')
    assert (wd / 'notes.txt').read_text() == 'mine'
    assert load_torch(wd / 'iter_2.pth')['meta']['iter'] == 2


@pytest.mark.parametrize('evaluator, expected', [
    (dict(type='FastLVISMetric', metric=['bbox', 'segm']), ['bbox', 'segm']),  # a subclass
    (dict(type='LVISMetric', metric='segm'), ['segm']),
    (dict(type='CocoMetric', metric=['bbox', 'proposal']), ['bbox']),
])
def test_outfile_prefix_accepts_lvis_and_coco_metrics_and_their_subclasses(evaluator, expected):
    import projects.c2am.mmdet_plugin  # noqa: F401  (registers FastLVISMetric)
    cfg = Config(dict(test_evaluator=dict(evaluator, ann_file='unused.json')))
    assert TOOLS['test'].result_types(cfg) == expected
