"""C2AM loss core (pure PyTorch; imports no mmdet, mmcv or mmengine).

Public API: :func:`c2am_margins` (Eq. 7), :func:`c2am_logits` / :func:`c2am_loss` (Eq. 6) on
features and classifier weights, their ``*_from_cosine`` forms for heads that compute cosines
themselves, :class:`CosineClassifier` and :class:`C2AMLoss`.
"""
from .functional import (
                         angular_margin_cos,
                         c2am_logits,
                         c2am_logits_from_cosine,
                         c2am_loss,
                         c2am_loss_from_cosine,
                         c2am_margins,
                         classifier_norms,
                         cosine_similarity_matrix,
                         weighted_reduce,
)
from .modules import C2AMLoss, CosineClassifier

__all__ = [
    'C2AMLoss', 'CosineClassifier', 'angular_margin_cos', 'c2am_logits',
    'c2am_logits_from_cosine', 'c2am_loss', 'c2am_loss_from_cosine', 'c2am_margins',
    'classifier_norms', 'cosine_similarity_matrix', 'weighted_reduce'
]
