"""Graph outputs -> :class:`Detections` per image.

* In-graph top-k (``scores``/``labels``/``boxes``, boxes normalised xyxy): threshold, keep the
  top ``max_det``, scale to each image's size, optional clip. K is small (300) and already sorted
  by the graph, so this is a few vector ops.
* One label per query: the model's top-k runs over queries x classes, so one query (one object)
  can come out several times with different labels. ``all_labels=False`` keeps only its best
  label, as Ultralytics does; ``all_labels=True`` keeps them all, as transformers'
  post-processing and COCO AP do. The in-graph top-k gathers each entry's box from its query, so
  the entries of one query carry bit-identical boxes: that is how they are recognised there.
* Raw outputs (``logits``/``pred_boxes`` cxcywh): sigmoid + top-k over queries x classes as the
  official RT-DETR postprocessor does, with ``argpartition`` (no full sort) on the logits (sigmoid
  is monotonic, so it is applied to the K survivors only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .detections import Detections
from .errors import InputError


@dataclass(frozen=True)
class PostprocessOptions:
    """Filtering applied to every image.

    Attributes:
        conf: keep detections with score >= conf (default 0.3).
        classes: keep only these class ids (None = all).
        max_det: keep at most this many per image, best first (default 300).
        clip: clip boxes to the image (the model's boxes may reach slightly outside; default
            False here, the model's own boxes; the :class:`~rtdetr_edge.Detector` clips by default).
        all_labels: keep every label the top-k gives a query (default True here, the model's own
            output: what transformers' post-processing and COCO AP use); False keeps each query's
            best label only, one detection per object (the Detector's default).
    """

    conf: float = 0.3
    classes: Sequence[int] | None = None
    max_det: int = 300
    clip: bool = False
    all_labels: bool = True

    def __post_init__(self) -> None:
        conf = self.conf
        if isinstance(conf, bool) or not isinstance(conf, (int, float, np.integer, np.floating)):
            raise InputError(f"conf: expected a number in [0, 1], got {conf!r}")
        if not 0.0 <= float(conf) <= 1.0:  # NaN fails both comparisons
            raise InputError(f"conf: expected a number in [0, 1], got {conf!r}")
        object.__setattr__(self, "conf", float(conf))
        max_det = self.max_det
        if isinstance(max_det, bool) or not isinstance(max_det, (int, np.integer)) or max_det < 1:
            raise InputError(f"max_det: expected an integer >= 1, got {max_det!r}")
        object.__setattr__(self, "max_det", int(max_det))
        if not isinstance(self.clip, (bool, np.bool_)):
            raise InputError(f"clip: expected True or False, got {self.clip!r}")
        if not isinstance(self.all_labels, (bool, np.bool_)):
            raise InputError(f"all_labels: expected True or False, got {self.all_labels!r}")
        object.__setattr__(self, "clip", bool(self.clip))
        object.__setattr__(self, "all_labels", bool(self.all_labels))
        object.__setattr__(self, "classes", _class_ids(self.classes))


def _class_ids(classes: object) -> tuple[int, ...] | None:
    """``classes`` as a tuple of class ids (None: all classes)."""
    if classes is None:
        return None
    expected = "expected None or a non-empty list of integer class ids"
    if isinstance(classes, (str, bytes)) or not isinstance(classes, (Sequence, set, frozenset, np.ndarray)):
        raise InputError(f"classes: {expected}, got {classes!r}")
    ids = list(classes)
    if not ids:
        raise InputError(f"classes: {expected}, got an empty list (it would drop every detection)")
    bad = [c for c in ids if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)) or c < 0]
    if bad:
        raise InputError(f"classes: {expected} >= 0, got {bad[0]!r} in {classes!r}")
    return tuple(int(c) for c in ids)


def class_ids_of(classes: Sequence[int | str] | None, class_names: Sequence[str] | None) -> tuple[int, ...] | None:
    """``classes`` (class ids, or names of ``class_names``) as ids the model has (None: all classes).

    Raises InputError naming the first id beyond the model's classes or name it does not have
    (a filter that can never match would silently drop every detection). ``class_names`` None
    (the model not open yet) checks only the form: names stand in as id 0.
    """
    if classes is None or isinstance(classes, (str, bytes)):
        return _class_ids(classes)
    if not isinstance(classes, (Sequence, set, frozenset, np.ndarray)):
        return _class_ids(classes)
    ids: list[object] = []
    for c in classes:
        if isinstance(c, str):
            text = c.strip()
            if text.isdigit():
                ids.append(int(text))
            elif class_names is None:
                ids.append(0)
            elif text in class_names:
                ids.append(list(class_names).index(text))
            else:
                shown = ", ".join(class_names[:20]) + (", ..." if len(class_names) > 20 else "")
                raise InputError(f"classes: {c!r} is not one of the model's classes ({shown})")
        else:
            ids.append(c)
    out = _class_ids(ids)
    n = len(class_names or ())
    if out is not None and n:
        beyond = [c for c in out if c >= n]
        if beyond:
            raise InputError(f"classes: class id {beyond[0]}: expected 0..{n - 1} (the model has {n} classes)")
    return out


def _finish(
    scores: np.ndarray,
    labels: np.ndarray,
    boxes_norm_xyxy: np.ndarray,
    size: tuple[int, int],
    opts: PostprocessOptions,
    class_names: tuple[str, ...],
    queries: np.ndarray | None = None,
) -> Detections:
    """Threshold, one label per query unless ``opts.all_labels``, class filter, sort, ``max_det``, scale.

    ``queries`` names each entry's query (raw outputs); None (in-graph top-k) recognises a query
    by its box, which the graph gathered from that query (bit-identical for its entries).
    """
    idx = np.flatnonzero(scores >= opts.conf)
    if idx.size > 1:
        # the graph's top-k is sorted, but keep the contract for raw/other producers too
        idx = idx[np.argsort(-scores[idx], kind="stable")]
    if not opts.all_labels and idx.size > 1:
        # the first entry of each query in score order is its best label; keep those, in order
        keys = queries[idx] if queries is not None else np.ascontiguousarray(boxes_norm_xyxy[idx])
        _, first = np.unique(keys, axis=0, return_index=True)
        idx = idx[np.sort(first)]
    if opts.classes is not None:
        idx = idx[np.isin(labels[idx], opts.classes)]
    idx = idx[: opts.max_det]
    w, h = size
    xyxy = boxes_norm_xyxy[idx] * np.array([w, h, w, h], np.float32)
    if opts.clip:
        np.clip(xyxy, 0, [w, h, w, h], out=xyxy)
    return Detections(xyxy, scores[idx], labels[idx], class_names, (w, h))


def from_topk(
    scores: np.ndarray,
    labels: np.ndarray,
    boxes: np.ndarray,
    sizes: Sequence[tuple[int, int]],
    opts: PostprocessOptions,
    class_names: tuple[str, ...] = (),
) -> list[Detections]:
    """Detections from in-graph top-k outputs ``[N,K]``, ``[N,K]``, ``[N,K,4]`` (normalised xyxy)."""
    return [
        _finish(scores[i], labels[i].astype(np.int32, copy=False), boxes[i], sizes[i], opts, class_names)
        for i in range(len(sizes))
    ]


def cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    half = b[..., 2:] * 0.5
    return np.concatenate([b[..., :2] - half, b[..., :2] + half], axis=-1)


def topk_raw(logits: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sigmoid top-k over queries x classes of one image's ``[Q,C]`` logits.

    Returns (scores [k], labels [k], query indices [k]), sorted by score descending.
    """
    flat = logits.reshape(-1)
    k = min(top_k, flat.size)
    part = np.argpartition(flat, flat.size - k)[flat.size - k :] if k < flat.size else np.arange(flat.size)
    order = part[np.argsort(-flat[part], kind="stable")]
    scores = 1.0 / (1.0 + np.exp(-flat[order].astype(np.float32)))
    num_classes = logits.shape[-1]
    return scores.astype(np.float32), (order % num_classes).astype(np.int32), order // num_classes


def from_raw(
    logits: np.ndarray,
    pred_boxes: np.ndarray,
    sizes: Sequence[tuple[int, int]],
    top_k: int,
    opts: PostprocessOptions,
    class_names: tuple[str, ...] = (),
) -> list[Detections]:
    """Detections from raw ``logits`` [N,Q,C] and ``pred_boxes`` [N,Q,4] (normalised cxcywh)."""
    out = []
    for i in range(len(sizes)):
        scores, labels, queries = topk_raw(logits[i], top_k)
        boxes = cxcywh_to_xyxy(pred_boxes[i][queries].astype(np.float32))
        out.append(_finish(scores, labels, boxes, sizes[i], opts, class_names, queries))
    return out
