"""Generate LT-Digits, the long-tail LVIS-format benchmark (see lt_digits/generate.py).

    python lt_digits/make_dataset.py [--out data/lt_digits] [--seed 0] [--max-images 480]
        [--min-images 1.5] [--strict-negatives] [--fashion [DIR]] [--force]

--fashion adds 100 Fashion-MNIST categories (200 in all; default out data/lt_digits_fashion),
from the Debian package dataset-fashion-mnist or DIR; train on them with the configs in
configs/lt_digits/fashion/.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lt_digits import make_lt_digits  # noqa: E402
from lt_digits.generate import (  # noqa: E402
    FASHION_ROOT,
    GENERATION_DEFAULTS,
    MAX_IMAGE_SIZE,
    MAX_IMAGES,
    MAX_SEED,
    MIN_IMAGE_SIZE,
    check_fashion_root,
    check_generation_params,
)
from projects.c2am.cli import (  # noqa: E402
    ArgumentParser,
    finite_float,
    int_in_range,
    nonnegative_int,
    run_cli,
)
from projects.c2am.outputs import prepare_output_dir  # noqa: E402


def build_parser() -> ArgumentParser:
    """The command line; every value is type- and range-checked as it is parsed."""
    d = GENERATION_DEFAULTS
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', type=Path,
                   help='dataset root (default data/lt_digits, data/lt_digits_fashion)')
    p.add_argument('--seed', type=int_in_range(0, MAX_SEED), default=d['seed'])
    p.add_argument('--max-images', type=int_in_range(2, MAX_IMAGES), default=d['max_images'],
                   help='training images of the most frequent category')
    p.add_argument('--min-images', type=finite_float, default=d['min_images'],
                   help='training images of the rarest category (profile end), '
                        '1 <= it <= --max-images')
    p.add_argument('--image-size', type=int_in_range(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE),
                   default=d['image_size'])
    p.add_argument('--num-neg', type=nonnegative_int, default=d['num_neg'],
                   help='verified-absent categories listed per val image (LVIS-style)')
    p.add_argument('--strict-negatives', action='store_true',
                   help='list every absent category as negative (counts every false positive)')
    p.add_argument('--fashion', nargs='?', type=Path, const=FASHION_ROOT, metavar='DIR',
                   help=f'add 100 Fashion-MNIST categories from DIR (default {FASHION_ROOT})')
    p.add_argument('--force', action='store_true',
                   help='replace a dataset this tool wrote (other files are never deleted)')
    return p


def check_args(args) -> dict:
    """The rules between the arguments, the Fashion-MNIST folder and the output folder,
    checked before anything is read or written.

    Returns:
        dict: the generation settings for :func:`make_lt_digits`.

    Raises:
        UserError: naming the argument and what to do.
    """
    try:
        params = check_generation_params(
            seed=args.seed, max_images=args.max_images, min_images=args.min_images,
            image_size=args.image_size, num_neg=args.num_neg, strict=args.strict_negatives)
    except ValueError as err:  # name the flag, not the keyword
        flag = str(err).split(' ', 1)
        raise type(err)(f'--{flag[0].replace("_", "-")} {flag[1]}') from None
    if args.fashion is not None:
        check_fashion_root(args.fashion)
    if args.out is None:
        args.out = ROOT / 'data' / ('lt_digits_fashion' if args.fashion else 'lt_digits')
    prepare_output_dir(args.out, force=args.force)
    return params


def main(argv=None) -> int:
    """Check everything, then generate the dataset into a temporary folder and swap it in."""
    args = build_parser().parse_args(argv)
    params = check_args(args)
    t0 = time.time()
    info = make_lt_digits(args.out, **params, fashion_root=args.fashion, force=args.force)
    print(f"LT-Digits in {info['data_root']} ({time.time() - t0:.0f} s): categories rare "
          f"{info['groups']['r']}, common {info['groups']['c']}, frequent {info['groups']['f']}")
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
