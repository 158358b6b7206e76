"""Detections as arrays: from an LVIS result json, a list of dicts, or mmdet predictions.

The json path decodes straight into typed records (:mod:`msgspec`): no ``json.load`` dicts, no
per-detection Python work beyond reading four fields; masks stay undecoded JSON until a mask
IoU needs them. Every loader checks the keys and ids and raises
:class:`~projects.c2am.lvis_eval.errors.EvalInputError` with a one-line message.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

from .errors import EvalInputError


class _Det(msgspec.Struct):
    image_id: int
    category_id: int
    score: float
    bbox: tuple[float, float, float, float] | None = None
    segmentation: msgspec.Raw = msgspec.Raw()


@dataclass
class Detections:
    """N detections in result-file order (the order lvis-api breaks score ties by).

    Attributes:
        image_id, category_id (np.ndarray): int64 [N].
        score (np.ndarray): float64 [N].
        bbox (np.ndarray | None): float64 [N, 4] (x, y, w, h); None when no entry has one.
        segm (list | None): [N] masks (RLE dicts, polygons, or undecoded JSON bytes); None when
            no entry has one.
    """

    image_id: np.ndarray
    category_id: np.ndarray
    score: np.ndarray
    bbox: np.ndarray | None = None
    segm: list | None = None
    source: str = '<memory>'

    def __len__(self) -> int:
        return len(self.score)

    def take(self, idx: np.ndarray) -> Detections:
        """The detections at ``idx`` (int array), in that order."""
        return Detections(self.image_id[idx], self.category_id[idx], self.score[idx],
                          None if self.bbox is None else self.bbox[idx],
                          None if self.segm is None else [self.segm[i] for i in idx],
                          self.source)

    def segmentation(self, i: int):
        """The decoded mask of detection ``i``."""
        segm = self.segm[i]
        if isinstance(segm, (bytes, msgspec.Raw)):
            segm = msgspec.json.decode(segm)
        return segm

    def for_iou_type(self, iou_type: str) -> Detections:
        """Check that every detection has what ``iou_type`` needs.

        Raises:
            EvalInputError: no detections, or a box / mask missing.
        """
        if not len(self):
            raise EvalInputError(f'{self.source}: no detections to evaluate (empty results)')
        if iou_type == 'segm' and self.segm is None:
            raise EvalInputError(f'{self.source}: the detections have no "segmentation" '
                                 '(needed for --iou-type segm)')
        if iou_type == 'bbox' and self.bbox is None:
            raise EvalInputError(f'{self.source}: the detections have no "bbox" '
                                 '(needed for --iou-type bbox)')
        return self

    def check(self, gt) -> Detections:
        """Refuse ids that ``gt`` does not know and non-finite values.

        Raises:
            EvalInputError: naming the first offending detection.
        """
        for what, ids, known in (('image', self.image_id, gt.img_ids),
                                 ('category', self.category_id, gt.cat_ids)):
            bad = np.flatnonzero(~np.isin(ids, known))
            if bad.size:
                raise EvalInputError(f'{self.source}: detection {int(bad[0])} has {what} id '
                                     f'{int(ids[bad[0]])}, which is not in the annotation file')
        bad = np.flatnonzero(~np.isfinite(self.score))
        if bad.size:
            raise EvalInputError(f'{self.source}: detection {int(bad[0])} has score '
                                 f'{self.score[bad[0]]} (scores must be finite)')
        if self.bbox is not None:
            bad = np.flatnonzero(~np.isfinite(self.bbox).all(1))
            if bad.size:
                raise EvalInputError(f'{self.source}: detection {int(bad[0])} has a non-finite '
                                     'bbox')
        return self


def _assemble(recs: list, source: str) -> Detections:
    n = len(recs)
    with_box = sum(r.bbox is not None for r in recs)
    with_mask = sum(len(r.segmentation) > 0 for r in recs)
    for what, count in (('bbox', with_box), ('segmentation', with_mask)):
        if 0 < count < n:
            first = next(i for i, r in enumerate(recs)
                         if (r.bbox if what == 'bbox' else len(r.segmentation)) in (None, 0))
            raise EvalInputError(f'{source}: detection {first} has no "{what}" while others '
                                 'have one')
    if n and not with_box and not with_mask:
        raise EvalInputError(f'{source}: the detections have neither "bbox" nor "segmentation"')
    return Detections(
        image_id=np.fromiter((r.image_id for r in recs), np.int64, n),
        category_id=np.fromiter((r.category_id for r in recs), np.int64, n),
        score=np.fromiter((r.score for r in recs), np.float64, n),
        bbox=np.array([r.bbox for r in recs], np.float64).reshape(-1, 4) if with_box else None,
        segm=[r.segmentation for r in recs] if with_mask else None,
        source=source)


def detections_from_json(data: bytes | str, source: str = '<memory>') -> Detections:
    """Decode LVIS result json text (a list of detections).

    Raises:
        EvalInputError: not JSON, not a list, a required key missing or of the wrong type.
    """
    try:
        recs = msgspec.json.decode(data, type=list[_Det])
    except (msgspec.ValidationError, msgspec.DecodeError) as err:
        raise EvalInputError(f'{source}: not an LVIS result file ({err})') from None
    return _assemble(recs, source)


def detections_from_list(dets: list, source: str = '<memory>') -> Detections:
    """Detections from a list of LVIS result dicts (``image_id``, ``category_id``, ``score``,
    ``bbox`` and/or ``segmentation``)."""
    if not isinstance(dets, list):
        raise EvalInputError(f'{source}: expected a list of detections, got '
                             f'{type(dets).__name__}')
    segms = [d.get('segmentation') if isinstance(d, dict) else None for d in dets]
    stripped = [{k: v for k, v in d.items() if k != 'segmentation'} if isinstance(d, dict)
                else d for d in dets]
    try:
        recs = msgspec.convert(stripped, type=list[_Det])
    except msgspec.ValidationError as err:
        raise EvalInputError(f'{source}: not an LVIS result list ({err})') from None
    for r, s in zip(recs, segms):
        if s is not None:
            r.segmentation = msgspec.Raw(msgspec.json.encode(s))
    return _assemble(recs, source)


def load_detections(path: str | Path) -> Detections:
    """Read an LVIS result json file.

    Raises:
        EvalInputError: missing, unreadable, or not a list of detections.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise EvalInputError(f'result file {path}: {err.strerror or err}') from None
    return detections_from_json(data, source=str(path))


def detections_from_predictions(samples, cat_ids) -> dict[str, Detections]:
    """Detections per IoU type from mmdet predictions (``tools/test.py --out`` samples).

    Args:
        samples: list of dicts with ``img_id`` and ``pred_instances`` (``bboxes`` x1y1x2y2,
            ``scores``, ``labels``, optional ``masks`` as RLE dicts and ``mask_scores``), numpy
            or torch.
        cat_ids: category id of each label (the annotation file's category order).

    Returns:
        dict: ``{'bbox': Detections, 'segm': Detections}`` (segm only with masks); the boxes are
        converted to x, y, w, h in float64 as mmdet's ``LVISMetric.results2json`` does.
    """
    cat_ids = np.asarray(cat_ids, np.int64)
    img, lab, score, boxes, masks, mask_score = [], [], [], [], [], []
    have_masks = True
    try:
        for s in samples:
            pred = s['pred_instances']
            b = np.asarray(_numpy(pred['bboxes']), np.float64).reshape(-1, 4)
            sc = np.asarray(_numpy(pred['scores'])).astype(np.float64).reshape(-1)
            lb = np.asarray(_numpy(pred['labels']), np.int64).reshape(-1)
            img.append(np.full(len(sc), int(s['img_id']), np.int64))
            lab.append(lb)
            score.append(sc)
            boxes.append(b)
            m = pred.get('masks')
            if m is None or isinstance(m, np.ndarray) or hasattr(m, 'shape'):
                have_masks = False  # no masks, or binary masks not encoded to RLE
            else:
                masks.extend(_rle(x) for x in m)
                ms = pred.get('mask_scores')
                mask_score.append(sc if ms is None
                                  else np.asarray(_numpy(ms)).astype(np.float64).reshape(-1))
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise EvalInputError(f'not an mmdet prediction list ({type(err).__name__}: {err})') \
            from None
    labels = np.concatenate(lab) if lab else np.zeros(0, np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= len(cat_ids)):
        raise EvalInputError(f'prediction label {int(labels.max())} outside the '
                             f'{len(cat_ids)} categories of the annotation file')
    b = np.concatenate(boxes) if boxes else np.zeros((0, 4))
    xywh = np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)
    base = dict(image_id=np.concatenate(img) if img else np.zeros(0, np.int64),
                category_id=cat_ids[labels], score=np.concatenate(score) if score
                else np.zeros(0), source='predictions')
    out = {'bbox': Detections(**base, bbox=xywh)}
    if have_masks and masks:
        out['segm'] = Detections(**dict(base, score=np.concatenate(mask_score)), bbox=xywh,
                                 segm=masks)
    return out


def _numpy(x):
    return x.detach().cpu().numpy() if hasattr(x, 'detach') else x


def _rle(mask) -> dict:
    rle = dict(mask)
    if isinstance(rle.get('counts'), bytes):
        rle['counts'] = rle['counts'].decode()
    return rle
