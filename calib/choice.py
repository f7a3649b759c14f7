"""``--calib-algorithm auto``: choose between candidate ranges by the INT8 accuracy they give."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtdetr_edge.data.coco import CocoDataset, label_to_category
from rtdetr_edge.errors import InputError

from .qdq import write_qdq
from .sensitivity import average_precision

if TYPE_CHECKING:
    from . import CalibrationResult

log = logging.getLogger("rtdetr_edge")


MIN_CHOICE_IMAGES = 20  # fewer held-out images than this cannot tell two range choices apart


def choose_ranges(
    fp32: Path,
    result: CalibrationResult,
    holdout: tuple[CocoDataset, list[int]] | None,
    exclude: list[str],
    class_names: tuple[str, ...],
    check_images: int,
    workdir: Path,
    announce: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``--calib-algorithm auto``: keep the candidate ranges whose Q/DQ model scores best on held-out images.

    TensorRT's entropy thresholds clip hard (on the reference model, SiLU outputs to ~half their
    range) and can cost a few percent AP where a percentile range does not; which is better
    depends on the model, so it is measured. Ties and no held-out images keep entropy2.

    Returns:
        (the choice for report.json, the chosen Q/DQ model's report when it was measured: it is
        then already written as ``workdir/model.int8.qdq.onnx``, else None)

    The first ``check_images`` held-out images are left to the build's accuracy check, so what
    chose the ranges is not what reports on them.
    """

    if holdout is None:
        log.info("calibration: no held-out images to compare range algorithms on; keeping entropy2")
        return {"chosen": result.ranges.algorithm, "reason": "no held-out images"}, None
    try:
        label_to_category(class_names, holdout[0])
    except InputError as exc:  # calibration data need not share the model's classes
        log.info("calibration: keeping entropy2 ranges, held-out images cannot score this model: %s", exc)
        return {"chosen": result.ranges.algorithm, "reason": str(exc)}, None
    # images after the accuracy check's where there are enough, so that the check does not report
    # on what chose
    rest = holdout[1][check_images:]
    ids = rest if len(rest) >= 50 else holdout[1]
    if len(ids) < MIN_CHOICE_IMAGES:
        log.info("calibration: only %d held-out images; keeping entropy2 ranges", len(ids))
        reason = f"{len(ids)} held-out images (< {MIN_CHOICE_IMAGES})"
        return {"chosen": result.ranges.algorithm, "reason": reason}, None
    announce("choose calibration ranges")
    scores, reports = {}, {}
    for algorithm, ranges in result.candidates.items():
        path = workdir / f".candidate-{algorithm}.onnx"
        reports[algorithm] = write_qdq(fp32, ranges, path, exclude)
        scores[algorithm] = round(average_precision(path, holdout[0], ids), 4)
        log.info("calibration: %s ranges -> INT8 AP %.4f on %d held-out images", algorithm, scores[algorithm], len(ids))
    chosen = max(scores, key=lambda a: (scores[a], a == "entropy2"))
    result.choose(chosen)
    for algorithm in scores:
        path = workdir / f".candidate-{algorithm}.onnx"
        if algorithm == chosen:
            path.replace(workdir / "model.int8.qdq.onnx")
        else:
            path.unlink()
    return {"chosen": chosen, "int8_ap": scores, "images": len(ids)}, reports[chosen]
