"""benchmarks/apf_study.py: the per-category statistics against hand computation, bad input,
and a whole report from kept tests (no detector is re-tested here)."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from projects.c2am.cli import UserError

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location('apf_study', ROOT / 'benchmarks' / 'apf_study.py')
study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study)


def test_spearman_matches_scipy_with_ties_and_refuses_degenerate_series():
    a, b = [1.0, 2.0, 2.0, 5.0, 3.0], [3.0, 1.0, 1.0, 2.0, 0.5]
    assert study.spearman(a, b) == pytest.approx(spearmanr(a, b)[0])
    assert study.spearman([1.0, 2.0], [2.0, 1.0]) is None  # two pairs say nothing
    assert study.spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None


def test_paired_seed_by_hand():
    # median norm 1.0 -> spikes are norms above 2.0: categories 4 (f) and 1 (r)
    norms = np.array([0.5, 2.5, 1.0, 1.0, 3.0, 1.2, 0.8])
    groups = np.array(['r', 'r', 'c', 'c', 'f', 'f', 'f'])
    base = np.array([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0])
    ap = np.array([15.0, 18.0, np.nan, 42.0, 40.0, 61.0, 69.0])  # category 2: no valid AP
    out = study.paired_seed(norms, ap, base, groups)
    assert out['r'] == dict(n=2, ap=16.5, base_ap=15.0, delta=1.5, losing=1, spikes=[1],
                            delta_spikes=-2.0, delta_rest=5.0, spearman_norm_delta=None)
    assert out['c']['n'] == 1 and out['c']['delta'] == 2.0 and out['c']['spikes'] == []
    f = out['f']
    assert f['delta'] == pytest.approx((-10.0 + 1.0 - 1.0) / 3) and f['losing'] == 2
    assert f['spikes'] == [4] and f['delta_spikes'] == -10.0 and f['delta_rest'] == 0.0
    # norms 3.0, 1.2, 0.8 against changes -10, +1, -1: ranks (3,2,1) vs (1,3,2)
    assert f['spearman_norm_delta'] == pytest.approx(spearmanr([3, 1.2, 0.8], [-10, 1, -1])[0])


def test_spike_overlap_is_the_mean_pairwise_jaccard():
    assert study.spike_overlap([{1, 2}, {2, 3}, {2}]) == pytest.approx((1 / 3 + 1 / 2 + 1 / 2)
                                                                        / 3)
    assert study.spike_overlap([set(), set()]) is None
    assert study.spike_overlap([{1}]) is None


# ---------------------------------------------------------------- a whole report -----------
C, D = 6, 4
GROUPS = ['r', 'r', 'c', 'c', 'f', 'f']
CE_AP = [0.10, 0.20, 0.30, 0.40, 0.50, 0.60]
C2AM_AP = {0: [0.30, 0.30, 0.35, 0.40, 0.40, 0.62], 1: [0.20, 0.30, 0.30, 0.45, 0.45, 0.58]}


def _run(runs: Path, method: str, seed: int, aps: list, norms: list, logged=None):
    folder = runs / 'runs' / f'{method}_s{seed}'
    folder.mkdir(parents=True)
    group_ap = {g: 100 * float(np.mean([a for a, x in zip(aps, GROUPS) if x == g]))
                for g in 'rcf'}
    logged = logged or {f'AP{g}': v for g, v in group_ap.items()}
    (folder / 'result.json').write_text(json.dumps(dict(
        settings=dict(config='configs/lt_digits/mask-rcnn_r18-half_fpn_ce_lt-digits.py',
                      options={}), results=logged)))
    weight = torch.zeros(C + 1, D)
    weight[:C, 0] = torch.tensor(norms)
    weight[C, 1] = 5.0  # background row: not a category
    torch.save({'state_dict': {'roi_head.bbox_head.fc_cls.weight': weight}, 'meta': {}},
               folder / 'iter_10.pth')
    kept = runs / 'apf_study' / 'tests' / f'{method}_s{seed}'
    kept.mkdir(parents=True)
    (kept / study.PER_CATEGORY).write_text(json.dumps(dict(
        categories={str(i + 1): dict(name=str(i), frequency=g, ap_segm=a, ap_bbox=a)
                    for i, (g, a) in enumerate(zip(GROUPS, aps))},
        summary=dict(segm={f'AP{g}': v / 100 for g, v in group_ap.items()}))))


def test_report_from_kept_tests(tmp_path, capsys):
    runs = tmp_path / 'runs_out'
    for seed in (0, 1):
        _run(runs, 'ce', seed, CE_AP, [1.0] * C)
        _run(runs, 'c2am', seed, C2AM_AP[seed], [1.0, 1.0, 1.0, 1.0, 3.0, 1.0])
    assert study.main([str(runs), '--seeds', '0', '1']) == 0
    doc = json.loads((runs / 'apf_study' / 'apf_study.json').read_text())
    s0 = doc['methods']['c2am']['per_seed']['0']
    assert s0['r']['delta'] == pytest.approx(15.0) and s0['f']['delta'] == pytest.approx(-4.0)
    assert s0['f']['spikes'] == [4] and s0['f']['delta_spikes'] == pytest.approx(-10.0)
    summary = doc['methods']['c2am']['summary']
    # APf change: -4.0 (seed 0) and (-5 - 2) / 2 = -3.5 (seed 1): -3.75, negative in 2 of 2
    assert summary['f']['delta'] == pytest.approx(-3.75) and summary['f']['same_sign'] == 2
    assert summary['spike_overlap'] == 1.0  # the same category spikes in both seeds
    for ext in ('md', 'png', 'pdf'):
        assert (runs / 'apf_study' / f'apf_study.{ext}').stat().st_size > 0
    # the report is not overwritten without --force; with it, the kept tests are reused
    assert study.main([str(runs), '--seeds', '0', '1']) == 2
    assert 'exists; pass --force' in capsys.readouterr().err
    assert study.main([str(runs), '--seeds', '0', '--force']) == 0


def test_a_retest_that_disagrees_with_the_training_log_is_refused(tmp_path, capsys):
    runs = tmp_path / 'runs_out'
    _run(runs, 'ce', 0, CE_AP, [1.0] * C, logged={'APr': 15.0, 'APc': 35.0, 'APf': 57.0})
    _run(runs, 'c2am', 0, C2AM_AP[0], [1.0] * C)
    assert study.main([str(runs), '--seeds', '0']) == 2
    err = capsys.readouterr().err
    assert 'ce_s0' in err and 'APf 55.0' in err and 'logged 57.0' in err
    assert not (runs / 'apf_study' / 'apf_study.json').exists()


@pytest.mark.parametrize('argv, message', [
    (['--methods', 'nope'], "unknown method 'nope'"),
    (['--methods', 'ce'], "'ce' is the baseline"),
    (['--test-scales', '0'], 'a finite number > 0'),
    (['--seeds', '3'], 'no finished run'),
])
def test_bad_input_is_one_line(tmp_path, capsys, argv, message):
    runs = tmp_path / 'runs_out'
    _run(runs, 'ce', 0, CE_AP, [1.0] * C)
    _run(runs, 'c2am', 0, C2AM_AP[0], [1.0] * C)
    seeds = [] if '--seeds' in argv else ['--seeds', '0']
    assert study.main([str(runs), *seeds, *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and 'Traceback' not in err[0]


def test_missing_runs_folder(tmp_path, capsys):
    assert study.main([str(tmp_path / 'absent')]) == 2
    assert 'not a directory' in capsys.readouterr().err


def test_check_against_log_tolerates_rounding_only():
    record = dict(settings={}, results={'APr': 20.4, 'APf': 49.5})
    result = dict(summary=dict(segm={'APr': 0.2043, 'APc': 0.41, 'APf': 0.4951}))
    study.check_against_log(record, result, 'x')  # APc not logged: not compared
    result['summary']['segm']['APr'] = 0.207
    with pytest.raises(UserError, match='APr 20.7, the run logged 20.4'):
        study.check_against_log(record, result, 'x')
