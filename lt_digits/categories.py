"""The LT-Digits category names, in one place: the generator writes them into the annotation
files and the configs under ``configs/lt_digits/`` read them from here (no heavy imports)."""
from __future__ import annotations

COLOURS = {  # RGB tints
    'red': (230, 40, 40), 'green': (40, 200, 60), 'blue': (50, 90, 240),
    'yellow': (235, 220, 40), 'magenta': (220, 50, 220), 'cyan': (40, 220, 220),
    'orange': (245, 140, 20), 'purple': (140, 60, 200), 'white': (235, 235, 235),
    'pink': (250, 150, 170),
}
DIGITS = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine')
GARMENTS = ('tshirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag',
            'ankle_boot')  # Fashion-MNIST labels 0-9


def category_names(fashion: bool = False) -> list[str]:
    """``<digit>_<colour>`` for the 100 digit categories, then (``fashion``) ``<garment>_<colour>``
    for 100 more; id = index + 1 (class-major)."""
    classes = DIGITS + (GARMENTS if fashion else ())
    return [f'{d}_{c}' for d in classes for c in COLOURS]
