"""Fixtures for tests and smoke runs: generated LVIS-format data and CPU-sized configs."""
from .cpu_smoke import cpu_smoke_config
from .synthetic_lvis import make_synthetic_lvis

__all__ = ['cpu_smoke_config', 'make_synthetic_lvis']
