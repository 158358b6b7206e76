"""``FastLVISMetric``: mmdet's ``LVISMetric`` on :mod:`projects.c2am.lvis_eval`.

Drop-in for ``LVISMetric`` (same arguments, same metric names ``lvis/bbox_AP``,
``lvis/segm_APr``, ..., rounded to 3 places as mmdet does) plus:

* ``backend``: ``'fast'`` (default; identical numbers, many times faster) or ``'lvis'``
  (lvis-api itself);
* ``fixed_ap``: AP-fixed (Dave et al. 2021): top 10,000 detections per category, no per-image
  cap (the detector must emit them: ``configs/_base_/lvis_ap_fixed_test.py``);
* ``pool_ap``: adds AP-pool (``<type>_AP-pooled-all/r/c/f``);
* ``mask_area``: segm APs/APm/APl from mask areas instead of lvis-api's box areas.

The evaluated images are the images the loop processed (or ``img_ids`` set on the metric): a
subset run scores the subset. mmdet 3.3's ``LVISMetric`` sets ``params.imgIds``, a name
lvis-api does not read, and scores every image of the annotation file.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from mmdet.evaluation.metrics import LVISMetric
from mmdet.registry import METRICS
from mmengine.fileio import get_local_path
from mmengine.logging import MMLogger

from projects.c2am.lvis_eval import (
    AP_KEYS,
    BACKENDS,
    POOL_KEYS,
    EvalInputError,
    detections_from_predictions,
    evaluate,
    load_groundtruth,
)


@METRICS.register_module()
class FastLVISMetric(LVISMetric):
    """LVIS bbox / segm evaluation with lvis-api's numbers, fast; AP-fixed and AP-pool.

    Args:
        ann_file (str): LVIS annotation file (required).
        metric (str | list[str]): 'bbox' and/or 'segm'. Defaults to 'bbox'.
        backend (str): 'fast' or 'lvis'. Defaults to 'fast'.
        fixed_ap (bool): AP-fixed instead of the 300-per-image protocol. Defaults to False.
        pool_ap (bool): also report AP-pool. Defaults to False.
        mask_area (bool): segm area ranges from masks. Defaults to False (lvis-api's rule).
        **kwargs: the other ``LVISMetric`` arguments (classwise, metric_items, format_only,
            outfile_prefix, collect_device, prefix, backend_args).
    """

    default_prefix = 'lvis'

    def __init__(self, ann_file: str | None = None, metric: str | Sequence[str] = 'bbox', *,
                 backend: str = 'fast', fixed_ap: bool = False, pool_ap: bool = False,
                 mask_area: bool = False, **kwargs) -> None:
        super().__init__(ann_file=None, metric=metric, **kwargs)  # the gt is read here
        bad = [m for m in self.metrics if m not in ('bbox', 'segm')]
        if bad:
            raise KeyError(f"FastLVISMetric evaluates 'bbox' and 'segm', got {bad[0]!r}")
        if ann_file is None:
            raise ValueError('FastLVISMetric needs ann_file (the LVIS annotation json)')
        if backend not in BACKENDS:
            raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
        if pool_ap and backend != 'fast':
            raise ValueError("pool_ap needs backend='fast'")
        self.ann_file = ann_file
        self.eval_backend = backend
        self.fixed_ap = fixed_ap
        self.pool_ap = pool_ap
        self.mask_area = mask_area
        self._gt = None

    def _groundtruth(self):
        if self._gt is None:
            with get_local_path(self.ann_file, backend_args=self.backend_args) as path:
                self._gt = load_groundtruth(path)
                self._gt_path = str(path)
        return self._gt

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Keep each image's predictions (masks as RLE) and id, as ``LVISMetric`` does; the
        ground truth comes from ``ann_file``."""
        from mmdet.structures.mask import encode_mask_results
        for sample in data_samples:
            pred = sample['pred_instances']
            result = dict(img_id=sample['img_id'], bboxes=pred['bboxes'].cpu().numpy(),
                          scores=pred['scores'].cpu().numpy(),
                          labels=pred['labels'].cpu().numpy())
            if 'masks' in pred:
                result['masks'] = encode_mask_results(pred['masks'].detach().cpu().numpy())
            if 'mask_scores' in pred:
                result['mask_scores'] = pred['mask_scores'].cpu().numpy()
            gt = dict(img_id=sample['img_id'], width=sample['ori_shape'][1],
                      height=sample['ori_shape'][0])
            self.results.append((gt, result))

    def compute_metrics(self, results: list) -> dict:
        """Evaluate the processed images; returns ``{'bbox_AP': ..., 'segm_APr': ...}``."""
        logger = MMLogger.get_current_instance()
        gts, preds = zip(*results)
        gt = self._groundtruth()
        self.cat_ids = gt.cat_ids.tolist()
        if self.outfile_prefix is not None:
            self.results2json(preds, self.outfile_prefix)
        eval_results = OrderedDict()
        if self.format_only:
            logger.info(f'results are saved with prefix {self.outfile_prefix}')
            return eval_results
        img_ids = self.img_ids if self.img_ids is not None else sorted(
            {int(g['img_id']) for g in gts})
        samples = [dict(img_id=p['img_id'], pred_instances=p) for p in preds]
        dets = detections_from_predictions(samples, self.cat_ids)
        lvis_gt = None
        if self.eval_backend == 'lvis':
            from lvis import LVIS
            lvis_gt = self._lvis_api = self._lvis_api or LVIS(self._gt_path)
        items = list(self.metric_items or AP_KEYS) + (list(POOL_KEYS) if self.pool_ap else [])
        for metric in self.metrics:
            if metric not in dets or not len(dets[metric]):
                logger.info(f'no {metric} detections to evaluate')
                continue
            try:
                res = evaluate(gt, dets[metric], metric, backend=self.eval_backend,
                               fixed=self.fixed_ap, pool=self.pool_ap, img_ids=img_ids,
                               mask_area=self.mask_area, lvis_gt=lvis_gt)
            except EvalInputError as err:
                logger.warning(f'{metric}: {err}')
                continue
            logger.info(f'{metric} ({"AP-fixed" if self.fixed_ap else "standard"}, '
                        f'{res.protocol["images"]} images, backend {self.eval_backend}): '
                        + ' '.join(f'{k} {res.metrics[k]:.3f}' for k in items
                                   if k in res.metrics))
            for k in items:
                if k in res.metrics:
                    eval_results[f'{metric}_{k}'] = float(f'{float(res.metrics[k]):.3f}')
            if self.classwise:
                names = dict(zip(self.cat_ids, gt.cat_names))
                for cid, ap in res.per_category.items():
                    eval_results[f'{names[cid]}_precision'] = round(
                        float('nan') if np.isnan(ap) else ap, 3)
        return eval_results
