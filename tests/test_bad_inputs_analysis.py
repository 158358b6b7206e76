"""analysis/weight_norm_plot.py (and its checkpoint / frequency readers) on bad input.

Every case: exit status 2, one ``error:`` line that names the problem, no traceback, and no
file written or changed. Then the cases that used to give silently wrong results.
"""
import json
import math
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from analysis import weight_norm_plot as wnp
from projects.c2am.cli import run_cli

KEY = 'roi_head.bbox_head.fc_cls.weight'


class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def _cli(capsys, *args):
    """Run the CLI in-process like ``python analysis/weight_norm_plot.py``: (status, stderr)."""
    try:
        status = run_cli(wnp.main, [str(a) for a in args])
    except SystemExit as exc:  # argparse
        status = exc.code
    return status, capsys.readouterr().err


def _assert_clean_error(status, err, message):
    assert status == 2, err
    assert 'Traceback' not in err, err
    lines = [line for line in err.splitlines() if 'error:' in line]
    assert len(lines) == 1, err
    assert message in lines[0], err


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob('*'))
            if p.is_file()}


def _detector(path, w, meta=None):
    torch.save({'state_dict': {KEY: w, 'backbone.conv1.weight': torch.ones(2, 3, 1, 1)},
                'meta': meta or {}}, path)
    return path


def _norm_rows(norms, extra_zero=1):
    w = torch.zeros(len(norms) + extra_zero, 3)
    w[:, 0] = torch.tensor(list(norms) + [50.0] * extra_zero)
    return w


@pytest.fixture
def case(tmp_path):
    """A valid 6-class detector checkpoint and annotation file, and an output folder."""
    ckpt = _detector(tmp_path / 'det.pth', _norm_rows([8, 7, 4, 3, 1, 0.5]))
    counts = [500, 300, 60, 20, 5, 2]
    cats = [dict(id=i + 1, name=f'c{i}', frequency=f, instance_count=n, image_count=n)
            for i, (f, n) in enumerate(zip('ffccrr', counts))]
    ann = tmp_path / 'ann.json'
    ann.write_text(json.dumps(dict(categories=cats, images=[], annotations=[])))
    out = tmp_path / 'out'
    out.mkdir()
    return dict(ckpt=ckpt, ann=ann, out=out, dir=tmp_path, cats=cats)


def _expect_refused(capsys, case, args, message):
    before = _snapshot(case['dir'])
    status, err = _cli(capsys, *args, '--out', case['out'] / 'fig')
    _assert_clean_error(status, err, message)
    assert _snapshot(case['dir']) == before  # nothing written, nothing changed


# -- arguments --------------------------------------------------------------------------------

@pytest.mark.parametrize('extra, message', [
    (['--stage', '-1'], 'expected an integer >= 0'),
    (['--stage', 'one'], 'expected an integer >= 0'),
    (['--alpha', 'nan'], 'expected a finite number >= 0'),
    (['--alpha', 'inf'], 'expected a finite number >= 0'),
    (['--alpha', '-0.5'], 'expected a finite number >= 0'),
    (['--labels', 'a', 'b'], '--labels gives 2 label(s) for 1 checkpoint(s)'),
    (['--key', KEY, '--stage', '0'], '--key and --stage exclude each other'),
    (['--ann', 'missing.json'], 'missing.json: not found, expected a file'),
    (['--per-class-ap', 'missing.json'], 'missing.json: not found'),
])
def test_bad_arguments(capsys, case, extra, message):
    _expect_refused(capsys, case, [case['ckpt'], *extra], message)


def test_bad_checkpoint_arguments(capsys, case):
    _expect_refused(capsys, case, [case['dir'] / 'nope.pth'], 'nope.pth: not found')
    _expect_refused(capsys, case, [case['out']], 'a directory, expected a file')
    _expect_refused(capsys, case, [case['ckpt']] * 3, 'give one checkpoint, or two')
    _expect_refused(capsys, case, [case['ckpt'], case['ckpt'], '--labels', 'x', 'x'],
                    '--labels repeats a label')
    _expect_refused(capsys, case, [case['ckpt'], '--per-class-ap', case['ann'], case['ann']],
                    'one --per-class-ap file per checkpoint at most')


# -- checkpoint files -------------------------------------------------------------------------

def _bad_checkpoints(d: Path) -> dict:
    files = {}
    files['empty'] = d / 'empty.pth'
    files['empty'].write_bytes(b'')
    files['text'] = d / 'notes.pth'
    files['text'].write_text('these are my notes\n')
    files['random'] = d / 'random.pth'
    files['random'].write_bytes(np.random.default_rng(0).bytes(4096))
    good = d / 'good.pth'
    torch.save({'state_dict': {KEY: torch.ones(7, 3)}}, good)
    files['truncated'] = d / 'truncated.pth'
    files['truncated'].write_bytes(good.read_bytes()[:300])
    files['json'] = d / 'config.json'
    files['json'].write_text('{"model": 1}')
    files['zip'] = d / 'other.zip'
    with zipfile.ZipFile(files['zip'], 'w') as z:
        z.writestr('a.txt', 'x')
    files['tensor'] = d / 'tensor.pth'
    torch.save(torch.ones(3, 3), files['tensor'])
    files['no_tensors'] = d / 'no_tensors.pth'
    torch.save({'state_dict': {'a': 1, 'b': 'x'}}, files['no_tensors'])
    good.unlink()
    return files


@pytest.mark.parametrize('name, message', [
    ('empty', 'not a readable PyTorch checkpoint'),
    ('text', 'not a'),
    ('random', 'not a'),
    ('truncated', 'not a readable PyTorch checkpoint'),
    ('json', 'not a'),
    ('zip', 'not a readable PyTorch checkpoint'),
    ('tensor', 'holds no state_dict'),
    ('no_tensors', 'holds no tensors'),
])
def test_checkpoints_that_are_not_checkpoints(capsys, case, name, message):
    path = _bad_checkpoints(case['dir'])[name]
    _expect_refused(capsys, case, [path], message)


def test_checkpoint_that_runs_code_is_refused(capsys, case):
    marker = case['dir'] / 'pwned'
    for i, payload in enumerate(({'state_dict': {KEY: torch.ones(7, 3)}, 'x': _RunsCode(marker)},
                                 [_RunsCode(marker)])):
        path = case['dir'] / f'evil{i}.pth'
        torch.save(payload, path)
        _expect_refused(capsys, case, [path], 'refused to load')
        raw = case['dir'] / f'evil{i}.pkl'  # a bare pickle (legacy-format reader)
        raw.write_bytes(pickle.dumps(payload))
        _expect_refused(capsys, case, [raw], 'evil')
    assert not marker.exists()


def test_legacy_format_checkpoint_is_read(capsys, case):
    legacy = case['dir'] / 'legacy.pth'
    torch.save({'state_dict': torch.load(case['ckpt'], weights_only=True)['state_dict'],
                'meta': {}}, legacy, _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(legacy)
    status, err = _cli(capsys, legacy, '--ann', case['ann'], '--out', case['out'] / 'legacy')
    assert status == 0, err
    (s,) = json.loads((case['out'] / 'legacy.json').read_text())['summary']
    assert s['num_classes'] == 6 and s['spearman_norm_frequency'] == pytest.approx(1.0)


@pytest.mark.parametrize('weight, key, message', [
    (torch.ones(7), KEY, 'is a 1-D float32 tensor'),
    (torch.ones(7, 3, 2), KEY, 'is a 3-D float32 tensor'),
    (torch.ones(7, 3, dtype=torch.int64), KEY, 'is a 2-D int64 tensor'),
    (torch.ones(7, 3), 'roi_head.absent', '--key roi_head.absent is not in the checkpoint'),
    (torch.ones(1, 3), None, 'has 0 category rows'),  # a head with one (background) row
    (torch.ones(2, 3), None, 'has 1 category rows'),
    (torch.ones(7, 0), None, 'of 0 features'),
])
def test_classifier_of_the_wrong_shape(capsys, case, weight, key, message):
    ckpt = case['dir'] / 'shape.pth'
    torch.save({'state_dict': {KEY: weight, 'roi_head.nope': torch.ones(1)}}, ckpt)
    args = [ckpt] + (['--key', key] if key else [])
    _expect_refused(capsys, case, args, message)


def test_cascade_head_with_one_row(capsys, case):
    ckpt = case['dir'] / 'cascade.pth'
    torch.save({'state_dict': {f'roi_head.bbox_head.{i}.fc_cls.weight': torch.ones(1, 4)
                               for i in range(3)}}, ckpt)
    _expect_refused(capsys, case, [ckpt], 'has 0 category rows')


@pytest.mark.parametrize('value, message', [
    (float('nan'), 'hold NaN/Inf (first: class index 2)'),
    (float('inf'), 'hold NaN/Inf (first: class index 2)'),
    (0.0, 'are all zero (first: class index 2)'),
])
def test_non_finite_or_zero_rows_are_refused(capsys, case, value, message):
    w = _norm_rows([8, 7, 4, 3, 1, 0.5])
    w[2] = value
    ckpt = _detector(case['dir'] / 'bad_rows.pth', w)
    _expect_refused(capsys, case, [ckpt, '--ann', case['ann']], message)


def test_no_classifier_found(capsys, case):
    ckpt = case['dir'] / 'backbone.pth'
    torch.save({'backbone.conv.weight': torch.ones(3, 3)}, ckpt)
    _expect_refused(capsys, case, [ckpt], 'no classifier weight found; pass --key')


# -- annotation files -------------------------------------------------------------------------

def _ann_cases(case) -> list:
    good = case['cats']
    return [
        ('{not json', 'not a readable LVIS-format annotation file'),
        ('[1, 2]', 'no "categories"'),
        ('{"images": []}', 'no "categories"'),
        ('{"categories": []}', '"categories" must be a non-empty list'),
        ('{"categories": {"1": "a"}}', '"categories" must be a non-empty list'),
        (json.dumps({'categories': [{'name': 'a', 'frequency': 'f'}]}), 'an integer "id"'),
        (json.dumps({'categories': [dict(good[0], id='1')] + good[1:]}), 'an integer "id"'),
        (json.dumps({'categories': good + [good[0]]}), 'category id 1 appears twice'),
        (json.dumps({'categories': [dict(good[0], frequency='x')] + good[1:]}),
         "frequency 'x' (expected r, c or f)"),
        (json.dumps({'categories': [{k: v for k, v in good[0].items() if k != 'frequency'}]
                     + good[1:]}), 'without "frequency"'),
        (json.dumps({'categories': [dict(good[0], instance_count=-3)] + good[1:]}),
         'has instance_count -3'),
        (json.dumps({'categories': [dict(good[0], image_count='many')] + good[1:]}),
         "has image_count 'many'"),
        (json.dumps({'categories': [{k: v for k, v in c.items() if 'count' not in k}
                                    for c in good],
                     'annotations': [{'image_id': 1, 'category_id': 99}]}),
         'category_id 99, which is not in "categories"'),
        (json.dumps({'categories': [{k: v for k, v in c.items() if 'count' not in k}
                                    for c in good],
                     'annotations': [{'image_id': 1}]}), "lacks 'category_id'"),
        (json.dumps({'categories': good[:4]}), 'does not fit the 4 categories'),
    ]


def test_bad_annotation_files(capsys, case):
    for i, (text, message) in enumerate(_ann_cases(case)):
        ann = case['dir'] / f'ann{i}.json'
        ann.write_text(text)
        _expect_refused(capsys, case, [case['ckpt'], '--ann', ann], message)


def test_annotation_that_is_a_directory(capsys, case):
    _expect_refused(capsys, case, [case['ckpt'], '--ann', case['out']], 'a directory')


# -- per-class AP files -----------------------------------------------------------------------

def _ap(ids, value=0.5):
    return {'categories': {str(i): {'ap_bbox': value, 'ap_segm': value} for i in ids}}


@pytest.mark.parametrize('content, message', [
    ('{not json', 'not a per_class_ap.py output'),
    ('[]', 'no "categories" object'),
    ('{"categories": [1, 2]}', 'no "categories" object'),
    ('{"categories": {"abc": {"ap_bbox": 0.1}}}', "category key 'abc' is not an id"),
    ('{"categories": {"1": 0.5}}', 'category 1: expected an object'),
    (json.dumps(_ap(range(1, 7), 1.5)), 'ap_bbox 1.5 is not in [0, 1]'),
    (json.dumps(_ap(range(1, 7), 'high')), "ap_bbox 'high' is not in [0, 1]"),
    (json.dumps(_ap(range(1, 7), True)), 'ap_bbox True is not in [0, 1]'),
    (json.dumps(_ap(range(1, 7))).replace('0.5', 'Infinity'), 'ap_bbox inf is not in [0, 1]'),
    (json.dumps(_ap(range(1, 4))),
     'does not cover the categories of the classifier (3 missing, e.g. id 4)'),
])
def test_bad_per_class_ap_files(capsys, case, content, message):
    ap = case['dir'] / 'ap.json'
    ap.write_text(content)
    _expect_refused(capsys, case, [case['ckpt'], '--ann', case['ann'], '--per-class-ap', ap],
                    message)


# -- output locations -------------------------------------------------------------------------

def test_output_whose_parent_is_a_file(capsys, case):
    blocker = case['dir'] / 'blocker'
    blocker.write_text('x')
    before = _snapshot(case['dir'])
    status, err = _cli(capsys, case['ckpt'], '--out', blocker / 'fig')
    _assert_clean_error(status, err, 'is a file, not a directory')
    assert _snapshot(case['dir']) == before


def test_existing_outputs_are_kept_without_force(capsys, case):
    for suffix in ('png', 'json'):  # one of the three is enough to refuse
        (case['out'] / f'fig.{suffix}').write_text('my earlier figure')
        _expect_refused(capsys, case, [case['ckpt']], f'fig.{suffix} exists; pass --force')
        (case['out'] / f'fig.{suffix}').unlink()
    (case['out'] / 'fig.pdf').mkdir()  # a directory where a file goes: refused even with force
    _expect_refused(capsys, case, [case['ckpt'], '--force'], 'is a directory; expected a file')


def test_out_given_with_a_suffix_means_the_stem(capsys, case):
    status, err = _cli(capsys, case['ckpt'], '--ann', case['ann'], '--out',
                       case['out'] / 'fig.png')
    assert status == 0, err
    assert sorted(p.name for p in case['out'].iterdir()) == ['fig.json', 'fig.pdf', 'fig.png']


def test_failed_run_leaves_earlier_outputs_and_no_temporaries(capsys, case, monkeypatch):
    args = [case['ckpt'], '--ann', case['ann'], '--out', case['out'] / 'fig']
    assert _cli(capsys, *args)[0] == 0
    before = _snapshot(case['out'])

    def plot_then_die(curves, info, aps, png, pdf):
        Path(png).write_bytes(b'half a figure')
        raise KeyboardInterrupt  # Ctrl-C midway through writing

    monkeypatch.setattr(wnp, 'plot', plot_then_die)
    status, err = _cli(capsys, *args, '--force')
    assert status == 130 and 'interrupted' in err
    assert _snapshot(case['out']) == before
    assert sorted(p.name for p in case['out'].iterdir()) == ['fig.json', 'fig.pdf', 'fig.png']


def test_temporaries_of_a_killed_run_are_removed_on_rerun(capsys, case):
    dead = case['out'] / '.fig.tmp-999999999-deadbeef.png'  # no such process
    dead.write_bytes(b'left by a killed run')
    mine = case['out'] / '.fig-notes.txt'
    mine.write_text('not a temporary')
    status, err = _cli(capsys, case['ckpt'], '--ann', case['ann'], '--out', case['out'] / 'fig')
    assert status == 0, err
    assert not dead.exists() and mine.read_text() == 'not a temporary'


# -- results that used to be silently wrong ---------------------------------------------------

def _strict_json(path):
    def refuse(token):
        raise AssertionError(f'{token} in {path}')
    return json.loads(Path(path).read_text(), parse_constant=refuse)


def test_per_class_ap_pairs_with_its_checkpoint_not_a_label_prefix(capsys, case):
    a = _detector(case['dir'] / 'a.pth', _norm_rows([8, 7, 4, 3, 1, 0.5]))
    b = _detector(case['dir'] / 'b.pth', _norm_rows([0.5, 1, 3, 4, 7, 8]))
    ap_rising = case['dir'] / 'ap_a.json'
    ap_falling = case['dir'] / 'ap_b.json'
    ap_rising.write_text(json.dumps({'categories': {
        str(i): {'ap_bbox': v} for i, v in zip(range(1, 7), [.6, .5, .4, .3, .2, .1])}}))
    ap_falling.write_text(json.dumps({'categories': {
        str(i): {'ap_bbox': v} for i, v in zip(range(1, 7), [.1, .2, .3, .4, .5, .6])}}))
    status, err = _cli(capsys, a, b, '--labels', 'c2am', 'c2am-bg', '--ann', case['ann'],
                       '--per-class-ap', ap_rising, ap_falling, '--out', case['out'] / 'cmp')
    assert status == 0, err
    s_a, s_b = _strict_json(case['out'] / 'cmp.json')['summary']
    # each AP file goes with its own checkpoint: both correlate +1 with their own AP
    assert (s_a['label'], s_b['label']) == ('c2am', 'c2am-bg')
    assert s_a['spearman_norm_ap_bbox'] == pytest.approx(1.0)
    assert s_b['spearman_norm_ap_bbox'] == pytest.approx(1.0)


def test_two_checkpoints_with_the_same_name_keep_both_entries(capsys, case):
    runs = []
    for name, norms in (('run1', [8, 7, 4, 3, 1, 0.5]), ('run2', [1, 1, 2, 2, 3, 3])):
        (case['dir'] / name).mkdir()
        runs.append(_detector(case['dir'] / name / 'model.pth', _norm_rows(norms)))
    status, err = _cli(capsys, *runs, '--ann', case['ann'], '--out', case['out'] / 'cmp')
    assert status == 0, err
    rec = _strict_json(case['out'] / 'cmp.json')
    assert sorted(rec['norms']) == ['run1/model', 'run2/model']
    assert rec['norms']['run1/model'] == [8, 7, 4, 3, 1, 0.5]
    assert rec['norms']['run2/model'] == [1, 1, 2, 2, 3, 3]
    assert [s['label'] for s in rec['summary']] == ['run1/model', 'run2/model']


def test_constant_norms_give_null_not_nan(capsys, case):
    ckpt = _detector(case['dir'] / 'flat.pth', _norm_rows([2] * 6))
    status, err = _cli(capsys, ckpt, '--ann', case['ann'], '--out', case['out'] / 'flat')
    assert status == 0, err
    (s,) = _strict_json(case['out'] / 'flat.json')['summary']
    assert s['spearman_norm_frequency'] is None
    assert s['norm_ratio_head_tail'] == 1.0 and s['implied_margin_head_to_tail']['max'] == 0.0


# -- where category frequencies come from -----------------------------------------------------

def _lvis_rows(n, extra=1):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n + extra, 4, generator=g) + 0.5


def _lvis_groups(version):
    data = json.loads((wnp.ROOT / 'analysis' / 'data' /
                       f'lvis_{version}_categories.json').read_text())
    return [c['frequency'] for c in data['categories']]


@pytest.mark.parametrize('rows, extra, meta, version', [
    (1203, 1, {}, 'v1'),
    (1230, 1, {}, 'v0.5'),
    (1203, 2, {'cfg': "model = dict(roi_head=dict(bbox_head=dict(loss_cls=dict("
                      "type='SeesawLoss'))))"}, 'v1'),
])
def test_lvis_sized_classifier_without_ann_uses_shipped_metadata(capsys, case, rows, extra,
                                                                  meta, version):
    ckpt = _detector(case['dir'] / 'lvis.pth', _lvis_rows(rows, extra), meta)
    status, err = _cli(capsys, ckpt, '--out', case['out'] / 'lvis')
    assert status == 0, err
    assert 'warning' not in err
    rec = _strict_json(case['out'] / 'lvis.json')
    (s,) = rec['summary']
    assert s['num_classes'] == rows
    assert f'LVIS {version} frequency groups shipped' in s['frequency_source']
    assert s['head_tail_definition'] == 'frequent / rare'
    groups = _lvis_groups(version)
    assert rec['categories']['groups'] == groups
    assert rec['categories']['ids'] == list(range(1, rows + 1))
    order = rec['categories']['order_most_to_least_frequent']
    ranked = [{'f': 2, 'c': 1, 'r': 0}[groups[i]] for i in order]
    assert ranked == sorted(ranked, reverse=True)
    assert sum(g == 'r' for g in groups) == {'v1': 337, 'v0.5': 454}[version]


def test_ann_file_named_in_the_checkpoint_config_is_used(capsys, case):
    cfg = (f"data_root = '{case['dir']}/'\n"
           "train_dataloader = dict(batch_size=2, dataset=dict(type='ClassBalancedDataset', "
           "oversample_thr=0.001, dataset=dict(type='LVISV1Dataset', "
           f"data_root='{case['dir']}/', ann_file='ann.json')))\n")
    ckpt = _detector(case['dir'] / 'cfg.pth', _norm_rows([8, 7, 4, 3, 1, 0.5]), {'cfg': cfg})
    status, err = _cli(capsys, ckpt, '--out', case['out'] / 'cfg')
    assert status == 0, err
    (s,) = _strict_json(case['out'] / 'cfg.json')['summary']
    assert s['frequency_source'] == "instance counts from ann.json (named in the checkpoint's " \
                                    "config)"
    assert s['spearman_norm_frequency'] == pytest.approx(1.0)


def test_checkpoint_config_is_parsed_never_executed(capsys, case):
    marker = case['dir'] / 'pwned'
    cfg = (f"import os\nos.system('touch {marker}')\n"
           f"train_dataloader = dict(dataset=dict(ann_file=__import__('os').system("
           f"'touch {marker}')))\n")
    ckpt = _detector(case['dir'] / 'cfg.pth', _lvis_rows(1203), {'cfg': cfg})
    status, err = _cli(capsys, ckpt, '--out', case['out'] / 'cfg')
    assert status == 0, err
    assert not marker.exists()
    (s,) = _strict_json(case['out'] / 'cfg.json')['summary']
    assert 'LVIS v1 frequency groups shipped' in s['frequency_source']


def test_missing_config_ann_falls_back_and_unknown_sizes_warn(capsys, case):
    cfg = "train_dataloader = dict(dataset=dict(data_root='/nowhere/', ann_file='a.json'))\n"
    ckpt = _detector(case['dir'] / 'odd.pth', _norm_rows([8, 7, 4, 3, 1, 0.5]), {'cfg': cfg})
    status, err = _cli(capsys, ckpt, '--out', case['out'] / 'odd')
    assert status == 0, err
    warnings = [line for line in err.splitlines() if line.startswith('warning:')]
    assert len(warnings) == 1 and 'index order' in warnings[0]
    (s,) = _strict_json(case['out'] / 'odd.json')['summary']
    assert s['frequency_source'].startswith('no frequency known')


def test_malformed_toy_counts_are_ignored_with_a_warning(capsys, case):
    toy = case['dir'] / 'toy'
    toy.mkdir()
    torch.save({'classifier.weight': torch.rand(4, 5) + 0.1}, toy / 'model.pth')
    (toy / 'metrics.json').write_text(json.dumps({'train_class_counts': [1, 'x', 3, 4]}))
    status, err = _cli(capsys, toy / 'model.pth', '--out', case['out'] / 'toy')
    assert status == 0, err
    assert 'train_class_counts is not 4 integers >= 0; ignored' in err
    (s,) = _strict_json(case['out'] / 'toy.json')['summary']
    assert all(math.isfinite(s[k]) for k in ('norm_mean', 'norm_ratio_head_tail'))
