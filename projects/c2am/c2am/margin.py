"""The margin settings of Eq. 6-7, validated once: :class:`MarginSpec` and the paper defaults.

Every entry point (functions, modules, the mmdet plugin, the toy, analysis, benchmarks) builds
one :class:`MarginSpec` at its boundary and passes it down whole; the defaults ``SCALE`` and
``ALPHA`` are written here only.

Pure PyTorch: the loss core must not import mmdet, mmcv or mmengine.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .numerics import check_choice, check_number

SCALE = 30.0  # s of Eq. 5-6 (Sec. 4.2)
ALPHA = 0.5  # alpha of Eq. 7 (Sec. 4.2, Table 4)
MARGIN_KINDS = ('adaptive', 'fixed', 'none')


def check_scale(scale) -> float:
    """``s`` as a finite float > 0."""
    return check_number('scale', scale, low=0.0, low_open=True)


@dataclass(frozen=True)
class MarginSpec:
    """Which angular margins the training logits get.

    Args:
        kind (str): ``'adaptive'`` (Eq. 7, C2AM), ``'fixed'`` (one constant margin, the
            Table 5 ablation) or ``'none'`` (plain cosine classifier).
        alpha (float): strength of Eq. 7, finite and >= 0 (``kind='adaptive'``).
        fixed_margin (float): the constant margin in radians, in ``[0, pi]``
            (``kind='fixed'``).
        exclude_class (int, optional): a class (e.g. a detector's background) with no margin in
            its column and none for its samples; negative values index from the end.

    Raises:
        ValueError: at construction, for any invalid setting.
    """

    kind: str = 'adaptive'
    alpha: float = ALPHA
    fixed_margin: float = 0.0
    exclude_class: int | None = None

    def __post_init__(self) -> None:
        check_choice('margin', self.kind, MARGIN_KINDS)
        object.__setattr__(self, 'alpha', check_number('alpha', self.alpha, low=0.0))
        object.__setattr__(self, 'fixed_margin', check_number(
            'fixed_margin', self.fixed_margin, low=0.0, high=math.pi))
        if self.exclude_class is not None and (isinstance(self.exclude_class, bool) or
                                               not isinstance(self.exclude_class, int)):
            raise ValueError(f'exclude_class must be an int or None, got {self.exclude_class!r}')

    @property
    def active(self) -> bool:
        """Whether any margin can be non-zero (``alpha = 0`` or a zero fixed margin: none)."""
        if self.kind == 'adaptive':
            return self.alpha > 0
        return self.kind == 'fixed' and self.fixed_margin > 0

    def for_classes(self, num_classes: int) -> MarginSpec:
        """This spec with ``exclude_class`` as an index in ``[0, C)`` (or None).

        Raises:
            ValueError: ``exclude_class`` outside ``[-C, C)``.
        """
        if self.exclude_class is None or 0 <= self.exclude_class < num_classes:
            return self
        if not -num_classes <= self.exclude_class < 0:
            raise ValueError(f'exclude_class must lie in [-{num_classes}, {num_classes - 1}] '
                             f'for {num_classes} classes, got {self.exclude_class}')
        return MarginSpec(self.kind, self.alpha, self.fixed_margin,
                          self.exclude_class + num_classes)
