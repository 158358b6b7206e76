"""Generated LVIS-format data for smoke runs and tests (no downloads needed)."""
from .synthetic_lvis import make_synthetic_lvis

__all__ = ['make_synthetic_lvis']
