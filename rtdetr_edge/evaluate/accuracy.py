"""The build's accuracy table: COCO AP of each precision's ONNX on held-out images."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..data.coco import CocoDataset, label_to_category
from ..errors import InputError
from .runner import evaluate_onnx

log = logging.getLogger("rtdetr_edge")


def artifact_accuracy(
    bundle_dir: Path,
    artifacts: dict[str, Any],
    dataset: CocoDataset,
    image_ids: list[int],
    class_names: tuple[str, ...],
) -> dict[str, Any]:
    """AP of every ONNX artifact of a bundle on ``image_ids`` (held out from calibration), vs fp32."""

    out: dict[str, Any] = {"images": len(image_ids), "data": str(dataset.path)}
    try:
        label_to_category(class_names, dataset)
    except InputError as exc:  # calibration data need not share the model's classes; AP then means nothing
        log.warning("accuracy check skipped: %s", exc)
        return {**out, "skipped": str(exc)}
    for precision, art in artifacts.items():
        m = evaluate_onnx(bundle_dir / art["file"], dataset, image_ids)
        out[precision] = {k: round(float(m[k]), 4) for k in ("AP", "AP50", "AP75", "APs", "APm", "APl")}
        out[precision]["per_class"] = {name: round(float(v), 4) for name, v in m["per_class"].items()}
    if "fp32" in out:
        base = out["fp32"]["AP"]
        for precision in artifacts:
            if precision != "fp32" and base > 0:
                out[precision]["AP_vs_fp32"] = round(out[precision]["AP"] / base, 4)
    log.info(
        "accuracy on %d held-out images: %s",
        len(image_ids),
        ", ".join(f"{p} AP {v['AP']:.3f}" for p, v in out.items() if isinstance(v, dict)),
    )
    return out
