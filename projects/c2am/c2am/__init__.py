"""C2AM loss core (pure PyTorch; imports no mmdet, mmcv or mmengine).

Files in dependency order: ``numerics`` (constants, checks) -> ``margin`` (:class:`MarginSpec`,
the defaults ``SCALE`` / ``ALPHA``) -> ``reference`` (Eq. 6-7 as the readable definition) ->
``eager`` / ``compiled`` (the fast paths) -> ``loss`` (the public loss functions) ->
``modules`` (:class:`CosineClassifier`, :class:`C2AMLoss`).

Public API: :func:`c2am_margins` (Eq. 7), :func:`c2am_logits` / :func:`c2am_loss` (Eq. 6) on
features and classifier weights, their ``*_from_cosine`` forms for heads that compute cosines
themselves, :class:`CosineClassifier` and :class:`C2AMLoss`.
"""
from .loss import c2am_loss, c2am_loss_from_cosine, weighted_reduce
from .margin import ALPHA, MARGIN_KINDS, SCALE, MarginSpec
from .modules import C2AMLoss, CosineClassifier
from .numerics import DivergedWeightsError
from .reference import (
    angular_margin_cos,
    c2am_logits,
    c2am_logits_from_cosine,
    c2am_margins,
    classifier_norms,
    cosine_similarity_matrix,
)

__all__ = [
    'ALPHA', 'MARGIN_KINDS', 'SCALE', 'C2AMLoss', 'CosineClassifier', 'DivergedWeightsError',
    'MarginSpec',
    'angular_margin_cos', 'c2am_logits', 'c2am_logits_from_cosine', 'c2am_loss',
    'c2am_loss_from_cosine', 'c2am_margins', 'classifier_norms', 'cosine_similarity_matrix',
    'weighted_reduce'
]
