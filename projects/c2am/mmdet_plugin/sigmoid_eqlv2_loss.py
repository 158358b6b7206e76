"""mmdet's ``EQLV2Loss`` with the sigmoid test-time scores of the official EQLv2 code.

mmdet 3.3's ``BBoxHead._predict_by_feat_single`` calls ``loss_cls.get_activation`` only when the
loss sets ``custom_cls_channels``; ``EQLV2Loss`` sets neither that nor ``custom_activation``, so
mmdet 3.x scores an EQLv2 detector with ``softmax`` over logits trained as independent sigmoids.
The official code (tztztztztz/eqlv2, ``bbox_head.get_bboxes``) scores with
``EQLv2.get_activation``: ``sigmoid(x_j) * (1 - sigmoid(x_bg))``. This subclass sets the flags
(the classifier keeps its ``num_classes + 1`` outputs, so checkpoints are interchangeable) and
adds the accuracy the head then asks for; the training loss is mmdet's, unchanged.
"""
from __future__ import annotations

from mmdet.models.losses import EQLV2Loss, accuracy
from mmdet.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class SigmoidEQLV2Loss(EQLV2Loss):
    """``EQLV2Loss`` whose sigmoid activation the bbox head uses at test time.

    Same arguments as mmdet's ``EQLV2Loss`` (``num_classes`` must equal the head's). As in
    mmdet and the official code, the loss ignores ``weight`` / ``avg_factor`` and averages over
    the RoIs; the background column is a sigmoid "is background" output.

    Test-time scores (``get_activation``): ``[N, C + 1]`` with ``sigmoid(x_j) * (1 -
    sigmoid(x_C))`` for ``j < C`` when ``test_with_obj`` (default), and ``sigmoid(x_C)`` in the
    background column (mmdet's NMS drops it).
    """

    custom_cls_channels = True
    custom_activation = True
    custom_accuracy = True

    def get_cls_channels(self, num_classes: int) -> int:
        """Classifier outputs: ``num_classes + 1`` (background last), as for softmax CE.

        Raises:
            ValueError: ``num_classes`` differs from the loss's (its statistics buffers).
        """
        if num_classes != self.num_classes:
            raise ValueError(f'SigmoidEQLV2Loss: num_classes {self.num_classes} differs from the '
                             f"head's {num_classes}")
        return num_classes + 1

    def get_accuracy(self, cls_score: Tensor, labels: Tensor) -> dict:
        """Accuracy of the test-time scores.

        Args:
            cls_score (Tensor): ``[N, C + 1]`` logits.
            labels (Tensor): ``[N]`` labels, background = ``C``.

        Returns:
            dict: ``acc``, percent.
        """
        return dict(acc=accuracy(self.get_activation(cls_score.detach()), labels))
