"""``--calib-algorithm auto``: choose between candidate ranges by the INT8 accuracy they give."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtdetr_edge.data.coco import CocoDataset, label_to_category
from rtdetr_edge.errors import InputError

from .int8 import INT8_FILE, INT8_TRT8_FILE, write_int8
from .sensitivity import average_precision

if TYPE_CHECKING:
    from . import CalibrationResult

log = logging.getLogger("rtdetr_edge")


MIN_CHOICE_IMAGES = 20  # fewer held-out images than this cannot tell two range choices apart


def choose_ranges(
    fp32: Path,
    result: CalibrationResult,
    choice_images: tuple[CocoDataset, list[int]] | None,
    exclude: list[str],
    class_names: tuple[str, ...],
    workdir: Path,
    announce: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``--calib-algorithm auto``: keep the candidate ranges whose INT8 model scores best on ``choice_images``.

    TensorRT's entropy thresholds clip hard (on the reference model, SiLU outputs to ~half their
    range) and can cost a few percent AP where a percentile range does not; which is better
    depends on the model, so it is measured, on held-out images kept for this decision alone
    (neither calibration images nor the ones accuracy is reported on). Ties, too few images or
    none keep entropy2.

    Returns:
        (the choice for report.json: chosen algorithm, each candidate's AP, images, or why not
        measured; the chosen INT8 artifacts' :func:`~calib.int8.write_int8` report when they were
        measured: they are then already written as ``workdir/model.int8.qdq.onnx`` and
        ``workdir/model.int8.qdq.trt8.onnx``, else None)
    """
    if choice_images is None or not choice_images[1]:
        log.info("calibration: no held-out images left to compare range algorithms on; keeping entropy2")
        return {
            "chosen": result.ranges.algorithm,
            "reason": "no held-out images left for the choice",
            "images": 0,
        }, None
    dataset, ids = choice_images
    try:
        label_to_category(class_names, dataset)
    except InputError as exc:  # calibration data need not share the model's classes
        log.info("calibration: keeping entropy2 ranges, held-out images cannot score this model: %s", exc)
        return {"chosen": result.ranges.algorithm, "reason": str(exc), "images": 0}, None
    if len(ids) < MIN_CHOICE_IMAGES:
        log.info("calibration: only %d held-out images for the range choice; keeping entropy2 ranges", len(ids))
        return {
            "chosen": result.ranges.algorithm,
            "reason": f"{len(ids)} held-out images for the choice (< {MIN_CHOICE_IMAGES})",
            "images": len(ids),
        }, None
    announce("choose calibration ranges")
    scores, reports = {}, {}
    files = {a: (workdir / f".candidate-{a}.onnx", workdir / f".candidate-{a}.trt8.onnx") for a in result.candidates}
    try:
        for algorithm, ranges in result.candidates.items():
            strong, weak = files[algorithm]
            reports[algorithm] = write_int8(fp32, ranges, strong, exclude, weak)
            scores[algorithm] = round(average_precision(strong, dataset, ids), 4)
            log.info(
                "calibration: %s ranges -> INT8 AP %.4f on %d held-out images", algorithm, scores[algorithm], len(ids)
            )
        chosen = max(scores, key=lambda a: (scores[a], a == "entropy2"))
        result.choose(chosen)
        files[chosen][0].replace(workdir / INT8_FILE)  # the chosen candidate is the artifact
        files[chosen][1].replace(workdir / INT8_TRT8_FILE)
    finally:
        for pair in files.values():
            for path in pair:
                path.unlink(missing_ok=True)
    reports[chosen].update({"file": INT8_FILE, "trt8_file": INT8_TRT8_FILE})
    return {"chosen": chosen, "int8_ap": scores, "images": len(ids)}, reports[chosen]
