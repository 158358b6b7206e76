"""LVIS ground truth as arrays (images, categories, annotations), read with a typed decoder.

Polygons and RLEs stay undecoded (:class:`msgspec.Raw`) until a mask IoU needs them, so reading
LVIS v1 val costs a fraction of ``json.load``. Annotation order is the file's order: lvis-api
uses it to break ties between ground truths of equal IoU.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numpy as np

from .errors import EvalInputError
from .protocol import FREQ_LBL


class _Image(msgspec.Struct):
    id: int
    neg_category_ids: list[int]
    not_exhaustive_category_ids: list[int]
    height: int = 0
    width: int = 0


class _Category(msgspec.Struct):
    id: int
    frequency: str
    name: str = ''


class _Annotation(msgspec.Struct):
    id: int
    image_id: int
    category_id: int
    area: float
    bbox: tuple[float, float, float, float]
    segmentation: msgspec.Raw = msgspec.Raw()
    ignore: bool | int = 0


class _Dataset(msgspec.Struct):
    images: list[_Image]
    annotations: list[_Annotation]
    categories: list[_Category]


@dataclass
class GroundTruth:
    """An LVIS annotation file.

    Attributes:
        img_ids (np.ndarray): int64 [I], file order.
        heights, widths (np.ndarray): int64 [I].
        neg (list[set[int]]): per image, ``neg_category_ids``.
        nel (list[set[int]]): per image, ``not_exhaustive_category_ids``.
        cat_ids (np.ndarray): int64 [C], file order; ``cat_names``, ``cat_freq`` alike.
        ann_ids, ann_img, ann_cat (np.ndarray): int64 [G]; ``ann_area`` float64 [G];
            ``ann_bbox`` float64 [G, 4] (x, y, w, h); ``ann_ignore`` bool [G].
        ann_segm (list): [G] undecoded segmentations (JSON bytes) or decoded objects.
    """

    img_ids: np.ndarray
    heights: np.ndarray
    widths: np.ndarray
    neg: list
    nel: list
    cat_ids: np.ndarray
    cat_names: list
    cat_freq: list
    ann_ids: np.ndarray
    ann_img: np.ndarray
    ann_cat: np.ndarray
    ann_area: np.ndarray
    ann_bbox: np.ndarray
    ann_ignore: np.ndarray
    ann_segm: list
    source: str = '<memory>'
    _img_index: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self._img_index = {int(i): k for k, i in enumerate(self.img_ids)}

    def image_rows(self, img_ids: np.ndarray) -> np.ndarray:
        """Row of each image id in :attr:`img_ids` (ids must be known)."""
        return np.fromiter((self._img_index[int(i)] for i in img_ids), np.int64, len(img_ids))

    def segmentation(self, k: int):
        """The decoded segmentation of annotation row ``k`` (polygons or RLE)."""
        segm = self.ann_segm[k]
        if isinstance(segm, (bytes, msgspec.Raw)):
            segm = msgspec.json.decode(segm) if len(segm) else None
        if segm is None:
            raise EvalInputError(f'{self.source}: annotation {int(self.ann_ids[k])} has no '
                                 'segmentation (needed for --iou-type segm)')
        return segm

    @classmethod
    def from_json(cls, data: bytes | str, source: str = '<memory>') -> GroundTruth:
        """Decode an LVIS annotation file's text.

        Raises:
            EvalInputError: not JSON, a required key missing or of the wrong type, an unknown
                frequency, or duplicate ids.
        """
        try:
            ds = msgspec.json.decode(data, type=_Dataset)
        except (msgspec.ValidationError, msgspec.DecodeError) as err:
            raise EvalInputError(f'{source}: not an LVIS annotation file ({err})') from None
        return cls._from_structs(ds, source)

    @classmethod
    def from_dict(cls, dataset: dict, source: str = '<memory>') -> GroundTruth:
        """Build from an already parsed LVIS dataset dict (e.g. mmdet's ``LVIS.dataset``)."""
        try:
            ds = msgspec.convert(_strip_segmentations(dataset), type=_Dataset)
        except msgspec.ValidationError as err:
            raise EvalInputError(f'{source}: not an LVIS annotation file ({err})') from None
        gt = cls._from_structs(ds, source)
        gt.ann_segm = [a.get('segmentation') for a in dataset['annotations']]
        return gt

    @classmethod
    def _from_structs(cls, ds: _Dataset, source: str) -> GroundTruth:
        bad = sorted({c.frequency for c in ds.categories} - set(FREQ_LBL))
        if bad:
            raise EvalInputError(f'{source}: category frequency {bad[0]!r} is not one of '
                                 f'{list(FREQ_LBL)}')
        anns = ds.annotations
        gt = cls(
            img_ids=np.array([i.id for i in ds.images], np.int64),
            heights=np.array([i.height for i in ds.images], np.int64),
            widths=np.array([i.width for i in ds.images], np.int64),
            neg=[set(i.neg_category_ids) for i in ds.images],
            nel=[set(i.not_exhaustive_category_ids) for i in ds.images],
            cat_ids=np.array([c.id for c in ds.categories], np.int64),
            cat_names=[c.name for c in ds.categories],
            cat_freq=[c.frequency for c in ds.categories],
            ann_ids=np.array([a.id for a in anns], np.int64),
            ann_img=np.array([a.image_id for a in anns], np.int64),
            ann_cat=np.array([a.category_id for a in anns], np.int64),
            ann_area=np.array([a.area for a in anns], np.float64),
            ann_bbox=np.array([a.bbox for a in anns], np.float64).reshape(-1, 4),
            ann_ignore=np.array([bool(a.ignore) for a in anns], bool),
            ann_segm=[a.segmentation for a in anns],
            source=source)
        for what, ids in (('image', gt.img_ids), ('category', gt.cat_ids),
                          ('annotation', gt.ann_ids)):
            if len(np.unique(ids)) != len(ids):
                raise EvalInputError(f'{source}: duplicate {what} ids')
        for what, ids, known in (('image', gt.ann_img, gt.img_ids),
                                 ('category', gt.ann_cat, gt.cat_ids)):
            unknown = ids[~np.isin(ids, known)]
            if unknown.size:
                raise EvalInputError(f'{source}: an annotation has {what} id {int(unknown[0])}, '
                                     f'which is not in its {what} list')
        return gt


def _strip_segmentations(dataset: dict) -> dict:
    anns = [{k: v for k, v in a.items() if k != 'segmentation'}
            for a in dataset.get('annotations', [])]
    return dict(dataset, annotations=anns)


def load_groundtruth(path: str | Path) -> GroundTruth:
    """Read an LVIS annotation json.

    Raises:
        EvalInputError: missing, unreadable or not an LVIS annotation file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise EvalInputError(f'annotation file {path}: {err.strerror or err}') from None
    return GroundTruth.from_json(data, source=str(path))
