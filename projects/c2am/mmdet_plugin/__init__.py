"""MMDetection plugin of C2AM: importing this module registers its modules in mmdet's
registries.

Use from a config::

    custom_imports = dict(imports=['projects.c2am.mmdet_plugin'], allow_failed_imports=False)

Registered: ``C2AMBBoxHead`` (+ ``C2AMLoss``, ``C2AMCosineClassifier``), the peers
``SigmoidEQLV2Loss``, ``FederatedLoss``, ``EqualizationLoss`` (EQL) and
``BalancedGroupSoftmaxLoss`` (BAGS), the
``ClassifierNormHook`` and the ``FastLVISMetric``.
"""
from .. import compat  # noqa: F401  (first: fixes for the pinned stack)
from .balanced_group_softmax import BalancedGroupSoftmaxLoss
from .c2am_bbox_head import C2AMBBoxHead
from .classifier_norm_hook import ClassifierNormHook
from .equalization_loss import EqualizationLoss
from .fast_lvis_metric import FastLVISMetric
from .federated_loss import FederatedLoss
from .sigmoid_eqlv2_loss import SigmoidEQLV2Loss

__all__ = ['BalancedGroupSoftmaxLoss', 'C2AMBBoxHead', 'ClassifierNormHook', 'EqualizationLoss',
           'FastLVISMetric', 'FederatedLoss', 'SigmoidEQLV2Loss']
