"""projects.c2am.lvis_eval: parity with lvis-api 0.5.3 run in the same test, hand-computed
cases, AP-fixed / AP-pool, the image-subset fix, and the CLIs' one-line errors."""
import json
import pickle
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from projects.c2am.lvis_eval import EvalInputError, GroundTruth, detections_from_list, evaluate
from projects.c2am.lvis_eval.reference import _allow_np_float
from projects.c2am.lvis_eval.synthetic import make_case

ROOT = Path(__file__).resolve().parents[1]
EXACT = 1e-12


def _write(tmp_path, name, obj):
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return p


def _lvis_api(ann, dets, iou_type, *, max_dets=300, img_ids=None):
    """lvis-api as its users run it (fresh dict copies: lvis-api writes into them)."""
    _allow_np_float()
    from lvis import LVIS, LVISEval, LVISResults
    gt = LVIS(str(ann))
    res = LVISResults(gt, json.loads(json.dumps(dets)), max_dets=max_dets)
    ev = LVISEval(gt, res, iou_type)
    if img_ids is not None:
        ev.params.img_ids = list(img_ids)
    ev.params.max_dets = max_dets
    ev.run()
    return ev


def _assert_parity(fast, ev):
    ref = dict(ev.get_results())
    assert set(ref) <= set(fast.metrics)
    for k, v in ref.items():
        assert abs(fast.metrics[k] - float(v)) <= EXACT, k
    np.testing.assert_array_equal(fast.precision, ev.eval['precision'])
    prec = ev.eval['precision'][:, :, :, 0]
    for k, cid in enumerate(ev.params.cat_ids):
        valid = prec[:, :, k][prec[:, :, k] > -1]
        want = valid.mean() if valid.size else np.nan
        got = fast.per_category[cid]
        assert (np.isnan(want) and np.isnan(got)) or abs(got - want) <= EXACT, cid


@pytest.fixture(scope='module')
def box_case(tmp_path_factory):
    """Images above the 300 cap, ties, negatives, not-exhaustive, zero areas."""
    gt, dets = make_case(14, 18, 290, over_cap=5, seed=3, tie_frac=0.5)
    tmp = tmp_path_factory.mktemp('box')
    return _write(tmp, 'gt.json', gt), gt, dets


@pytest.fixture(scope='module')
def mask_case(tmp_path_factory):
    gt, dets = make_case(10, 12, 290, over_cap=4, segm=True, seed=4, tie_frac=0.5)
    from pycocotools import mask as mask_utils
    for k, a in enumerate(gt['annotations']):  # ground truth: polygons and RLEs
        if k % 3 == 0:
            img = next(i for i in gt['images'] if i['id'] == a['image_id'])
            rle = mask_utils.merge(mask_utils.frPyObjects(a['segmentation'], img['height'],
                                                          img['width']))
            a['segmentation'] = dict(size=rle['size'], counts=rle['counts'].decode())
    for d in dets[::7]:  # detections: RLEs and polygons
        x, y, w, h = d['bbox']
        d['segmentation'] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    tmp = tmp_path_factory.mktemp('mask')
    return _write(tmp, 'gt.json', gt), gt, dets


def test_case_exercises_the_protocol(box_case):
    _, gt, dets = box_case
    per_img = defaultdict(int)
    for d in dets:
        per_img[d['image_id']] += 1
    assert max(per_img.values()) > 300 and min(per_img.values()) <= 300
    assert any(i['neg_category_ids'] for i in gt['images'])
    assert any(i['not_exhaustive_category_ids'] for i in gt['images'])
    scores = [d['score'] for d in dets]
    assert len(set(scores)) < len(scores) * 0.8  # many ties
    assert any(d['bbox'][2] * d['bbox'][3] == 0 for d in dets)


@pytest.mark.parametrize('backend', ['fast', 'lvis'])
def test_bbox_parity_with_lvis_api(box_case, backend):
    ann, gt, dets = box_case
    res = evaluate(GroundTruth.from_dict(gt), detections_from_list(dets), 'bbox',
                   backend=backend, lvis_gt=ann)
    _assert_parity(res, _lvis_api(ann, dets, 'bbox'))
    assert res.protocol['detections'] < len(dets)  # the cap removed some


def test_segm_parity_with_lvis_api(mask_case):
    ann, gt, dets = mask_case
    res = evaluate(GroundTruth.from_json(ann.read_bytes()), detections_from_list(dets), 'segm')
    ev = _lvis_api(ann, dets, 'segm')
    _assert_parity(res, ev)
    assert 0 < res.metrics['AP'] < 1


def test_segm_mask_area_option_matches_lvis_api_without_boxes(mask_case):
    ann, gt, dets = mask_case
    no_box = [{k: v for k, v in d.items() if k != 'bbox'} for d in dets]
    no_box = [d for d in no_box if isinstance(d['segmentation'], dict)]  # lvis-api: RLE only
    kept = [d for d in dets if isinstance(d['segmentation'], dict)]
    res = evaluate(GroundTruth.from_dict(gt), detections_from_list(kept), 'segm',
                   mask_area=True)
    _assert_parity(res, _lvis_api(ann, no_box, 'segm'))
    box_rule = evaluate(GroundTruth.from_dict(gt), detections_from_list(kept), 'segm')
    assert box_rule.metrics['APs'] != res.metrics['APs']  # the rule matters on this case


def _dave_top_k(dets, k):
    by_cat = defaultdict(list)
    for d in dets:
        by_cat[d['category_id']].append(d)
    out = []
    for anns in by_cat.values():
        out.extend(sorted(anns, key=lambda x: x['score'], reverse=True)[:k])
    return out


@pytest.mark.parametrize('which', ['bbox', 'segm'])
def test_ap_fixed_parity_with_lvis_api_uncapped_top_k(box_case, mask_case, which):
    ann, gt, dets = box_case if which == 'bbox' else mask_case
    k = 120
    res = evaluate(GroundTruth.from_dict(gt), detections_from_list(dets), which, fixed=True,
                   topk=k)
    ev = _lvis_api(ann, _dave_top_k(dets, k), which, max_dets=-1)
    _assert_parity(res, ev)
    assert res.protocol['max_dets'] == -1 and 'AR@-1' in res.metrics
    capped = evaluate(GroundTruth.from_dict(gt), detections_from_list(dets), which)
    assert capped.metrics['AP'] != res.metrics['AP']


def test_subset_evaluates_only_the_subset(box_case, tmp_path):
    ann, gt, dets = box_case
    subset = [i['id'] for i in gt['images'][::3]]
    # independent truth: an annotation file holding only the subset
    sub_gt = dict(gt, images=[i for i in gt['images'] if i['id'] in subset],
                  annotations=[a for a in gt['annotations'] if a['image_id'] in subset])
    sub_ann = _write(tmp_path, 'sub.json', sub_gt)
    sub_dets = [d for d in dets if d['image_id'] in subset]
    truth = _lvis_api(sub_ann, sub_dets, 'bbox')
    for backend in ('fast', 'lvis'):
        res = evaluate(GroundTruth.from_dict(gt), detections_from_list(dets), 'bbox',
                       img_ids=subset, backend=backend, lvis_gt=ann)
        assert res.protocol['images'] == len(subset)
        _assert_parity(res, truth)
    full = evaluate(GroundTruth.from_dict(gt), detections_from_list(dets), 'bbox')
    assert full.metrics['AP'] != truth.get_results()['AP']
    with pytest.raises(EvalInputError, match='not in the annotation file'):
        evaluate(GroundTruth.from_dict(gt), detections_from_list(dets), 'bbox',
                 img_ids=[10 ** 9])


def _tiny():
    """One image; category 1 (r): gts A, B; category 2 (r): gt C; category 3 (f): nothing."""
    gt = dict(images=[dict(id=7, height=100, width=100, neg_category_ids=[2, 3],
                           not_exhaustive_category_ids=[])],
              categories=[dict(id=1, name='a', frequency='r'), dict(id=2, name='b',
                                                                   frequency='r'),
                          dict(id=3, name='c', frequency='f')],
              annotations=[dict(id=1, image_id=7, category_id=1, bbox=[0, 0, 10, 10], area=100),
                           dict(id=2, image_id=7, category_id=1, bbox=[50, 50, 10, 10],
                                area=100)])
    dets = [dict(image_id=7, category_id=1, bbox=[0, 0, 10, 10], score=0.9),
            dict(image_id=7, category_id=1, bbox=[20, 20, 10, 10], score=0.8),
            dict(image_id=7, category_id=1, bbox=[50, 50, 10, 10], score=0.7)]
    return gt, dets


def test_hand_computed_ap():
    gt, dets = _tiny()
    res = evaluate(GroundTruth.from_dict(gt), detections_from_list(dets), 'bbox')
    # tp 1,1,2  fp 0,1,1  -> recall .5 .5 1, precision 1 .5 .67 -> 1 .67 .67 (right max);
    # 51 recall thresholds <= .5 sample 1, the 50 above sample 2/3 - at every IoU (boxes exact)
    want = (51 + 50 * 2 / 3) / 101
    assert res.metrics['AP'] == pytest.approx(want, abs=1e-15)
    assert res.metrics['APr'] == pytest.approx(want, abs=1e-15)
    assert res.metrics['APf'] == -1  # no frequent category with ground truth
    assert res.per_category[1] == pytest.approx(want, abs=1e-15)
    assert np.isnan(res.per_category[2]) and np.isnan(res.per_category[3])
    doc = res.to_json_dict(GroundTruth.from_dict(gt))
    assert doc['APf'] is None and doc['per_category'][2]['AP'] is None


def test_hand_computed_ap_pool_and_negatives():
    gt, dets = _tiny()
    gt['annotations'] = [dict(id=1, image_id=7, category_id=1, bbox=[0, 0, 10, 10], area=100),
                         dict(id=2, image_id=7, category_id=2, bbox=[50, 50, 10, 10], area=100)]
    gt['images'][0]['neg_category_ids'] = [3]
    dets = [dict(image_id=7, category_id=1, bbox=[0, 0, 10, 10], score=0.9),
            dict(image_id=7, category_id=2, bbox=[20, 20, 10, 10], score=0.8),
            dict(image_id=7, category_id=2, bbox=[50, 50, 10, 10], score=0.7),
            dict(image_id=7, category_id=3, bbox=[0, 0, 10, 10], score=0.95)]  # negative: FP
    res = evaluate(GroundTruth.from_dict(gt), detections_from_list(dets), 'bbox', pool=True)
    # per category: 1 -> AP 1; 2 -> FP then TP: precision 0, .5 -> .5 everywhere
    # (lvis-api divides by tp + fp + eps: 1 becomes 1 - 2e-16)
    assert res.per_category[1] == pytest.approx(1.0, abs=1e-15)
    assert res.per_category[2] == pytest.approx(0.5, abs=1e-15)
    assert res.metrics['APr'] == pytest.approx(0.75, abs=1e-15)
    # pool r: .9 TP, .8 FP, .7 TP -> the hand-computed curve of test_hand_computed_ap
    assert res.metrics['AP-pooled-r'] == pytest.approx((51 + 50 * 2 / 3) / 101, abs=1e-15)
    # category 3 has detections (a verified negative) but no ground truth: undefined
    assert res.metrics['AP-pooled-f'] == -1 and np.isnan(res.per_category[3])
    # a detection of a category neither present nor verified absent is not counted
    gt['images'][0]['neg_category_ids'] = []
    res2 = evaluate(GroundTruth.from_dict(gt), detections_from_list(dets[:3]), 'bbox')
    assert res2.metrics['AP'] == res.metrics['AP']


def test_pool_of_one_category_equals_its_ap(box_case):
    ann, gt, dets = box_case
    one = dict(gt, categories=[dict(c, frequency='r') if k == 0 else dict(c, frequency='f')
                               for k, c in enumerate(gt['categories'])])
    res = evaluate(GroundTruth.from_dict(one), detections_from_list(dets), 'bbox', pool=True)
    cid = gt['categories'][0]['id']
    if np.isnan(res.per_category[cid]):
        assert res.metrics['AP-pooled-r'] == -1
    else:
        assert res.metrics['AP-pooled-r'] == pytest.approx(res.per_category[cid], abs=EXACT)


def test_all_scores_tied_parity(box_case):
    ann, gt, dets = box_case
    tied = [dict(d, score=0.5) for d in dets[:2000]]
    res = evaluate(GroundTruth.from_dict(gt), detections_from_list(tied), 'bbox')
    _assert_parity(res, _lvis_api(ann, tied, 'bbox'))


def test_fast_backend_needs_no_np_float_shim(box_case, tmp_path):
    ann, gt, dets = box_case
    res_file = _write(tmp_path, 'r.bbox.json', dets[:500])
    code = ('import numpy as np, sys; sys.argv[1:] = []\n'
            'from projects.c2am.lvis_eval import load_groundtruth, load_detections, evaluate\n'
            f'r = evaluate(load_groundtruth({str(ann)!r}), load_detections({str(res_file)!r}))\n'
            "assert 'float' not in np.__dict__ and 'lvis' not in sys.modules\n"
            "assert 'torch' not in sys.modules and 'mmdet' not in sys.modules\n"
            "print(r.metrics['AP'])")
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert 0 < float(out.stdout) < 1


# ---- CLI ----------------------------------------------------------------------------------

def _cli(*args):
    return subprocess.run([sys.executable, str(ROOT / 'analysis' / 'lvis_eval.py'),
                           *map(str, args)], capture_output=True, text=True)


def test_cli_json_pickle_and_backends_agree(box_case, tmp_path):
    ann, gt, dets = box_case
    res = _write(tmp_path, 'r.bbox.json', dets)
    out_fast, out_ref = tmp_path / 'fast.json', tmp_path / 'ref.json'
    p = _cli(res, '--ann', ann, '--out', out_fast, '--fixed', '--pool')
    assert p.returncode == 0, p.stderr
    assert 'AP-pooled-all' in p.stdout
    q = _cli(res, '--ann', ann, '--out', out_ref, '--fixed', '--backend', 'lvis')
    assert q.returncode == 0, q.stderr
    fast, ref = json.loads(out_fast.read_text()), json.loads(out_ref.read_text())
    assert 'NaN' not in out_fast.read_text()
    for k in ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'APr', 'APc', 'APf'):
        assert fast[k] == pytest.approx(ref['bbox'][k], abs=EXACT)
        assert fast[k] is None or 0 <= fast[k] <= 1
    assert fast['bbox']['per_category'] == ref['bbox']['per_category']
    # tools/test.py --out pickle: same numbers (boxes x1y1x2y2, labels in file category order)
    cat_ids = [c['id'] for c in gt['categories']]
    samples = defaultdict(list)
    for d in dets:
        samples[d['image_id']].append(d)
    pkl = [dict(img_id=i, pred_instances=dict(
        bboxes=np.array([[d['bbox'][0], d['bbox'][1], d['bbox'][0] + d['bbox'][2],
                          d['bbox'][1] + d['bbox'][3]] for d in ds]),
        scores=np.array([d['score'] for d in ds]),
        labels=np.array([cat_ids.index(d['category_id']) for d in ds])))
        for i, ds in samples.items()]
    pkl_path = tmp_path / 'r.pkl'
    pkl_path.write_bytes(pickle.dumps(pkl))
    r = _cli(pkl_path, '--ann', ann, '--out', tmp_path / 'pkl.json')
    assert r.returncode == 0, r.stderr
    std = _lvis_api(ann, dets, 'bbox').get_results()
    assert json.loads((tmp_path / 'pkl.json').read_text())['AP'] == pytest.approx(std['AP'],
                                                                                  abs=1e-9)


@pytest.mark.parametrize('mutate, message', [
    (lambda d: d[:0], 'empty results'),
    (lambda d: [{k: v for k, v in d[0].items() if k != 'score'}] + d[1:],
     'missing required field `score`'),
    (lambda d: [dict(d[0], image_id=999999)] + d[1:], 'image id 999999'),
    (lambda d: [dict(d[0], category_id=999999)] + d[1:], 'category id 999999'),
    (lambda d: {'not': 'a list'}, 'not an LVIS result file'),
])
def test_cli_errors_are_one_line(box_case, tmp_path, mutate, message):
    ann, gt, dets = box_case
    res = _write(tmp_path, 'r.json', mutate(dets[:50]))
    p = _cli(res, '--ann', ann)
    assert p.returncode == 2
    assert p.stderr.startswith('error: ') and p.stderr.count('\n') == 1, p.stderr
    assert message in p.stderr


def test_cli_refuses_overwrite_and_unsafe_pickle(box_case, tmp_path):
    ann, gt, dets = box_case
    res = _write(tmp_path, 'r.json', dets[:50])
    out = tmp_path / 'm.json'
    out.write_text('keep')
    p = _cli(res, '--ann', ann, '--out', out)
    assert p.returncode == 2 and 'exists' in p.stderr and out.read_text() == 'keep'

    class Evil:
        def __reduce__(self):
            return (print, ('pwned',))
    bad = tmp_path / 'evil.pkl'
    bad.write_bytes(pickle.dumps([Evil()]))
    p = _cli(bad, '--ann', ann)
    assert p.returncode == 2 and 'refused' in p.stderr and 'pwned' not in p.stdout
    q = _cli(res, '--ann', ann, '--iou-type', 'segm')
    assert q.returncode == 2 and 'no segm detections' in q.stderr


def test_per_class_ap_refuses_bad_results(box_case, tmp_path):
    ann, gt, dets = box_case
    script = ROOT / 'analysis' / 'per_class_ap.py'
    for content, message in (([], 'empty results'),
                             ([dict(dets[0], category_id=999999)], 'category id 999999')):
        res = _write(tmp_path, 'r.json', content)
        p = subprocess.run([sys.executable, str(script), str(res), '--ann', str(ann), '--out',
                            str(tmp_path / 'o.json')], capture_output=True, text=True)
        assert p.returncode == 2 and message in p.stderr and p.stderr.count('\n') == 1
