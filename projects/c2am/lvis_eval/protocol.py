"""The LVIS evaluation protocol: constants exactly as lvis-api 0.5.3 defines them.

``lvis/eval.py`` (class ``Params``) builds the thresholds with ``np.linspace``; the same calls
give the same float64 values here, so summaries select the same IoU rows (``iou_thr == 0.75``).
"""
from __future__ import annotations

import numpy as np

IOU_TYPES = ('bbox', 'segm')
IOU_THRS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RNG = ((0 ** 2, 1e5 ** 2), (0 ** 2, 32 ** 2), (32 ** 2, 96 ** 2), (96 ** 2, 1e5 ** 2))
AREA_LBL = ('all', 'small', 'medium', 'large')
FREQ_LBL = ('r', 'c', 'f')
#: lvis-api's per-image cap (``LVISResults(max_dets=300)``).
MAX_DETS = 300
#: AP-fixed (Dave et al. 2021): detections kept per category over the whole set.
FIXED_TOPK = 10000
#: The keys of lvis-api's ``get_results()`` that hold AP, in its order.
AP_KEYS = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'APr', 'APc', 'APf')
#: AP-pool keys (Dave et al. 2021, ``LVISPooledEval``), one per pool of categories.
POOL_KEYS = ('AP-pooled-all', 'AP-pooled-r', 'AP-pooled-c', 'AP-pooled-f')
