"""COCO box mAP with faster-coco-eval: the one evaluator used by the CLI, training and benchmarks.

Predictions arrive as per-image arrays (pixel xyxy boxes, scores, model label indices); they are
mapped to the dataset's category ids by class name and scored with COCO's protocol (AP@[.5:.95],
AP50, AP75, APs/APm/APl, AR@100).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._optional import require
from ..data.coco import CocoDataset, label_to_category
from ..errors import InputError

log = logging.getLogger("rtdetr_edge")

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


@dataclass(frozen=True)
class ImagePrediction:
    """Detections for one dataset image: ``xyxy`` [M,4] pixels, ``scores`` [M], ``labels`` [M]."""

    image_id: int
    xyxy: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


def to_coco_results(predictions: Iterable[ImagePrediction], label_map: dict[int, int]) -> list[dict[str, Any]]:
    """COCO results list (``bbox`` as xywh); labels the dataset does not have are dropped."""
    results: list[dict[str, Any]] = []
    for p in predictions:
        xyxy = np.asarray(p.xyxy, np.float64).reshape(-1, 4)
        for (x0, y0, x1, y1), s, lab in zip(xyxy, np.asarray(p.scores), np.asarray(p.labels)):
            cat = label_map.get(int(lab))
            if cat is None:
                continue
            results.append(
                {
                    "image_id": int(p.image_id),
                    "category_id": cat,
                    "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                    "score": float(s),
                }
            )
    return results


def coco_map(
    dataset: CocoDataset,
    predictions: Iterable[ImagePrediction],
    class_names: list[str] | tuple[str, ...],
    image_ids: list[int] | None = None,
    max_dets: int | None = None,
    per_class: dict[str, float] | None = None,
) -> dict[str, float]:
    """COCO bbox metrics of ``predictions`` against ``dataset``.

    Args:
        dataset: ground truth.
        predictions: one :class:`ImagePrediction` per evaluated image.
        class_names: the model's label names (mapped to categories by name).
        image_ids: restrict evaluation to these images (default: every image predicted).
        max_dets: detections per image that count (COCO ``maxDets``, the last of ``[1, 10, K]``,
            which AP and ``AR100`` use); default COCO's 100. Pass at least the largest number of
            detections an image has where none may be cut off (``rtdetr-check``'s pseudo AP).
        per_class: if given, filled with each category's AP@[.5:.95] by category name (categories
            without ground truth in these images are left out).

    Returns:
        ``{"AP": .., "AP50": .., ..., "num_images": n}`` with AP values in [0, 1].
    """
    if max_dets is not None and (isinstance(max_dets, bool) or not isinstance(max_dets, int) or max_dets < 1):
        raise InputError(f"max_dets: expected an integer >= 1, got {max_dets!r}")
    fce = require("faster_coco_eval", "COCO evaluation")
    preds = list(predictions)
    ids = sorted({p.image_id for p in preds}) if image_ids is None else sorted(image_ids)
    if not ids:
        raise InputError(f"{dataset.path}: no predictions to evaluate")
    label_map = label_to_category(class_names, dataset)
    gt_dict = dataset.subset(ids)
    gt_dict.setdefault("info", {})
    gt_dict.setdefault("annotations", [])
    results = to_coco_results(preds, label_map)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = fce.COCO(gt_dict)
        if not results:
            return dict.fromkeys(STAT_NAMES, 0.0) | {"num_images": float(len(ids))}
        dt = gt.loadRes(results)
        ev = fce.COCOeval_faster(gt, dt, "bbox", print_function=log.debug)
        ev.params.imgIds = ids
        if max_dets is not None:
            ev.params.maxDets = [1, 10, max(int(max_dets), 10)]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    if per_class is not None:
        per_class.update(_per_category_ap(ev, dataset))
    stats = [max(float(v), 0.0) for v in ev.stats[: len(STAT_NAMES)]]
    return dict(zip(STAT_NAMES, stats)) | {"num_images": float(len(ids))}


def _per_category_ap(ev: Any, dataset: CocoDataset) -> dict[str, float]:
    """AP@[.5:.95] per category from an accumulated COCOeval: its ``precision`` array is
    ``[IoU thresholds, recall points, categories, areas, maxDets]``, -1 where nothing was there;
    area "all" and the last ``maxDets``, as ``AP`` itself."""
    precision = np.asarray(ev.eval["precision"])
    names = {c["id"]: c["name"] for c in dataset.categories}
    out = {}
    for k, cat in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        if (p > -1).any():
            out[str(names.get(cat, cat))] = float(p[p > -1].mean())
    return out


def format_metrics(metrics: dict[str, float]) -> str:
    """One line: ``AP 0.512  AP50 0.781 ...``."""
    return "  ".join(f"{k} {metrics[k]:.3f}" for k in STAT_NAMES[:6] if k in metrics)
