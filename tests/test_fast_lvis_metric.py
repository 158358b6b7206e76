"""FastLVISMetric (mmdet plugin): lvis-api's numbers on the images processed, same names."""
import json
from collections import defaultdict

import numpy as np
import pytest
import torch

import projects.c2am.mmdet_plugin  # noqa: F401  (registers FastLVISMetric)
from projects.c2am.lvis_eval.reference import _allow_np_float
from projects.c2am.lvis_eval.synthetic import make_case


def _process(metric, gt, dets, img_ids):
    cat_ids = [c['id'] for c in gt['categories']]
    by_img = defaultdict(list)
    for d in dets:
        by_img[d['image_id']].append(d)
    for img in gt['images']:
        if img['id'] not in img_ids:
            continue
        mine = by_img[img['id']]
        boxes = torch.tensor([[d['bbox'][0], d['bbox'][1], d['bbox'][0] + d['bbox'][2],
                               d['bbox'][1] + d['bbox'][3]] for d in mine], dtype=torch.float64)
        metric.process({}, [dict(img_id=img['id'], ori_shape=(img['height'], img['width']),
                                 pred_instances=dict(
                                     bboxes=boxes,
                                     scores=torch.tensor([d['score'] for d in mine],
                                                         dtype=torch.float64),
                                     labels=torch.tensor([cat_ids.index(d['category_id'])
                                                          for d in mine])))])


@pytest.mark.parametrize('backend', ['fast', 'lvis'])
def test_subset_run_scores_the_subset_like_lvis_api(tmp_path, backend):
    from mmdet.registry import METRICS
    gt, dets = make_case(12, 15, 60, seed=11)
    ann = tmp_path / 'gt.json'
    ann.write_text(json.dumps(gt))
    subset = {i['id'] for i in gt['images'][::2]}
    metric = METRICS.build(dict(type='FastLVISMetric', ann_file=str(ann), metric='bbox',
                                backend=backend))
    metric.dataset_meta = dict(classes=[c['name'] for c in gt['categories']])
    _process(metric, gt, dets, subset)
    got = metric.evaluate(len(subset))

    _allow_np_float()
    from lvis import LVIS, LVISEval, LVISResults
    sub = dict(gt, images=[i for i in gt['images'] if i['id'] in subset],
               annotations=[a for a in gt['annotations'] if a['image_id'] in subset])
    sub_ann = tmp_path / 'sub.json'
    sub_ann.write_text(json.dumps(sub))
    lg = LVIS(str(sub_ann))
    ev = LVISEval(lg, LVISResults(lg, [d for d in dets if d['image_id'] in subset]), 'bbox')
    ev.run()
    want = ev.get_results()
    for k in ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'APr', 'APc', 'APf'):
        assert got[f'lvis/bbox_{k}'] == float(f'{float(want[k]):.3f}'), k
    assert 0 < got['lvis/bbox_AP'] < 1


def test_fixed_and_pool_keys(tmp_path):
    from mmdet.registry import METRICS
    gt, dets = make_case(6, 8, 40, seed=12)
    ann = tmp_path / 'gt.json'
    ann.write_text(json.dumps(gt))
    metric = METRICS.build(dict(type='FastLVISMetric', ann_file=str(ann), fixed_ap=True,
                                pool_ap=True))
    metric.dataset_meta = dict(classes=[c['name'] for c in gt['categories']])
    _process(metric, gt, dets, {i['id'] for i in gt['images']})
    got = metric.evaluate(6)
    assert {'lvis/bbox_AP', 'lvis/bbox_AP-pooled-all', 'lvis/bbox_APr'} <= set(got)
    assert all(np.isfinite(v) for v in got.values())
    with pytest.raises(KeyError, match='bbox'):
        METRICS.build(dict(type='FastLVISMetric', ann_file=str(ann), metric='proposal'))
