"""Generated LVIS-format data for smoke runs and tests (no downloads needed)."""
from .lt_digits import make_lt_digits
from .synthetic_lvis import make_synthetic_lvis

__all__ = ["make_lt_digits", "make_synthetic_lvis"]
