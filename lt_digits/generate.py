"""LT-Digits: a generated long-tail instance-segmentation benchmark in LVIS v1 format.

100 categories = 10 MNIST digits x 10 tint colours; with Fashion-MNIST (Debian package
``dataset-fashion-mnist``, or any folder of its four IDX files) 100 more = 10 garment classes x
the same tints, drawn from the same frequency profile. Each image is a dark, noisy 128 x 128 canvas
with clutter strokes and 1-4 tinted glyphs of 24-48 px; masks are exactly the glyph pixels still
visible after occlusion, boxes come from the masks. Training image counts per category follow a
geometric (Zipf-like) profile from ``max_images`` down to ``min_images`` over a random ranking of
the categories, which gives LVIS's three groups in about LVIS's proportions: rare (1-10
training images), common (11-100) and frequent (>100). Train glyphs come from MNIST train, val
glyphs from MNIST test. Val has every category (at least ``min_val_instances`` instances) and,
like LVIS, lists a few verified-absent categories per image in ``neg_category_ids`` (``strict``
lists all absent ones, which counts every false positive). Fashion-MNIST items, like digits,
come from its train split for training images and its test split for val images.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils
from tqdm import tqdm

from projects.c2am.cli import UserError
from projects.c2am.outputs import atomic_output_dir, dumps_json, prepare_output_dir

from .categories import COLOURS, DIGITS, category_names

COCO_URL = 'http://images.cocodataset.org/'
FASHION_ROOT = Path('/usr/share/datasets/fashion-mnist')
FASHION_HOW_TO_GET = ('install the Debian package dataset-fashion-mnist (IDX files under '
                      f'{FASHION_ROOT}/) or pass a folder holding the four Fashion-MNIST IDX '
                      'files (train-images-idx3-ubyte[.gz], ...)')


GENERATION_DEFAULTS = dict(seed=0, max_images=480, min_images=1.5, val_fraction=0.12,
                           min_val_instances=4, max_val_instances=40, image_size=128,
                           max_objects=4, num_neg=10, strict=False)
"""Every setting that changes the generated dataset, with its default; all are recorded in
``info.generation`` of both annotation files (with the glyph ``sources``)."""
MAX_SEED = 2**32 - 1
MAX_IMAGES = 100_000  # training images of the most frequent category
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 48, 1024  # glyphs are drawn 24-48 px wide
MAX_OBJECTS = 16


class GenerationError(UserError, ValueError):
    """Invalid generation settings, or a folder that does not hold the dataset asked for."""


def check_generation_params(**params) -> dict:
    """Check LT-Digits generation settings (see :func:`make_lt_digits`) before any work.

    Args:
        **params: any of :data:`GENERATION_DEFAULTS`; the others take their default.

    Returns:
        dict: all of :data:`GENERATION_DEFAULTS`, with ``params`` applied, as plain numbers.

    Raises:
        GenerationError: an unknown setting, a value of the wrong type or range, or
            inconsistent settings, naming the setting and what is allowed.
    """
    unknown = sorted(set(params) - set(GENERATION_DEFAULTS))
    if unknown:
        raise GenerationError(f'unknown LT-Digits setting(s) {unknown}; known: '
                              f'{sorted(GENERATION_DEFAULTS)}')
    p = {**GENERATION_DEFAULTS, **params}

    def integer(name, low, high):
        v = p[name]
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not low <= v <= high:
            raise GenerationError(f'{name} must be an integer in {low}..{high}, got {v!r}')
        p[name] = int(v)

    def real(name, low, high):
        v = p[name]
        if not isinstance(v, (int, float, np.integer, np.floating)) or isinstance(v, bool) \
                or not math.isfinite(v) or not low <= v <= high:
            raise GenerationError(f'{name} must be a finite number in [{low}, {high}], '
                                  f'got {v!r}')
        p[name] = float(v)

    integer('seed', 0, MAX_SEED)
    integer('max_images', 2, MAX_IMAGES)
    real('min_images', 1, p['max_images'])
    real('val_fraction', 0, 1)
    integer('min_val_instances', 1, MAX_IMAGES)
    integer('max_val_instances', p['min_val_instances'], MAX_IMAGES)
    integer('image_size', MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
    integer('max_objects', 1, MAX_OBJECTS)
    integer('num_neg', 0, 200)
    if not isinstance(p['strict'], bool):
        raise GenerationError(f'strict must be True or False, got {p["strict"]!r}')
    return p


def recorded_generation(root: str | Path) -> dict | None:
    """The generation settings recorded in an LT-Digits folder.

    Returns:
        dict | None: ``None`` when ``root`` is missing or an empty folder (nothing to reuse),
        else the recorded settings plus ``sources``.

    Raises:
        GenerationError: ``root`` holds something that is not a complete LT-Digits dataset
            of this version (a file, other files, a half dataset, no recorded settings).
    """
    root = Path(root)
    if not root.exists() or (root.is_dir() and not any(root.iterdir())):
        return None
    hint = 'remove it or choose another folder'
    if not root.is_dir():
        raise GenerationError(f'{root} is a file, not an LT-Digits folder; {hint}')
    recorded = []
    for split in ('train', 'val'):
        path = root / 'annotations' / f'lvis_v1_{split}.json'
        try:
            data = json.loads(path.read_text())
            generation = data['info']['generation']
            images = data['images']
        except FileNotFoundError:
            raise GenerationError(f'{root} is not a complete LT-Digits dataset ({path.name} is '
                                  f'missing); {hint}') from None
        except (OSError, ValueError, KeyError, TypeError):
            raise GenerationError(f'{root} holds no LT-Digits dataset of this version '
                                  f'({path.name} is unreadable or has no recorded generation '
                                  f'settings); regenerate it: {hint}') from None
        present = {p.name for p in (root / f'{split}2017').glob('*.png')}
        missing = [i['coco_url'].rsplit('/', 1)[1] for i in images
                   if i['coco_url'].rsplit('/', 1)[1] not in present]
        if missing:
            raise GenerationError(f'{root} is not a complete LT-Digits dataset ({len(missing)} '
                                  f'{split} images missing, e.g. {missing[0]}); {hint}')
        recorded.append(generation)
    if recorded[0] != recorded[1]:
        raise GenerationError(f'{root}: train and val were generated with different settings; '
                              f'{hint}')
    return recorded[0]


def check_dataset(root: str | Path, sources: tuple = ('mnist',), **params) -> bool:
    """Whether ``root`` already holds the LT-Digits dataset of exactly these settings.

    Args:
        root: the dataset folder.
        sources (tuple): glyph sources, ``('mnist',)`` or ``('mnist', 'fashion-mnist')``.
        **params: generation settings (defaults for the others).

    Returns:
        bool: True if it is there (reuse it), False if ``root`` is missing or empty.

    Raises:
        GenerationError: ``root`` holds anything else, e.g. LT-Digits of other settings
            (every differing setting is named).
    """
    expected = {**check_generation_params(**params), 'sources': list(sources)}
    recorded = recorded_generation(root)
    if recorded is None:
        return False
    differ = [f'{k}={recorded.get(k)!r} (wanted {v!r})' for k, v in expected.items()
              if recorded.get(k) != v]
    differ += [f'{k}={v!r} (unknown here)' for k, v in recorded.items() if k not in expected]
    if differ:
        raise GenerationError(f'{root} holds LT-Digits generated with other settings: '
                              f'{", ".join(differ)}; remove it or choose another folder')
    return True


def check_fashion_root(root: str | Path | None = None) -> Path:
    """The Fashion-MNIST folder (default :data:`FASHION_ROOT`) if its four IDX files are there,
    else :class:`MnistNotFoundError` saying how to get them (cheap: reads nothing)."""
    from projects.c2am.data.mnist import IDX_FILES, MnistNotFoundError, find_idx
    root = Path(root) if root is not None else FASHION_ROOT
    try:
        for stem in IDX_FILES.values():
            find_idx(root, stem)
    except MnistNotFoundError:
        raise MnistNotFoundError(f'Fashion-MNIST not found in {root}: {FASHION_HOW_TO_GET}') \
            from None
    return root


def load_fashion_mnist(root: str | Path | None = None) -> tuple:
    """Fashion-MNIST's ``train_x, train_y, test_x, test_y`` from IDX files (default: the Debian
    package's folder); :class:`MnistNotFoundError` saying how to get it when absent."""
    from projects.c2am.data.mnist import load_mnist
    return load_mnist(check_fashion_root(root))


def lvis_group(image_count: int) -> str:
    """LVIS frequency group from the number of training images: r (<= 10), c (<= 100), f."""
    return 'r' if image_count <= 10 else 'c' if image_count <= 100 else 'f'


def target_image_counts(num_categories: int, max_images: int, min_images: float,
                        rng: np.random.Generator) -> np.ndarray:
    """Geometric profile over a random ranking of the categories (index = category)."""
    profile = np.exp(np.linspace(np.log(max_images), np.log(min_images), num_categories))
    counts = np.maximum(1, np.round(profile)).astype(int)
    return counts[np.argsort(rng.permutation(num_categories))]


def _glyph_bank(sources: list[tuple], split: int) -> dict:
    """``{(source, class): [K, 28, 28] uint8}`` from each source's train (0) or test (1) split."""
    bank = {}
    for s, arrays in enumerate(sources):
        images, labels = arrays[2 * split], arrays[2 * split + 1]
        bank.update({(s, d): images[labels == d] for d in range(10)})
    return bank


def _render(rng, size, objects, bank, cat_meta, min_visible=0.35):
    """Draw ``objects`` (category indices) on a cluttered canvas; returns image and instances."""
    canvas = rng.normal(18, 8, (size, size, 3)).clip(0, 255)
    for _ in range(int(rng.integers(2, 6))):  # clutter: faint grey strokes and blobs
        p0, p1 = rng.integers(0, size, 2), rng.integers(0, size, 2)
        grey = float(rng.integers(30, 70))
        if rng.random() < 0.5:
            cv2.line(canvas, tuple(map(int, p0)), tuple(map(int, p1)), (grey,) * 3,
                     int(rng.integers(1, 3)))
        else:
            cv2.circle(canvas, tuple(map(int, p0)), int(rng.integers(3, 10)), (grey,) * 3, -1)
    masks, cats = [], []
    for cat in objects:
        glyph_class, colour = cat_meta[cat]
        glyphs = bank[glyph_class]
        glyph = glyphs[rng.integers(len(glyphs))]
        side = int(rng.integers(24, 49))
        g = cv2.resize(glyph, (side, side), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        y0, x0 = (int(v) for v in rng.integers(0, size - side + 1, 2))
        full = np.zeros((size, size), np.float32)
        full[y0:y0 + side, x0:x0 + side] = g / 255.0
        m = full > 0.5
        if m.sum() < 20:
            continue
        shade = (0.75 + 0.25 * full[m])[:, None]
        canvas[m] = shade * np.array(colour, np.float32)[None]
        for prev in masks:  # the new glyph occludes earlier ones
            prev &= ~m
        masks.append(m)
        cats.append(cat)
    instances = []
    for m, cat in zip(masks, cats):
        area = int(m.sum())
        if area < 20 * min_visible:
            continue
        ys, xs = np.nonzero(m)
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        rle['counts'] = rle['counts'].decode()
        instances.append(dict(category=cat, area=float(area), segmentation=rle,
                              bbox=[float(xs.min()), float(ys.min()),
                                    float(xs.max() - xs.min() + 1),
                                    float(ys.max() - ys.min() + 1)]))
    return canvas.astype(np.uint8)[:, :, ::-1], instances  # BGR for cv2.imwrite


def _definition(name: str) -> str:
    thing, colour = name.rsplit('_', 1)
    if thing in DIGITS:
        return f'the digit {thing} in {colour}'
    return f'a Fashion-MNIST {thing.replace("_", " ")} in {colour}'


def _deal(rng, tokens: list, max_per_image: int) -> list[list]:
    """Shuffle category tokens and deal them into images of 1..max_per_image objects."""
    order = list(rng.permutation(tokens))
    images = []
    while order:
        k = int(rng.integers(1, max_per_image + 1))
        images.append([int(c) for c in order[:k]])
        order = order[k:]
    return images


def make_lt_digits(out_dir: str | Path, seed: int = 0, max_images: int = 480,
                   min_images: float = 1.5, val_fraction: float = 0.12,
                   min_val_instances: int = 4, max_val_instances: int = 40,
                   image_size: int = 128, max_objects: int = 4, num_neg: int = 10,
                   strict: bool = False, progress: bool = True,
                   fashion_root: str | Path | None = None, force: bool = False) -> dict:
    """Generate LT-Digits under ``out_dir`` (``annotations/lvis_v1_{train,val}.json``,
    ``train2017/``, ``val2017/``; the LVIS v1 layout mmdet expects).

    Settings and sources are checked first; the dataset is written into a temporary sibling
    folder that replaces ``out_dir`` only once complete, so a failed or interrupted run leaves
    ``out_dir`` as it was. All settings are recorded in ``info.generation``.

    Args:
        out_dir: dataset root.
        seed (int): same seed, same dataset.
        max_images, min_images: ends of the geometric training-count profile.
        val_fraction: val instances per category relative to training, clipped to
            ``[min_val_instances, max_val_instances]``.
        image_size (int): square canvas side.
        max_objects (int): objects per image (1..max).
        num_neg (int): verified-absent categories listed per val image (LVIS-style).
        strict (bool): list every absent category as negative instead.
        progress (bool): show progress bars.
        fashion_root (str | Path, optional): also draw 100 Fashion-MNIST categories from the
            IDX files in this folder (:data:`FASHION_ROOT` for the Debian package).
        force (bool): replace an existing dataset that this generator wrote (never a folder
            holding other files).

    Returns:
        dict: ``data_root``, ``train_ann``, ``val_ann``, ``classes`` and group counts.

    Raises:
        GenerationError: invalid settings.
        UserError: ``out_dir`` can not be written or already holds data (without ``force``,
            or files this generator did not write), or MNIST / Fashion-MNIST is missing or
            corrupt.
    """
    from projects.c2am.data.mnist import load_mnist
    params = check_generation_params(
        seed=seed, max_images=max_images, min_images=min_images, val_fraction=val_fraction,
        min_val_instances=min_val_instances, max_val_instances=max_val_instances,
        image_size=image_size, max_objects=max_objects, num_neg=num_neg, strict=strict)
    final = prepare_output_dir(out_dir, force=force)
    sources = [load_mnist()]
    if fashion_root is not None:
        sources.append(load_fashion_mnist(fashion_root))
    params['sources'] = ['mnist', 'fashion-mnist'][:len(sources)]
    with atomic_output_dir(final, force=force) as tmp:
        out = _generate(tmp, params, sources, progress)
    out['data_root'] = str(final)
    for split in ('train', 'val'):
        out[f'{split}_ann'] = str(final / 'annotations' / f'lvis_v1_{split}.json')
    return out


def _generate(root: Path, params: dict, sources: list, progress: bool) -> dict:
    """Write the dataset into ``root`` (checked settings, loaded sources)."""
    seed, image_size, strict = params['seed'], params['image_size'], params['strict']
    val_fraction, num_neg = params['val_fraction'], params['num_neg']
    rng = np.random.default_rng(seed)
    names = category_names(fashion=len(sources) == 2)
    num_cats = len(names)
    cat_meta = [((i // 100, i // 10 % 10), list(COLOURS.values())[i % 10])
                for i in range(num_cats)]
    counts = target_image_counts(num_cats, params['max_images'], params['min_images'], rng)
    val_counts = np.clip(np.round(counts * val_fraction), params['min_val_instances'],
                         params['max_val_instances'])
    splits = {}
    ann_id = 1
    for split, per_cat, bank in (('train', counts, _glyph_bank(sources, 0)),
                                 ('val', val_counts.astype(int), _glyph_bank(sources, 1))):
        tokens = [c for c in range(num_cats) for _ in range(int(per_cat[c]))]
        layout = _deal(rng, tokens, params['max_objects'])
        img_dir = root / f'{split}2017'
        img_dir.mkdir(parents=True, exist_ok=True)
        images, anns = [], []
        base_id = 1 if split == 'train' else 1_000_001
        for k, objects in enumerate(tqdm(layout, desc=f'LT-Digits {split}', disable=not progress)):
            img_id = base_id + k
            img, instances = _render(rng, image_size, objects, bank, cat_meta)
            name = f'{img_id:012d}.png'
            if not cv2.imwrite(str(img_dir / name), img):
                raise OSError(f'could not write {img_dir / name}')
            present = sorted({i['category'] + 1 for i in instances})
            absent = sorted(set(range(1, num_cats + 1)) - set(present))
            if split == 'val' and not strict:
                absent = sorted(rng.choice(absent, min(num_neg, len(absent)), replace=False)
                                .tolist())
            images.append(dict(id=img_id, width=image_size, height=image_size,
                               coco_url=f'{COCO_URL}{split}2017/{name}',
                               neg_category_ids=[int(a) for a in absent] if split == 'val'
                               else [],
                               not_exhaustive_category_ids=[]))
            for inst in instances:
                anns.append(dict(id=ann_id, image_id=img_id, category_id=inst['category'] + 1,
                                 bbox=inst['bbox'], area=inst['area'],
                                 segmentation=inst['segmentation'], iscrowd=0))
                ann_id += 1
        splits[split] = dict(images=images, annotations=anns)

    train_anns = splits['train']['annotations']
    img_count = np.zeros(num_cats, int)
    inst_count = np.zeros(num_cats, int)
    for cid, _img in {(a['category_id'], a['image_id']) for a in train_anns}:
        img_count[cid - 1] += 1
    for a in train_anns:
        inst_count[a['category_id'] - 1] += 1
    categories = [{'id': i + 1, 'name': n, 'synset': f'{n}.n.01', 'synonyms': [n],
                   'def': _definition(n),
                   'frequency': lvis_group(int(img_count[i])), 'image_count': int(img_count[i]),
                   'instance_count': int(inst_count[i])} for i, n in enumerate(names)]
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    out = dict(data_root=str(root), classes=tuple(names))
    for split, data in splits.items():
        path = root / 'annotations' / f'lvis_v1_{split}.json'
        info = dict(description='LT-Digits: generated long-tail benchmark (c2am)', seed=seed,
                    negatives='strict' if strict else f'{num_neg} sampled per image',
                    sources=params['sources'], generation=params)
        path.write_text(dumps_json(dict(info=info, licenses=[], categories=categories,
                                        **data)))
        out[f'{split}_ann'] = str(path)
    out['groups'] = {g: sum(c['frequency'] == g for c in categories) for g in 'rcf'}
    return out
