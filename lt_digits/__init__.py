"""LT-Digits: a generated long-tail LVIS-format detection benchmark that trains on a laptop CPU."""
from .generate import make_lt_digits

__all__ = ['make_lt_digits']
