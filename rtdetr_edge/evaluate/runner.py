"""Run a predictor over a COCO-format set and score it (COCO mAP).

``evaluate(Detector("build/shapes"), "data/test/annotations.json")`` scores a bundle on any
backend; the exporter's ``TorchPredictor`` (same pre- and postprocessing, PyTorch inside) scores
the source model. The predictor is an argument, so this module needs neither torch nor the
exporter (``rtdetr-eval`` picks the predictor from its argument).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any, Protocol

import numpy as np

from ..data.coco import CocoDataset
from ..detections import Detections
from ..errors import InputError, RtdetrEdgeError
from ..images import read_image
from ..postprocess import PostprocessOptions
from .coco_map import ImagePrediction, coco_map

log = logging.getLogger("rtdetr_edge")

# COCO scores the 100 best detections per image; no threshold, every label of each query and the
# model's own boxes, as in RT-DETR's own evaluation and transformers' post-processing (AP parity).
EVAL_OPTIONS = PostprocessOptions(conf=0.0, max_det=100, clip=False, all_labels=True)


class Predictor(Protocol):
    """What :func:`evaluate` runs: a :class:`~rtdetr_edge.detector.Detector`, or the exporter's
    ``TorchPredictor`` (PyTorch) for comparing against the source model."""

    @property
    def class_names(self) -> tuple[str, ...]: ...

    def detect_batch(
        self, bgr_images: list[np.ndarray], opts: PostprocessOptions | None = None
    ) -> list[Detections]: ...


def evaluate(
    predictor: Predictor,
    annotations: str | os.PathLike[str],
    images_dir: str | os.PathLike[str] | None = None,
    max_images: int | None = None,
    batch: int = 1,
    progress: bool = True,
    image_ids: list[int] | None = None,
) -> dict[str, Any]:
    """COCO mAP of ``model`` on a COCO-format set.

    Args:
        predictor: an open Detector (or anything with ``detect_batch`` and ``class_names``); the
            caller opens and closes it.
        annotations: COCO json.
        images_dir: image folder (default next to the json, see :class:`CocoDataset`).
        max_images: evaluate only the first N images (default all).
        batch: images per inference call.
        progress: show a progress bar.
        image_ids: evaluate only these images.

    Returns:
        metrics (``AP``, ``AP50``, ...), plus ``per_class`` (category name -> AP), ``images``,
        ``skipped`` and ``seconds``.
    """
    from tqdm import tqdm

    ds = CocoDataset(annotations, images_dir)
    todo = [im for im in ds.images if image_ids is None or im.id in set(image_ids)][: max_images or None]
    if not todo:
        raise InputError(f"{annotations}: no images to evaluate")
    preds: list[ImagePrediction] = []
    skipped: list[str] = []
    t0 = time.perf_counter()
    with tqdm(total=len(todo), desc="evaluating", unit="img", disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(todo), batch):
            chunk, imgs = [], []
            for im in todo[start : start + batch]:
                try:
                    imgs.append(read_image(im.path))
                    chunk.append(im)
                except RtdetrEdgeError as exc:
                    skipped.append(str(exc))
            if imgs:
                for im, d in zip(chunk, predictor.detect_batch(imgs, EVAL_OPTIONS)):
                    preds.append(ImagePrediction(im.id, d.xyxy, d.scores, d.class_ids))
            bar.update(len(todo[start : start + batch]))
    if not preds:
        raise InputError(f"{annotations}: none of the images could be read ({skipped[:1]})")
    for msg in skipped:
        log.warning("skipped: %s", msg)
    per_class: dict[str, float] = {}
    metrics: dict[str, Any] = coco_map(ds, preds, predictor.class_names, [p.image_id for p in preds], None, per_class)
    metrics.update({"images": len(preds), "skipped": len(skipped), "seconds": round(time.perf_counter() - t0, 2)})
    metrics["per_class"] = per_class
    return metrics


def evaluate_onnx(
    model: str | os.PathLike[str], dataset: CocoDataset, image_ids: list[int], threads: int | None = None
) -> dict[str, Any]:
    """COCO metrics of an ONNX file (or bundle) on ``image_ids`` of ``dataset``, on ONNX Runtime, quietly."""
    from ..backends.options import OnnxRuntimeOptions
    from ..detector import Detector

    with Detector(model, backend="onnxruntime", onnxruntime=OnnxRuntimeOptions(threads=threads)) as det:
        return evaluate(det, dataset.path, dataset.images_dir, image_ids=image_ids, progress=False)
