#!/usr/bin/env python3
"""How much of the INT8 artifact is really INT8: MAC shares per precision, read from the graph.

For the shipped reference model and an r18vd-shaped model (random weights), the bundle's INT8
artifacts are inspected as TensorRT would get them, without reading the bundle's own plan file:

* each Conv / ConvTranspose / MatMul / Gemm's precision from the graph alone
  (:func:`calib.plan.graph_precisions`: INT8 where both data inputs are dequantized, else the
  element type of its input, which a strongly typed TensorRT network keeps);
* its MACs from the tensor shapes ONNX Runtime computes running that graph (:func:`node_macs`);
* Q/DQ wiring faults (:func:`calib.qdq.wiring_faults`).

Baseline in the same run: ``model.int8.qdq.trt8.onnx``, the same Q/DQ FP32-typed (what every
TensorRT version got before: built strongly typed, its float layers run FP32). Targets: the
INT8 artifact >= 85% of MACs in INT8, <= 3% in FP32, zero wiring faults; the plan file agrees.

    python benchmarks/int8_plan.py [--r18-calib-images 16]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import onnx

from rtdetr_edge.bundle import Bundle
from rtdetr_edge.calib.plan import PrecisionPlan, graph_precisions, mac_shares, node_macs
from rtdetr_edge.calib.qdq import wiring_faults

from _common import CACHE, CALIB_SEED, r18_model_and_bundle, reference_bundle, shapes_set, table, write_json

MIN_INT8, MAX_FP32 = 0.85, 0.03


def measure(bundle_dir: Path, file: str) -> dict[str, Any]:
    bundle = Bundle(bundle_dir)
    pre = bundle.contract.preprocessing
    path = bundle_dir / file
    model = onnx.load(str(path))
    precisions = graph_precisions(model)
    macs = node_macs(path, (pre.height, pre.width))
    shares = mac_shares(precisions, macs)
    return {
        "file": file,
        "image_size": [pre.height, pre.width],
        "gmacs": round(sum(macs.values()) / 1e9, 4),
        "compute_nodes": len(precisions),
        "nodes_by_precision": {p: sum(v == p for v in precisions.values()) for p in ("int8", "fp16", "fp32")},
        "mac_shares": {k: round(v, 4) for k, v in shares.items()},
        "wiring_faults": wiring_faults(model),
    }


def r18_int8_bundle(calib_images: int) -> Path:
    """The r18vd-shaped model with INT8 added (calibrated on generated 640x640-scale scenes)."""
    from rtdetr_edge.build import BuildOptions, add_precisions
    from rtdetr_edge.calib import CalibrationOptions

    _, fp32 = r18_model_and_bundle()
    out = CACHE / "r18vd-random-int8"
    if not (out / "metadata.json").is_file():
        calib = shapes_set("shapes-calib-r18", calib_images + 4, CALIB_SEED)
        add_precisions(
            fp32,
            out,
            BuildOptions(
                precision="int8",
                force=True,
                check_images=0,
                calibration=CalibrationOptions(calib=str(calib), size=calib_images, cache_dir=None),
            ),
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--r18-calib-images", type=int, default=16)
    args = ap.parse_args()
    bundles = {
        "reference (rtdetr-shapes)": reference_bundle(shapes_set("shapes-calib", 600, CALIB_SEED)),
        "r18vd-shaped (random)": r18_int8_bundle(args.r18_calib_images),
    }
    results: dict[str, Any] = {}
    rows = []
    checks: dict[str, bool] = {}
    for name, bundle_dir in bundles.items():
        art = Bundle(bundle_dir).artifact("int8")
        plan = PrecisionPlan.load(bundle_dir / art["plan"])
        strong = measure(bundle_dir, art["file"])
        weak = measure(bundle_dir, art["trt8_file"])
        strong["plan_mac_shares"] = {k: round(v, 4) for k, v in plan.shares().items()}
        results[name] = {"int8_artifact": strong, "baseline_fp32_typed": weak}
        for label, m in (("int8 artifact", strong), ("baseline: FP32-typed Q/DQ", weak)):
            s = m["mac_shares"]
            rows.append([name, label, m["file"], m["gmacs"], s["int8"], s["fp16"], s["fp32"], len(m["wiring_faults"])])
        key = name.split(" ")[0]
        checks[f"{key}_int8_ge_{MIN_INT8}"] = strong["mac_shares"]["int8"] >= MIN_INT8
        checks[f"{key}_fp32_le_{MAX_FP32}"] = strong["mac_shares"]["fp32"] <= MAX_FP32
        checks[f"{key}_no_wiring_faults"] = not strong["wiring_faults"]
        checks[f"{key}_plan_agrees"] = all(
            abs(strong["plan_mac_shares"][p] - strong["mac_shares"][p]) < 1e-3 for p in ("int8", "fp16", "fp32")
        )
    print("MAC shares per precision of the INT8 graphs (precision from the graph, MACs from ONNX Runtime shapes)")
    print(table(["model", "graph", "file", "GMAC", "int8", "fp16", "fp32", "wiring faults"], rows))
    print("checks:", checks)
    path = write_json("int8_plan.json", {"results": results, "checks": checks})
    print(f"wrote {path}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
