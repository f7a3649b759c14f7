"""Run a model over a COCO-format set and score it: bundles on any backend, or PyTorch itself.

``evaluate("build/shapes", "data/test/annotations.json")`` runs the Detector;
``evaluate("models/rtdetr-shapes", ...)`` (a ``save_pretrained`` folder) runs PyTorch through the
exporter's :class:`TorchPredictor` with the same pre- and postprocessing.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..data.coco import CocoDataset
from ..errors import InputError, RtdetrEdgeError
from ..images import read_image
from ..postprocess import PostprocessOptions
from .coco_map import ImagePrediction, coco_map

log = logging.getLogger("rtdetr_edge")

# COCO scores the 100 best detections per image; no threshold, as in RT-DETR's own evaluation.
EVAL_OPTIONS = PostprocessOptions(conf=0.0, max_det=100)


def open_predictor(model: Any, **options: Any) -> Any:
    """A Detector for bundles/.onnx/.engine, a TorchPredictor for save_pretrained folders."""
    if hasattr(model, "detect_batch"):
        return model
    path = Path(model)
    if path.is_dir() and (path / "config.json").is_file() and not (path / "metadata.json").is_file():
        from rtdetr_edge.export.torch_predictor import TorchPredictor

        return TorchPredictor(path, threads=options.get("threads"))
    from ..detector import Detector

    return Detector(path, **options)


def evaluate(model: Any, annotations: str | os.PathLike[str], images_dir: str | os.PathLike[str] | None = None,
             max_images: int | None = None, batch: int = 1, progress: bool = True,
             image_ids: list[int] | None = None, **options: Any) -> dict[str, Any]:
    """COCO mAP of ``model`` on a COCO-format set.

    Args:
        model: bundle dir, .onnx, .engine, ``save_pretrained`` folder, or an object with
            ``detect_batch`` and ``class_names``.
        annotations: COCO json.
        images_dir: image folder (default next to the json, see :class:`CocoDataset`).
        max_images: evaluate only the first N images (default all).
        batch: images per inference call.
        progress: show a progress bar.
        image_ids: evaluate only these images.
        **options: Detector options (backend, precision, threads, providers).

    Returns:
        metrics (``AP``, ``AP50``, ...), plus ``images``, ``skipped`` and ``seconds``.
    """
    from tqdm import tqdm

    ds = CocoDataset(annotations, images_dir)
    todo = [im for im in ds.images if image_ids is None or im.id in set(image_ids)][: max_images or None]
    if not todo:
        raise InputError(f"{annotations}: no images to evaluate")
    predictor = open_predictor(model, **options)
    preds: list[ImagePrediction] = []
    skipped: list[str] = []
    t0 = time.perf_counter()
    try:
        bar = tqdm(total=len(todo), desc="evaluating", unit="img", disable=not progress, file=sys.stderr)
        for start in range(0, len(todo), batch):
            chunk, imgs = [], []
            for im in todo[start:start + batch]:
                try:
                    imgs.append(read_image(im.path))
                    chunk.append(im)
                except RtdetrEdgeError as exc:
                    skipped.append(str(exc))
            if imgs:
                for im, d in zip(chunk, predictor.detect_batch(imgs, EVAL_OPTIONS)):
                    preds.append(ImagePrediction(im.id, d.xyxy, d.scores, d.class_ids))
            bar.update(len(todo[start:start + batch]))
        bar.close()
    finally:
        if predictor is not model:
            predictor.close()
    if not preds:
        raise InputError(f"{annotations}: none of the images could be read ({skipped[:1]})")
    for msg in skipped:
        log.warning("skipped: %s", msg)
    metrics: dict[str, Any] = coco_map(ds, preds, predictor.class_names, [p.image_id for p in preds])
    metrics.update({"images": len(preds), "skipped": len(skipped), "seconds": round(time.perf_counter() - t0, 2)})
    return metrics
