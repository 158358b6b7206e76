"""MMDetection plugin of C2AM: importing this module registers its modules in mmdet's
registries (MODELS: the C2AM head; METRICS: FastLVISMetric).

Use from a config::

    custom_imports = dict(imports=['projects.c2am.mmdet_plugin'], allow_failed_imports=False)
"""
from .. import compat  # noqa: F401  (first: fixes for the pinned stack)
from .c2am_bbox_head import C2AMBBoxHead
from .fast_lvis_metric import FastLVISMetric

__all__ = ['C2AMBBoxHead', 'FastLVISMetric']
