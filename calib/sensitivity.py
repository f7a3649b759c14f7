"""Mixed precision by measurement: keep the layer groups that hurt INT8 accuracy most in float.

Layer groups are coarse (backbone stages, encoder blocks, decoder layers, heads; see
:func:`~rtdetr_edge.calib.qdq.layer_group`). Each group is scored by the AP it gains back when it
alone stays in float; then groups are kept in float, best gain first, until the INT8 model
reaches ``target`` x fp32 AP on held-out images (disjoint from the calibration subset). The
decisions and every measurement are returned for the bundle's report.
"""

from __future__ import annotations

import logging
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import onnx

from rtdetr_edge.data.coco import CocoDataset

from .int8 import write_int8
from .qdq import layer_group, quantizable_nodes

log = logging.getLogger("rtdetr_edge")


def average_precision(model_path: Path, dataset: CocoDataset, image_ids: list[int]) -> float:
    """COCO AP of an ONNX model on ``image_ids`` of ``dataset`` (ONNX Runtime, no progress bar)."""
    from rtdetr_edge.evaluate.runner import evaluate_onnx

    return float(evaluate_onnx(model_path, dataset, image_ids)["AP"])


def sensitivity_search(
    fp32_path: str | Path,
    ranges: dict[str, float],
    dataset: CocoDataset,
    image_ids: list[int],
    base_exclude: list[str],
    target: float = 0.99,
    fp32_ap: float | None = None,
    max_rounds: int = 6,
) -> tuple[list[str], dict[str, Any]]:
    """Find node exclusions that bring INT8 AP to ``target`` x fp32 AP.

    Args:
        fp32_path: fp32 ONNX.
        ranges: calibrated ranges.
        dataset, image_ids: held-out evaluation images (not used for calibration).
        base_exclude: nodes excluded by default (always kept in float).
        target: required fraction of fp32 AP (0.99).
        fp32_ap: fp32 AP on the same images, if already measured.
        max_rounds: at most this many groups are moved to float.

    Returns:
        (nodes to exclude, report with per-group measurements and decisions)
    """
    fp32_path = Path(fp32_path)
    model = onnx.load(str(fp32_path), load_external_data=False)
    groups: dict[str, list[str]] = defaultdict(list)
    for node in quantizable_nodes(model):
        if node.name not in base_exclude:
            groups[layer_group(node.name)].append(node.name)
    base_ap = fp32_ap if fp32_ap is not None else average_precision(fp32_path, dataset, image_ids)
    goal = target * base_ap
    with tempfile.TemporaryDirectory(prefix="rtdetr-sensitivity-") as tmp:

        def int8_ap(exclude: list[str], tag: str) -> float:
            out = Path(tmp) / f"{tag}.onnx"
            write_int8(fp32_path, ranges, out, exclude)
            return average_precision(out, dataset, image_ids)

        full = int8_ap(list(base_exclude), "all")
        report: dict[str, Any] = {
            "fp32_ap": base_ap,
            "target": target,
            "int8_ap_default": full,
            "groups": {},
            "kept_in_float": [],
            "images": len(image_ids),
        }
        log.info("sensitivity: fp32 AP %.4f, INT8 AP %.4f (goal %.4f)", base_ap, full, goal)
        if full >= goal:
            report["int8_ap_final"] = full
            return list(base_exclude), report
        gains = {}
        for name, nodes in sorted(groups.items()):
            ap = int8_ap(list(base_exclude) + nodes, name.replace("/", "_"))
            gains[name] = ap - full
            report["groups"][name] = {"nodes": len(nodes), "int8_ap_with_group_in_float": ap}
            log.info("sensitivity: %-28s in float -> AP %.4f (%+.4f)", name, ap, ap - full)
        exclude, current = list(base_exclude), full
        for name in sorted(gains, key=lambda g: -gains[g])[:max_rounds]:
            if current >= goal or gains[name] <= 0:
                break
            exclude += groups[name]
            current = int8_ap(exclude, f"keep_{len(report['kept_in_float'])}")
            report["kept_in_float"].append({"group": name, "int8_ap": current})
        report["int8_ap_final"] = current
        report["target_met"] = current >= goal
    return exclude, report
