"""analysis/: weight-norm figure and per-class AP on checkpoints trained inside the tests."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from analysis import per_class_ap as pca
from analysis import weight_norm_plot as wnp

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(*args):
    return wnp.main([str(a) for a in args])


def _record(stem):
    return json.loads(Path(f'{stem}.json').read_text())


def _state_dict(ckpt):
    import projects.c2am.compat  # noqa: F401
    return torch.load(ckpt, weights_only=True)['state_dict']


def test_detector_norms_sorted_by_frequency_background_excluded(detector_checkpoints,
                                                                synthetic_lvis, tmp_path):
    ann = synthetic_lvis['train_ann']
    for name in ('c2am', 'ce'):
        stem = tmp_path / name
        assert _run(detector_checkpoints[name], '--ann', ann, '--out', stem) == 0
        rec = _record(stem)
        w = _state_dict(detector_checkpoints[name])['roi_head.bbox_head.fc_cls.weight']
        assert w.shape[0] == 1204
        direct = w[:-1].float().norm(dim=1).numpy()  # background row excluded
        (norms,) = rec['norms'].values()
        np.testing.assert_allclose(norms, direct, rtol=1e-6)
        cats = json.loads(Path(ann).read_text())['categories']
        counts = np.array([c['instance_count'] for c in cats])
        order = rec['categories']['order_most_to_least_frequent']
        assert np.all(np.diff(counts[order]) <= 0)
        assert Path(f'{stem}.png').stat().st_size > 1000 and Path(f'{stem}.pdf').is_file()


def test_cascade_all_stages_or_one(detector_checkpoints, tmp_path):
    assert _run(detector_checkpoints['cascade'], '--out', tmp_path / 'all') == 0
    assert len(_record(tmp_path / 'all')['summary']) == 3
    assert _run(detector_checkpoints['cascade'], '--stage', 1, '--out', tmp_path / 's1') == 0
    (s,) = _record(tmp_path / 's1')['summary']
    assert s['key'] == 'roi_head.bbox_head.1.fc_cls.weight'


def test_compare_mode_and_toy_checkpoint(detector_checkpoints, tmp_path):
    assert _run(detector_checkpoints['ce'], detector_checkpoints['c2am'], '--labels', 'CE',
                'C2AM', '--out', tmp_path / 'cmp') == 0
    assert [s['label'] for s in _record(tmp_path / 'cmp')['summary']] == ['CE', 'C2AM']
    toy = tmp_path / 'toy'
    toy.mkdir()
    torch.save({'classifier.weight': torch.randn(10, 50)}, toy / 'model.pth')
    (toy / 'metrics.json').write_text(json.dumps({'train_class_counts': list(range(100, 0, -10))}))
    assert _run(toy / 'model.pth', '--out', tmp_path / 'toyfig') == 0
    (s,) = _record(tmp_path / 'toyfig')['summary']
    assert 'stored with the checkpoint' in s['frequency_source']


def _hand_made(tmp_path):
    """6 classes, groups f f c c r r, norms 8 7 4 3 1 0.5 (+ a background row of norm 100)."""
    norms = torch.tensor([8.0, 7.0, 4.0, 3.0, 1.0, 0.5, 100.0])
    w = torch.zeros(7, 4)
    w[:, 0] = norms
    ckpt = tmp_path / 'hand.pth'
    torch.save({'state_dict': {'roi_head.bbox_head.fc_cls.weight': w}, 'meta': {}}, ckpt)
    counts = [500, 300, 60, 20, 5, 2]
    cats = [dict(id=i + 1, name=f'c{i}', frequency=f, instance_count=n, image_count=n)
            for i, (f, n) in enumerate(zip('ffccrr', counts))]
    ann = tmp_path / 'ann.json'
    ann.write_text(json.dumps(dict(categories=cats, images=[], annotations=[])))
    return ckpt, ann


def test_summary_numbers_on_hand_made_checkpoint(tmp_path):
    ckpt, ann = _hand_made(tmp_path)
    assert _run(ckpt, '--ann', ann, '--out', tmp_path / 'h') == 0
    (s,) = _record(tmp_path / 'h')['summary']
    assert s['num_classes'] == 6  # background dropped
    assert s['spearman_norm_frequency'] == pytest.approx(1.0)
    assert s['norm_ratio_head_tail'] == pytest.approx((8 + 7) / 2 / ((1 + 0.5) / 2))
    # mean over i in {8, 7}, j in {1, 0.5} of 0.5/pi * log(||W_i|| / ||W_j||)
    expected = np.mean([0.5 / math.pi * math.log(a / b) for a in (8, 7) for b in (1, 0.5)])
    assert s['implied_margin_head_to_tail']['mean'] == pytest.approx(expected)


def _cli(*args):
    return subprocess.run([sys.executable, str(ROOT / 'analysis' / 'weight_norm_plot.py'),
                           *map(str, args)], capture_output=True, text=True)


def test_errors_are_one_line(tmp_path):
    ckpt, ann = _hand_made(tmp_path)
    text = tmp_path / 'notes.txt'
    text.write_text('not a checkpoint')
    no_clf = tmp_path / 'noclf.pth'
    torch.save({'backbone.conv.weight': torch.zeros(3, 3), 'neck.fc.weight': torch.zeros(2, 2)},
               no_clf)
    big_ann = tmp_path / 'big.json'
    big_ann.write_text(json.dumps(dict(categories=[dict(id=i, name=str(i), frequency='r')
                                                   for i in range(9)])))
    nofreq = tmp_path / 'nofreq.json'
    nofreq.write_text(json.dumps(dict(categories=[dict(id=i, name=str(i)) for i in range(6)])))
    cases = [
        ((text,), 'not a PyTorch checkpoint'),
        ((no_clf,), 'no classifier weight found; pass --key, candidates'),
        ((ckpt, '--ann', big_ann), 'does not fit the 9 categories'),
        ((ckpt, '--ann', nofreq), 'without "frequency"'),
        ((ckpt, '--per-class-ap', text), 'not a per_class_ap.py output'),
    ]
    for args, message in cases:
        res = _cli(*args, '--out', tmp_path / 'x')
        assert res.returncode == 2, (args, res.stderr)
        assert message in res.stderr and res.stderr.count('\n') == 1, res.stderr
    # an existing figure is never overwritten without --force
    assert _cli(ckpt, '--out', tmp_path / 'keep').returncode == 0
    before = (tmp_path / 'keep.png').read_bytes()
    res = _cli(ckpt, '--out', tmp_path / 'keep')
    assert res.returncode == 2 and '--force' in res.stderr
    assert (tmp_path / 'keep.png').read_bytes() == before
    assert _cli(ckpt, '--out', tmp_path / 'keep', '--force').returncode == 0


def _fake_detections(val_ann, seed=0):
    """GT boxes of the val split, jittered, with random scores and some label noise."""
    rng = np.random.default_rng(seed)
    data = json.loads(Path(val_ann).read_text())
    used = sorted({a['category_id'] for a in data['annotations']})
    dets = []
    for a in data['annotations']:
        x, y, w, h = a['bbox']
        for _ in range(3):
            jit = rng.normal(0, 3, 4)
            cat = a['category_id'] if rng.random() < 0.7 else int(rng.choice(used))
            dets.append(dict(image_id=a['image_id'], category_id=cat, score=float(rng.random()),
                             bbox=[x + jit[0], y + jit[1], max(1, w + jit[2]),
                                   max(1, h + jit[3])]))
    return dets


def test_per_class_ap_matches_lvis_metric(synthetic_lvis, tmp_path):
    from mmdet.evaluation import LVISMetric
    val_ann = synthetic_lvis['val_ann']
    dets = _fake_detections(val_ann)
    res_json = tmp_path / 'res.bbox.json'
    res_json.write_text(json.dumps(dets))
    out = tmp_path / 'ap.json'
    assert pca.main([str(res_json), '--ann', val_ann, '--out', str(out)]) == 0
    per_cat = json.loads(out.read_text())['categories']
    vals = [v['ap_bbox'] for v in per_cat.values() if v.get('ap_bbox') is not None]  # null: no AP
    assert len(vals) >= 3

    cats = json.loads(Path(val_ann).read_text())['categories']
    cat_ids = [c['id'] for c in cats]
    metric = LVISMetric(ann_file=val_ann, metric='bbox')
    metric.dataset_meta = dict(classes=[c['name'] for c in cats])
    images = json.loads(Path(val_ann).read_text())['images']
    for img in images:
        mine = [d for d in dets if d['image_id'] == img['id']]
        boxes = torch.tensor([[d['bbox'][0], d['bbox'][1], d['bbox'][0] + d['bbox'][2],
                               d['bbox'][1] + d['bbox'][3]] for d in mine])
        metric.process({}, [dict(img_id=img['id'], ori_shape=(img['height'], img['width']),
                                 pred_instances=dict(
                                     bboxes=boxes, scores=torch.tensor([d['score'] for d in mine]),
                                     labels=torch.tensor([cat_ids.index(d['category_id'])
                                                          for d in mine])))])
    ap = metric.evaluate(len(images))['lvis/bbox_AP']
    assert 0.05 < ap < 1.0
    assert float(np.mean(vals)) == pytest.approx(ap, abs=5e-4)  # LVISMetric rounds to 3 places


def test_per_class_ap_panels_and_errors(detector_checkpoints, synthetic_lvis, tmp_path):
    val_ann = synthetic_lvis['val_ann']
    res_json = tmp_path / 'r.bbox.json'
    res_json.write_text(json.dumps(_fake_detections(val_ann)))
    ap = tmp_path / 'ap.json'
    assert pca.main([str(res_json), '--ann', val_ann, '--out', str(ap)]) == 0
    assert _run(detector_checkpoints['c2am'], '--ann', synthetic_lvis['train_ann'],
                '--per-class-ap', ap, '--out', tmp_path / 'fig') == 0
    (s,) = _record(tmp_path / 'fig')['summary']
    assert 'spearman_norm_ap_bbox' in s
    bad = tmp_path / 'bad.json'
    bad.write_text('{not json')
    assert pca.main([str(bad), '--ann', val_ann, '--out', str(tmp_path / 'o.json')]) == 2
    assert pca.main([str(res_json), '--ann', val_ann, '--out', str(ap)]) == 2  # exists


def test_detector_extra_rows_background_and_seesaw():
    from analysis.checkpoints import select_classifiers
    from analysis.errors import AnalysisError
    w = torch.arange(7 * 3, dtype=torch.float32).reshape(7, 3)
    state = {'roi_head.bbox_head.fc_cls.weight': w}
    (bg,) = select_classifiers(state, num_classes=6).values()  # 6 categories + background
    assert torch.equal(bg, w[:6])
    (seesaw,) = select_classifiers(state, num_classes=5).values()  # 5 + 2 objectness rows
    assert torch.equal(seesaw, w[:5])
    (unknown,) = select_classifiers(state).values()  # no class count: drop background only
    assert torch.equal(unknown, w[:6])
    with pytest.raises(AnalysisError, match='does not fit the 3 categories'):
        select_classifiers(state, num_classes=3)
    # the checkpoint's config decides where it is known: a CE detector with 2 rows too many
    # is a class-count mismatch, not Seesaw; a Seesaw one without annotation drops both rows
    from analysis.checkpoints import detector_extra_rows
    ce = detector_extra_rows({'cfg': "loss_cls=dict(type='CrossEntropyLoss')"})
    seesaw = detector_extra_rows({'cfg': "loss_cls=dict(type='SeesawLoss', p=0.8)"})
    assert (ce, seesaw, detector_extra_rows({})) == (1, 2, None)
    with pytest.raises(AnalysisError, match='plus background;'):
        select_classifiers(state, num_classes=5, extra_rows=ce)
    (seesaw_rows,) = select_classifiers(state, extra_rows=seesaw).values()
    assert torch.equal(seesaw_rows, w[:5])
