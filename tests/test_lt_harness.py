"""benchmarks/lt_detection.py: planning, resuming, refusing foreign files, paired differences,
and the shared report rules (a fake trainer writes the logs a real run would)."""
import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

from lt_digits import experiments
from lt_digits.ap_fixed import load_ap_fixed
from lt_digits.experiments import AP_FIXED_FILE, METHOD_GROUPS, METHODS, RUN_MARKER, job_options

ROOT = Path(__file__).resolve().parents[1]
FAKE_AP = {'ce': 20.0, 'c2am': 25.0, 'eqlv2': 22.0}
SEED_SHIFT = {0: 0.0, 1: 1.0, 2: -0.5}


def _bench(name: str):
    spec = importlib.util.spec_from_file_location(f'bench_{name}', ROOT / 'benchmarks' /
                                                  f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FAKE_TRAIN = r'''
import json, sys, pathlib
work, method, seed, count = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
with open(count, 'a') as f:
    f.write(work.name + '\n')
ap = {ap}[method] + {shift}[seed] + (1.0 if method == 'c2am' and seed == 2 else 0.0)
ap_r = ap / 2 - (3.0 if method == 'eqlv2' and seed == 1 else 0.0)
vis = work / '20260101_000000' / 'vis_data'
vis.mkdir(parents=True)
rows = [dict(step=1, iter=1, time=0.5, loss=1.0, **{{'cls_norm/f_over_r': 1.5}}),
        dict(step=2, **{{k: v / 100 for k, v in dict(segm_AP=ap, bbox_AP=ap + 1, segm_APr=ap_r,
             segm_APc=ap, segm_APf=ap + 2, bbox_APr=ap_r).items()}})]
rows[1] = {{'lvis/' + k if k != 'step' else k: v for k, v in rows[1].items()}}
(vis / 'scalars.json').write_text('\n'.join(json.dumps(r) for r in rows))
'''


@pytest.fixture
def fake_training(monkeypatch, tmp_path):
    """TrainJob.command runs a fake trainer; the dataset step is skipped."""
    script = tmp_path / 'fake_train.py'
    script.write_text(FAKE_TRAIN.format(ap=FAKE_AP, shift=SEED_SHIFT))
    count = tmp_path / 'trained.txt'

    def command(job):
        method, seed = job.name.rsplit('_s', 1)
        return [sys.executable, str(script), str(job.work_dir), method, seed, str(count)]

    monkeypatch.setattr(experiments.TrainJob, 'command', command)
    bench = _bench('lt_detection')
    monkeypatch.setattr(bench, 'ensure_lt_digits', lambda root: None)
    monkeypatch.setattr(experiments.time, 'sleep', lambda s: None)
    return bench, count


def _trained(count: Path) -> list[str]:
    return count.read_text().split() if count.exists() else []


def test_three_seeds_paired_differences_and_resume(fake_training, tmp_path):
    bench, count = fake_training
    out = tmp_path / 'bench'
    argv = ['--methods', 'ce', 'c2am', 'eqlv2', '--seeds', '0', '1', '2', '--out', str(out),
            '--parallel', '2']
    assert bench.main(argv) == 0
    assert sorted(_trained(count)) == sorted(f'{m}_s{s}' for m in FAKE_AP for s in range(3))
    record = json.loads((out / 'results.json').read_text())
    assert record['tool'] == 'benchmarks/lt_detection.py' and record['missing'] == []
    # C2AM - CE per seed: 5, 5, 6 -> +5.33, 3/3; EQLv2 - C2AM APr: -1.5, -4.5, -2.0 -> 3/3
    d = record['paired']['ce']['c2am']['AP mask']
    assert d['mean'] == pytest.approx(16 / 3) and d['consistent'] == 3 and d['n'] == 3
    assert d['per_seed'] == {'0': 5.0, '1': 5.0, '2': 6.0}
    d = record['paired']['c2am']['eqlv2']['APr']
    assert d['mean'] == pytest.approx(-8 / 3) and d['consistent'] == 3
    # EQLv2 - CE APr: +1, -2, +1 -> mean 0: no seed "consistent" with a zero mean
    assert record['paired']['ce']['eqlv2']['APr']['consistent'] == 0
    mean, std = record['summary']['c2am']['AP mask']
    assert mean == pytest.approx((25 + 26 + 25.5) / 3)
    table = (out / 'table.md').read_text()
    assert '| c2am | +5.3, 3/3 |' in table and 'Paired difference against ce' in table
    # a rerun trains nothing
    assert bench.main(argv) == 0
    assert len(_trained(count)) == 9
    # an interrupted run (its folder has no result marker) restarts from scratch
    (out / 'runs' / 'c2am_s1' / 'result.json').unlink()
    (out / 'runs' / 'c2am_s1' / 'iter_300.pth').write_bytes(b'partial')
    assert bench.main(argv) == 0
    assert _trained(count)[9:] == ['c2am_s1']
    assert not (out / 'runs' / 'c2am_s1' / 'iter_300.pth').exists()
    # --render-only: from the recorded runs, no training
    (out / 'table.md').unlink()
    assert bench.main(argv + ['--render-only']) == 0
    assert '| c2am | +5.3, 3/3 |' in (out / 'table.md').read_text()
    assert len(_trained(count)) == 10
    # a table of one seed: values without a made-up '± 0.0', the seed count as an integer,
    # and a header that says how many of the planned runs it holds
    one = argv[:argv.index('--seeds')] + ['--seeds', '0', '7'] + argv[argv.index('--out'):]
    assert bench.main(one + ['--render-only']) == 0
    table = (out / 'table.md').read_text()
    ce_row = next(line for line in table.splitlines() if line.startswith('| ce |'))
    assert '±' not in ce_row and ce_row.endswith('| 1 |')
    assert '3 of 6 runs finished' in table.splitlines()[0]
    assert 'not finished (not in the table): ce_s7, c2am_s7, eqlv2_s7' in table


def test_baselines_choose_the_paired_tables(fake_training, tmp_path, capsys):
    bench, count = fake_training
    out = tmp_path / 'bench'
    argv = ['--methods', 'ce', 'c2am', 'eqlv2', '--seeds', '0', '1', '2', '--out', str(out)]
    assert bench.main(argv + ['--baselines', 'eqlv2']) == 0
    record = json.loads((out / 'results.json').read_text())
    assert list(record['paired']) == ['eqlv2']
    # C2AM - EQLv2 per seed: APr 1.5, 4.5, 2.0 (EQLv2's seed-1 APr is 3 lower)
    d = record['paired']['eqlv2']['c2am']['APr']
    assert d['per_seed'] == {'0': 1.5, '1': 4.5, '2': 2.0} and d['consistent'] == 3
    assert record['paired']['eqlv2']['ce']['AP mask']['mean'] == pytest.approx(-2.0)
    table = (out / 'table.md').read_text()
    assert 'Paired difference against eqlv2' in table and 'against ce' not in table
    assert '--baselines eqlv2' in table.splitlines()[0]
    # the default: CE and C2AM, from the same runs without training any
    assert bench.main(argv + ['--render-only']) == 0
    assert list(json.loads((out / 'results.json').read_text())['paired']) == ['ce', 'c2am']
    assert len(_trained(count)) == 9
    # a baseline that is not among the methods is one clear error, nothing re-written
    before = (out / 'results.json').read_text()
    capsys.readouterr()
    assert bench.run_cli(bench.main, argv + ['--baselines', 'ce', 'seesaw']) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'seesaw' in err and 'not among the methods' in err
    assert (out / 'results.json').read_text() == before and len(_trained(count)) == 9


def _fake_retest(calls: list, line: str | None = None):
    """A stand-in for the tools/test.py process of an AP-fixed re-test: logs the checkpoint
    check and dumps box metrics where mmengine does (AP-fixed box = 10 + seed, + 4 for C2AM)."""
    def call(cmd, stdout, stderr, env, cwd):
        calls.append(cmd)
        work = Path(cmd[cmd.index('--work-dir') + 1])
        method, seed = Path(cmd[3]).parent.name.rsplit('_s', 1)
        stdout.write(line or 'partial load: 2 of 2 model keys match (1 not in the model '
                     '(e.g. roi_head.mask_head.w))\n')
        ap = 10.0 + int(seed) + (4.0 if method == 'c2am' else 0.0)
        (work / '20260101_000000').mkdir()
        (work / '20260101_000000' / '20260101_000000.json').write_text(json.dumps(
            {f'lvis/bbox_AP{g}': (ap + i) / 100 for i, g in enumerate(['', 'r', 'c', 'f'])}))
        return 0
    return call


def test_ap_fixed_retests_each_kept_checkpoint_once(fake_training, tmp_path, monkeypatch):
    import torch

    from lt_digits import ap_fixed
    bench, count = fake_training
    out = tmp_path / 'bench'
    argv = ['--methods', 'ce', 'c2am', '--seeds', '0', '1', '2', '--out', str(out),
            '--data-root', str(tmp_path / 'data')]
    assert bench.main(argv) == 0
    state = {'state_dict': {'backbone.w': torch.zeros(1), 'roi_head.mask_head.w': torch.zeros(1)}}
    for name in ('ce_s0', 'ce_s1', 'c2am_s0', 'c2am_s1', 'c2am_s2'):  # ce_s2 kept none
        torch.save(state, out / 'runs' / name / 'iter_700.pth')
    calls = []
    monkeypatch.setattr(ap_fixed.subprocess, 'call', _fake_retest(calls))
    assert bench.main(argv + ['--ap-fixed']) == 0
    assert len(_trained(count)) == 6 and len(calls) == 5  # re-tested, nothing re-trained
    options = calls[0][calls[0].index('--cfg-options') + 1:]
    for expected in ('model.test_cfg.rcnn.score_thr=1e-07', 'test_evaluator.fixed_ap=True',
                     'model.test_cfg.rcnn.max_per_img=1000', 'model.roi_head.mask_head=None',
                     'test_evaluator.metric=bbox',
                     f'test_evaluator.ann_file={tmp_path}/data/annotations/lvis_v1_val.json'):
        assert expected in options
    record = json.loads((out / 'results.json').read_text())
    fixed = record['ap_fixed']
    assert fixed['summary']['ce']['n'] == 2 and fixed['summary']['c2am']['n'] == 3
    assert fixed['summary']['ce']['APr-fixed box'][0] == pytest.approx(11.5)  # 11, 12
    # beside it the standard box AP of the same two runs (fake: 21, 22 for CE seeds 0, 1)
    assert fixed['summary']['ce']['AP box'][0] == pytest.approx(21.5)
    d = fixed['paired']['ce']['c2am']['AP-fixed box']  # on seeds 0 and 1 only
    assert (d['n'], d['consistent'], d['mean']) == (2, 2, pytest.approx(4.0))
    assert d['per_seed'] == {'0': pytest.approx(4.0), '1': pytest.approx(4.0)}
    assert record['summary']['ce']['n'] == 3  # the standard table keeps every seed
    assert '| c2am | +4.0, 2/2 |' in (out / 'table.md').read_text()
    # kept: a rerun re-tests nothing; a result kept under other test settings is re-measured
    assert bench.main(argv + ['--ap-fixed']) == 0 and len(calls) == 5
    kept = out / 'runs' / 'ce_s0' / 'ap_fixed.json'
    stale = json.loads(kept.read_text())
    stale['settings']['test_options']['model.test_cfg.rcnn.max_per_img'] = 300
    kept.write_text(json.dumps(stale))
    assert bench.main(argv + ['--ap-fixed']) == 0 and len(calls) == 6
    # a re-test that would leave out more than the mask branch is an error, nothing kept
    kept.unlink()
    monkeypatch.setattr(ap_fixed.subprocess, 'call', _fake_retest(calls, (
        'partial load: 1 of 2 model keys match (2 not in the model (e.g. roi_head.mask_head.w'
        '))\n')))
    assert bench.main(argv + ['--ap-fixed']) == 1 and not kept.exists()
    # a killed process's temporary of a marker belongs to the run: the run restarts
    (out / 'runs' / 'ce_s2' / 'result.json').unlink()
    (out / 'runs' / 'ce_s2' / '.result.tmp-123-abcdef12.json').write_text('{')
    assert bench.main(argv) == 0 and _trained(count)[-1] == 'ce_s2'


@pytest.mark.slow
def test_ap_fixed_retest_of_a_real_checkpoint(tmp_path):
    """tools/test.py under the AP-fixed options on a real LT-Digits detector: the box-only model
    loads every checkpoint key but the mask branch, and its box AP-fixed is kept."""
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from lt_digits import make_lt_digits
    from lt_digits.ap_fixed import measure_ap_fixed
    register_all_modules()
    data = Path(make_lt_digits(tmp_path / 'data', seed=3, max_images=60, min_images=1.5,
                               progress=False)['data_root'])
    method = METHODS['ce']
    job = experiments.TrainJob('ce_s0', method.config, tmp_path / 'runs' / 'ce_s0',
                               job_options(method, data, 700, 0))
    experiments.start_run(job)
    (job.work_dir / experiments.RESULT_MARKER).write_text(json.dumps(
        {'settings': experiments.run_settings(job), 'results': {}}))
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(ROOT / method.config)).model)
    torch.save({'state_dict': model.state_dict()}, job.work_dir / 'iter_700.pth')
    results = measure_ap_fixed(job, data)
    assert set(results) == {'AP-fixed box', 'APr-fixed box', 'APc-fixed box', 'APf-fixed box'}
    assert 0 <= results['AP-fixed box'] <= 100
    assert all(v is None or 0 <= v <= 100 for v in results.values())
    assert load_ap_fixed(job) == results
    assert experiments.run_state(job) == 'finished'  # its file belongs to the run


def test_foreign_files_stop_everything_before_it_starts(fake_training, tmp_path, capsys):
    bench, count = fake_training
    out = tmp_path / 'bench'
    mine = out / 'runs' / 'c2am_s0' / 'notes.txt'
    mine.parent.mkdir(parents=True)
    (mine.parent / RUN_MARKER).write_text('{}')
    mine.write_text('user data')
    argv = ['--methods', 'ce', 'c2am', '--seeds', '0', '--out', str(out)]
    assert bench.run_cli(bench.main, argv) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'notes.txt' in err
    assert mine.read_text() == 'user data' and _trained(count) == []
    assert not (out / 'runs' / 'ce_s0').exists()  # nothing started
    # a report written by someone else is never overwritten
    mine.unlink()
    (mine.parent / RUN_MARKER).unlink()
    (out / 'results.json').write_text('{"mine": 1}')
    assert bench.run_cli(bench.main, argv) == 2
    assert (out / 'results.json').read_text() == '{"mine": 1}' and _trained(count) == []


def test_changed_settings_need_force(fake_training, tmp_path):
    bench, count = fake_training
    out = tmp_path / 'bench'
    assert bench.main(['--methods', 'ce', '--seeds', '0', '--out', str(out)]) == 0
    argv = ['--methods', 'ce', '--seeds', '0', '--out', str(out), '--iters', '50']
    assert bench.run_cli(bench.main, argv) == 2
    assert bench.main(argv + ['--force']) == 0
    assert _trained(count) == ['ce_s0', 'ce_s0']


@pytest.mark.parametrize('argv, message', [
    (['--methods', 'nope'], 'unknown method'),
    (['--seeds', '-1'], 'integer >= 0'),
    (['--parallel', '0'], 'integer >= 1'),
    (['--cfg-options', 'novalue'], 'KEY=VALUE'),
    (['--baselines', 'nope'], 'unknown method'),
    (['--baselines', 'peers'], 'unknown method'),
])
def test_bad_arguments_are_one_usage_error(argv, message, tmp_path, capsys):
    bench = _bench('lt_detection')
    with pytest.raises(SystemExit) as exit_:
        bench.main(argv + ['--out', str(tmp_path / 'o')])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()


def test_groups_cover_the_paper_tables():
    assert set(METHOD_GROUPS['peers']) >= {'ce', 'c2am', 'eqlv2', 'fed', 'rfs-ce', 'rfs-c2am'}
    scales = [METHODS[m].options.get('model.roi_head.bbox_head.loss_cls.scale', 30.0)
              for m in METHOD_GROUPS['table3']]
    assert scales == [10.0, 20.0, 30.0, 40.0, 50.0]
    assert len(METHOD_GROUPS['table4']) == 6 and 'c2am-fixed0.1' in METHOD_GROUPS['table5']


@pytest.mark.parametrize('method', ['c2am-s10', 'c2am-alpha0.3', 'c2am-fixed0.1', 'rfs-ce',
                                    'fed', 'eql', 'bags', 'c2am-normcap', 'c2am-clswd',
                                    'cosine-s10'])
def test_variant_options_build_the_intended_model(method, tmp_path):
    """The options a job passes to tools/train.py give the variant (built, not trained)."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    m = METHODS[method]
    ann = tmp_path / 'annotations' / 'lvis_v1_train.json'
    ann.parent.mkdir()
    ann.write_text(json.dumps(dict(images=[dict(id=i) for i in range(10)],
                                   categories=[dict(id=i, name=str(i), frequency='f',
                                                    image_count=i, instance_count=i)
                                               for i in range(1, 101)])))
    cfg = Config.fromfile(str(ROOT / m.config))
    cfg.merge_from_dict(job_options(m, tmp_path, 10, 3))
    assert cfg.randomness.seed == 3 and cfg.train_cfg.max_iters == 10
    train = cfg.train_dataloader.dataset
    if method == 'rfs-ce':
        assert train.type == 'ClassBalancedDataset' and 'data_root' not in train
        train = train.dataset
    assert train.data_root == str(tmp_path) + '/'
    head = MODELS.build(cfg.model.roi_head.bbox_head)
    if method == 'c2am-s10':
        assert head.loss_cls.scale == head.fc_cls.scale == 10.0
    if method == 'cosine-s10':
        assert head.loss_cls.scale == head.fc_cls.scale == 10.0
        assert (head.loss_cls.alpha, head.loss_cls.margin) == (0.0, 'none')
    if method == 'c2am-alpha0.3':
        assert head.loss_cls.alpha == 0.3
    if method == 'c2am-fixed0.1':
        assert (head.loss_cls.margin, head.loss_cls.fixed_margin) == ('fixed', 0.1)
    if method == 'fed':
        assert head.loss_cls.sample_weight[3].item() == pytest.approx(2.0)  # sqrt(4)
    if method == 'eql':  # the tail read from the run's own training file (100 'f' here)
        assert head.loss_cls.freq_threshold == 0.0294 and not head.loss_cls.tail.any()
    if method == 'bags':  # groups of the run's own training file: 1-9, 10-99, 100 instances
        assert [len(c) - 1 for c in head.loss_cls.group_columns()] == [9, 90, 1]
        assert head.fc_cls.out_features == 100 + 2 + 3
    if method == 'c2am-normcap':
        assert head.margin_norm_cap == 2.0 and head.loss_cls.alpha == 0.5
    if method == 'c2am-clswd':  # the decay reaches the classifier's parameter group only
        from mmengine.optim import build_optim_wrapper
        model = MODELS.build(cfg.model)
        groups = build_optim_wrapper(model, cfg.optim_wrapper).optimizer.param_groups
        decay = {id(p): g['weight_decay'] for g in groups for p in g['params']}
        assert decay[id(model.roi_head.bbox_head.fc_cls.weight)] == pytest.approx(0.025)
        assert decay[id(model.roi_head.bbox_head.shared_fcs[0].weight)] == pytest.approx(1e-4)


def test_toy_benchmark_report_rules(tmp_path, capsys):
    toy = _bench('toy_mnist')
    out = tmp_path / 'toy'
    out.mkdir()
    (out / 'results.json').write_text('{"other": true}')
    assert toy.run_cli(toy.main, ['--out', str(out), '--force']) == 2
    assert 'was not written by' in capsys.readouterr().err
    assert (out / 'results.json').read_text() == '{"other": true}'
    assert toy.run_cli(toy.main, ['--out', str(tmp_path / 'none'), '--render-only']) == 2


def test_plot_norm_trajectories_from_logged_scalars(tmp_path, capsys):
    plot = _bench('plot_norm_trajectories')
    runs = {}
    for label, ratio in (('ce', 1.2), ('c2am', 2.0)):
        vis = tmp_path / label / '20260101_000000' / 'vis_data'
        vis.mkdir(parents=True)
        rows = [{'step': s, 'loss': 1.0, 'cls_norm/r': 1.0, 'cls_norm/c': 1.1,
                 'cls_norm/f': ratio * s / 20, 'cls_norm/f_over_r': ratio * s / 20,
                 'cls_norm/spearman_freq': 0.5} | ({'c2am_margin/f_to_r': 0.1 * s / 20,
                                                    'cls_norm/max_over_median': 2.5}
                                                   if label == 'c2am' else {})
                for s in (20, 40)]
        rows.insert(1, {'step': 40, 'lvis/segm_AP': 0.3})  # a validation row, no statistics
        (vis / 'scalars.json').write_text('\n'.join(json.dumps(r) for r in rows))
        runs[label] = f'{label.upper()}={tmp_path / label}'
    out = tmp_path / 'figs' / 'traj'
    assert plot.main([runs['ce'], runs['c2am'], '--out', str(out)]) == 0
    assert out.with_suffix('.png').stat().st_size > 0 and out.with_suffix('.pdf').is_file()
    data = json.loads(out.with_suffix('.json').read_text())
    assert data['C2AM']['series']['cls_norm/f_over_r'] == [[20, 2.0], [40, 4.0]]
    assert 'c2am_margin/f_to_r' not in data['CE']['series']
    assert data['C2AM']['series']['cls_norm/max_over_median'] == [[20, 2.5], [40, 2.5]]
    # without any run that logged the spike statistic the plot has no empty panel: it runs too
    assert plot.main([runs['ce'], '--out', str(tmp_path / 'figs' / 'ce_only')]) == 0
    assert plot.run_cli(plot.main, [runs['ce'], '--out', str(out)]) == 2  # exists: --force
    assert 'exists' in capsys.readouterr().err
    (tmp_path / 'empty').mkdir()
    assert plot.run_cli(plot.main, [f'X={tmp_path / "empty"}', '--out', str(tmp_path / 'o')]) == 2


@pytest.mark.parametrize('method', ['ce', 'rfs-c2am'])
def test_iters_stretch_the_lr_schedule(method, tmp_path):
    """--iters moves the LR steps with the run length (75 % / 92 %, as the configs place them
    for 700) instead of keeping them at iterations 525 / 644; 700 changes nothing."""
    from projects.c2am.run_checks import cfg_options_action, load_config
    m = METHODS[method]
    assert experiments.schedule_options(m.config, 700) == {}
    for iters, steps in ((1400, [1050, 1288]), (150, [112, 138])):
        job = experiments.TrainJob('x', m.config, tmp_path, job_options(m, tmp_path, iters, 0))
        # through the command line exactly as tools/train.py parses it
        parser = argparse.ArgumentParser()
        parser.add_argument('--cfg-options', nargs='+', action=cfg_options_action())
        argv = job.command()
        opts = parser.parse_args(argv[argv.index('--cfg-options'):]).cfg_options
        cfg = load_config(ROOT / m.config, opts)
        warmup, steps_sched = cfg.param_scheduler
        assert warmup.end == 100  # warm-up keeps its length
        assert steps_sched.end == iters and steps_sched.milestones == steps
        assert cfg.train_cfg.max_iters == iters


def test_a_changed_config_file_is_not_a_finished_run(tmp_path):
    """The run records its config's resolved content: editing the file (or its _base_) after the
    run finished makes the run 'other settings' (re-train with --force), not a silent reuse."""
    from projects.c2am.cli import UserError
    base = tmp_path / 'base.py'
    base.write_text("model = dict(type='X', width=1)\n")
    cfg = tmp_path / 'variant.py'
    cfg.write_text("_base_ = './base.py'\noptimizer = dict(lr=0.1)\n")
    job = experiments.TrainJob('v_s0', str(cfg), tmp_path / 'runs' / 'v_s0', {'seed': 0})
    experiments.start_run(job)
    (job.work_dir / experiments.RESULT_MARKER).write_text('{}')
    assert experiments.run_state(job) == 'finished'
    base.write_text("model = dict(type='X', width=2)\n")  # the base changes
    with pytest.raises(UserError, match='other settings.*changed config file counts'):
        experiments.run_state(job)
    assert experiments.run_state(job, force=True) == 'restart'
    # a run recorded before configs were digested: path and options only
    recorded = json.loads((job.work_dir / RUN_MARKER).read_text())
    del recorded['config_sha256']
    (job.work_dir / RUN_MARKER).write_text(json.dumps(recorded))
    assert experiments.run_state(job) == 'finished'


def test_a_finished_run_is_recognised_from_another_data_folder(tmp_path):
    """A run records its paths under the data root as ``{data_root}/...``: the same run found
    from another clone or data folder is finished, not re-trained or refused; so is a run
    recorded with absolute paths; another seed is another run."""
    from projects.c2am.cli import UserError
    method = METHODS['ce']
    here, there = tmp_path / 'here' / 'lt_digits', tmp_path / 'there' / 'lt_digits'
    first = experiments.TrainJob('ce_s0', method.config, tmp_path / 'runs' / 'ce_s0',
                                 job_options(method, here, 700, 0))
    experiments.start_run(first)
    (first.work_dir / experiments.RESULT_MARKER).write_text('{}')
    recorded = json.loads((first.work_dir / RUN_MARKER).read_text())
    assert str(here) not in json.dumps(recorded)
    assert recorded['options']['val_evaluator.ann_file'] == \
        '{data_root}/annotations/lvis_v1_val.json'
    moved = experiments.TrainJob('ce_s0', method.config, first.work_dir,
                                 job_options(method, there, 700, 0))
    assert experiments.run_state(moved) == 'finished'
    # the recorded options point at the data folder of whoever reads them
    local = experiments.local_options(recorded['options'], there)
    assert local == json.loads(json.dumps(moved.options))
    # a record with absolute paths (written before they were portable): read with its own
    # data root as the placeholder, so it is the same run from anywhere
    legacy = recorded | {'options': json.loads(json.dumps(first.options))}
    (first.work_dir / RUN_MARKER).write_text(json.dumps(legacy))
    assert experiments.run_state(first) == 'finished'
    assert experiments.run_state(moved) == 'finished'
    assert experiments.local_options(legacy['options'], there) == local
    # ... and the harness rewrites it in the portable form, results untouched
    (first.work_dir / experiments.RESULT_MARKER).write_text(json.dumps(
        {'settings': legacy, 'results': {'AP mask': 31.5}}))
    assert experiments.make_record_portable(first)
    assert not experiments.make_record_portable(first)  # once
    assert json.loads((first.work_dir / RUN_MARKER).read_text()) == recorded
    marker = json.loads((first.work_dir / experiments.RESULT_MARKER).read_text())
    assert marker == {'settings': recorded, 'results': {'AP mask': 31.5}}
    # another seed is another run
    reseeded = experiments.TrainJob('ce_s0', method.config, first.work_dir,
                                    job_options(method, here, 700, 1))
    with pytest.raises(UserError, match='other settings'):
        experiments.run_state(reseeded)


def test_ablation_figure_reads_each_methods_setting(tmp_path, capsys):
    """x-values come from each method's config and options (the cosine classifier is alpha 0,
    the default run s = 30 / alpha = 0.5 / adaptive); means and seeds are the report's."""
    plot = _bench('plot_ablations')
    ap = {'c2am-s10': 10.0, 'c2am': 30.0, 'c2am-s50': 20.0, 'cosine': 25.0,
          'c2am-alpha1.0': 27.0, 'c2am-fixed0.1': 26.0}
    runs = {f'{m}_s{s}': {'AP mask': v + s, 'APr': v / 2, 'APc': v, 'APf': v + 10}
            for m, v in ap.items() for s in (0, 1)}
    runs['c2am-s20_s0'] = {'AP mask': 28.0, 'APr': None, 'APc': 1.0, 'APf': 2.0}
    out = tmp_path / 'runs'
    out.mkdir()
    (out / 'results.json').write_text(json.dumps(dict(
        tool='benchmarks/lt_detection.py', header='h', seeds=[0, 1], runs=runs)))
    prefix = tmp_path / 'fig' / 'abl'
    assert plot.main([str(out), '--out', str(prefix)]) == 0
    data = json.loads(prefix.with_suffix('.json').read_text())['tables']
    s_points = data['table3']['points']
    assert [(p['method'], p['x']) for p in s_points] == [
        ('c2am-s10', 10.0), ('c2am-s20', 20.0), ('c2am', 30.0), ('c2am-s50', 50.0)]
    assert s_points[2]['AP mask'] == {'mean': 30.5, 'per_seed': {'0': 30.0, '1': 31.0}}
    assert s_points[1]['seeds'] == [0] and s_points[1]['APr'] == {'mean': None, 'per_seed': {}}
    assert [(p['method'], p['x']) for p in data['table4']['points']] == [
        ('cosine', 0.0), ('c2am', 0.5), ('c2am-alpha1.0', 1.0)]
    assert [p['x'] for p in data['table5']['points']] == ['none', 'fixed 0.1', 'adaptive']
    assert prefix.with_suffix('.png').stat().st_size > 0 and prefix.with_suffix('.pdf').is_file()
    # existing outputs need --force; a report without ablation runs or of another tool: refused
    assert plot.run_cli(plot.main, [str(out), '--out', str(prefix)]) == 2
    assert 'exists' in capsys.readouterr().err
    (out / 'results.json').write_text(json.dumps(dict(
        tool='benchmarks/lt_detection.py', seeds=[0], runs={'ce_s0': runs['c2am_s0']})))
    assert plot.run_cli(plot.main, [str(out), '--out', str(tmp_path / 'x')]) == 2
    assert 'no run of the ablation methods' in capsys.readouterr().err
    (out / 'results.json').write_text(json.dumps(dict(tool='other', runs={})))
    assert plot.run_cli(plot.main, [str(out), '--out', str(tmp_path / 'x')]) == 2
    assert 'was not written by benchmarks/lt_detection.py' in capsys.readouterr().err
    assert plot.run_cli(plot.main, [str(tmp_path / 'none'), '--out', str(tmp_path / 'x')]) == 2


RESULTS = ROOT / 'benchmarks' / 'results'


def test_the_recorded_sweep_resumes_from_this_checkout(tmp_path):
    """Every run recorded in the repository (``benchmarks/results/lt_digits*``, one folder per
    schedule) is 'finished' for the harness's own job (any data folder, today's configs), so
    `--out` that folder re-trains none of them; a config edited since would fail here instead of
    silently describing other settings."""
    folders = sorted(p.parent for p in RESULTS.glob('lt_digits*/runs/*/result.json'))
    assert folders, 'no recorded runs'
    bench = _bench('lt_detection')
    for folder in folders:
        method, seed = folder.name.rsplit('_s', 1)
        recorded = json.loads((folder / RUN_MARKER).read_text())
        args = argparse.Namespace(cfg_options=[], out=folder.parents[1],
                                  data_root=tmp_path / 'data',
                                  iters=recorded['options']['train_cfg.max_iters'])
        (job,) = bench.plan([method], [int(seed)], args)
        assert job.work_dir == folder
        assert experiments.run_state(job) == 'finished', folder.name
        result = json.loads((folder / experiments.RESULT_MARKER).read_text())
        assert all(isinstance(result['results'][k], float) for k in ('AP mask', 'APr', 'APf'))
        if (folder / AP_FIXED_FILE).is_file():  # kept under today's AP-fixed test settings
            assert load_ap_fixed(job) is not None, folder.name
