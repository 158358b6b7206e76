"""Generate LT-Digits, the long-tail LVIS-format benchmark (see lt_digits/generate.py).

    python lt_digits/make_dataset.py [--out data/lt_digits] [--seed 0] [--max-images 480]
        [--min-images 1.5] [--strict-negatives] [--fashion [DIR]] [--force]

--fashion adds 100 Fashion-MNIST categories (200 in all; default out data/lt_digits_fashion),
from the Debian package dataset-fashion-mnist or DIR; train on them with the configs in
configs/lt_digits/fashion/.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lt_digits import make_lt_digits  # noqa: E402
from lt_digits.generate import FASHION_ROOT, check_fashion_root  # noqa: E402
from projects.c2am.data.mnist import MnistNotFoundError  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', type=Path,
                   help='dataset root (default data/lt_digits, data/lt_digits_fashion)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--max-images', type=int, default=480,
                   help='training images of the most frequent category')
    p.add_argument('--min-images', type=float, default=1.5,
                   help='training images of the rarest category (profile end)')
    p.add_argument('--image-size', type=int, default=128)
    p.add_argument('--num-neg', type=int, default=10,
                   help='verified-absent categories listed per val image (LVIS-style)')
    p.add_argument('--strict-negatives', action='store_true',
                   help='list every absent category as negative (counts every false positive)')
    p.add_argument('--fashion', nargs='?', type=Path, const=FASHION_ROOT, metavar='DIR',
                   help=f'add 100 Fashion-MNIST categories from DIR (default {FASHION_ROOT})')
    p.add_argument('--force', action='store_true', help='replace an existing dataset')
    args = p.parse_args(argv)
    if args.max_images < 2 or args.min_images < 1 or args.min_images > args.max_images:
        p.error('need 1 <= --min-images <= --max-images and --max-images >= 2')
    if args.out is None:
        args.out = ROOT / 'data' / ('lt_digits_fashion' if args.fashion else 'lt_digits')
    if args.fashion is not None:
        try:  # before anything is replaced
            check_fashion_root(args.fashion)
        except MnistNotFoundError as err:
            print(f'error: {err}', file=sys.stderr)
            return 2
    if args.out.exists() and any(args.out.iterdir()):
        if not args.force:
            print(f'error: {args.out} exists; pass --force to replace it', file=sys.stderr)
            return 2
        shutil.rmtree(args.out)
    t0 = time.time()
    try:
        info = make_lt_digits(args.out, seed=args.seed, max_images=args.max_images,
                              min_images=args.min_images, image_size=args.image_size,
                              num_neg=args.num_neg, strict=args.strict_negatives,
                              fashion_root=args.fashion)
    except MnistNotFoundError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(f"LT-Digits in {info['data_root']} ({time.time() - t0:.0f} s): categories rare "
          f"{info['groups']['r']}, common {info['groups']['c']}, frequent {info['groups']['f']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
