#!/usr/bin/env python3
"""Which TensorRT lines' ONNX parsers take each family's graphs: the build's static op check, per artifact.

Per family (``export.source.FAMILIES`` plus DEIMv2 with its DINOv3 backbone; the tiny random
configs of ``export.testing`` at 64x64): ``rtdetr-build --precision int8`` (fp32, fp16, int8 Q/DQ
for TensorRT 10 and its FP32-typed sibling for 8.x, calibrated on 8 generated images, no
accuracy check) with a 128x96 frame-input artifact per graph (RF-DETR's processor resizes without antialias, so
the build refuses its frame front: built without, the refusal recorded), then the ``tensorrt_ops`` the build
recorded in ``report.json`` (:mod:`rtdetr_edge.export.trt_ops`: onnx/onnx-tensorrt ``docs/operators.md``
at release/8.6-GA and release/10.1-GA). The table lists, per family and TensorRT line, how many
graphs were checked and their faults; also the op types each family uses beyond RT-DETR's graph
(the baseline in the same run) and those in only one line's matrix.

A static check against the parser's documented op matrix, not a TensorRT parse: no TensorRT here.

    python benchmarks/trt_ops.py [--families d_fine,lw_detr] [--fp32-only]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import onnx

from rtdetr_edge.build import BuildOptions, build_bundle
from rtdetr_edge.calib import CalibrationOptions
from rtdetr_edge.errors import InputError
from rtdetr_edge.export import testing
from rtdetr_edge.export.options import ExportOptions
from rtdetr_edge.export.source import FAMILIES
from rtdetr_edge.export.trt_ops import SOURCE, SUPPORTED_OPS, TENSORRT_LINES

from _common import CALIB_SEED, shapes_set, table, write_json

ALL = ("rt_detr", *(m for m in FAMILIES if m != "rt_detr"), "deimv2_dinov3")


def config(model_type: str) -> Any:
    if model_type == "deimv2_dinov3":
        return testing.tiny_deimv2_dinov3_config()
    return testing.tiny_family_config(model_type)


def _options(int8: bool, frame_sizes: tuple[tuple[int, int], ...]) -> BuildOptions:
    calibration = CalibrationOptions(calib=str(shapes_set("shapes-calib", 8, CALIB_SEED)), size=8, cache_dir=None)
    return BuildOptions(
        precision="int8" if int8 else "fp32",
        export=ExportOptions(top_k=40),
        calibration=calibration if int8 else None,
        check_images=0,
        frame_sizes=frame_sizes,
    )


def check_family(model_type: str, work: Path, int8: bool) -> dict[str, Any]:
    folder = testing.save_model_folder(
        testing.random_model(config(model_type), seed=0), work / model_type / "model", image_size=(64, 64)
    )
    frames_refused = None
    t0 = time.perf_counter()
    try:
        bundle = build_bundle(folder, work / model_type / "bundle", _options(int8, ((128, 96),)))
    except InputError as e:  # RF-DETR: its processor does not antialias, the frame front refuses it
        frames_refused = str(e)
        bundle = build_bundle(folder, work / model_type / "bundle", _options(int8, ()))
    seconds = time.perf_counter() - t0
    checks: dict[str, dict[str, list[str]]] = json.loads((bundle / "report.json").read_text())["tensorrt_ops"]
    model = onnx.load(str(bundle / "model.onnx"), load_external_data=False)
    ops = sorted({n.op_type for n in model.graph.node})
    lines = {
        line: {
            "graphs": sorted(name for name, per in checks.items() if line in per),
            "faults": {name: per[line] for name, per in checks.items() if per.get(line)},
        }
        for line in TENSORRT_LINES
    }
    return {
        "frames_refused": frames_refused,
        "build_s": round(seconds, 1),
        "nodes": len(model.graph.node),
        "ops": ops,
        "checks": checks,
        "lines": lines,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", default=",".join(ALL), help="comma-separated model types")
    parser.add_argument("--fp32-only", action="store_true", help="fp32 graphs only (no fp16/int8: faster)")
    args = parser.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model_type in families:
            results[model_type] = check_family(model_type, Path(tmp), int8=not args.fp32_only)
            print(f"{model_type}: built in {results[model_type]['build_s']} s", file=sys.stderr)
    base = set(results["rt_detr"]["ops"]) if "rt_detr" in results else set()
    only_10 = SUPPORTED_OPS["10"] - SUPPORTED_OPS["8.6"]
    rows = []
    for model_type, r in results.items():
        for line in TENSORRT_LINES:
            faults = [f"{name}: {f}" for name, fs in r["lines"][line]["faults"].items() for f in fs]
            rows.append(
                [
                    model_type,
                    line,
                    len(r["lines"][line]["graphs"]),
                    len(faults),
                    " ".join(sorted(set(r["ops"]) - base)) or "-",
                    " ".join(sorted(set(r["ops"]) & only_10)) or "-",
                    "; ".join(faults) or "none",
                ]
            )
    print(table(["family", "TensorRT", "graphs", "faults", "ops beyond RT-DETR", "10-only ops", "fault lines"], rows))
    path = write_json(
        "trt_ops.json",
        {
            "what": "static TensorRT ONNX-parser op check (rtdetr_edge.export.trt_ops) of every ONNX artifact rtdetr-build "
            "writes, per family's tiny random model; not a TensorRT parse",
            "source": SOURCE,
            "precisions": "fp32" if args.fp32_only else "fp32, fp16, int8 (Q/DQ + TensorRT 8.x sibling)",
            "frame_sizes": ["128x96"],
            "baseline": "rt_detr",
            "families": results,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
