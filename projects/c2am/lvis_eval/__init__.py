"""LVIS evaluation without mmdet: lvis-api's numbers, many times faster, plus AP-fixed/AP-pool.

* :func:`evaluate` - one IoU type, backend ``'fast'`` (this package) or ``'lvis'`` (lvis-api).
* :func:`load_groundtruth`, :func:`load_detections`, :func:`detections_from_predictions` -
  inputs as arrays (typed JSON decoding, no per-detection dicts).

See README.md beside this file for the protocol details (cap, AP-fixed, subset, areas).
"""
from .api import BACKENDS, EvalResult, check_img_ids, evaluate, select_detections
from .detections import (
                         Detections,
                         detections_from_json,
                         detections_from_list,
                         detections_from_predictions,
                         load_detections,
)
from .errors import EvalInputError
from .groundtruth import GroundTruth, load_groundtruth
from .protocol import AP_KEYS, FIXED_TOPK, IOU_TYPES, MAX_DETS, POOL_KEYS

__all__ = ['AP_KEYS', 'BACKENDS', 'Detections', 'EvalInputError', 'EvalResult', 'FIXED_TOPK',
           'GroundTruth', 'IOU_TYPES', 'MAX_DETS', 'POOL_KEYS', 'check_img_ids',
           'detections_from_json', 'detections_from_list', 'detections_from_predictions',
           'evaluate', 'load_detections', 'load_groundtruth', 'select_detections']
