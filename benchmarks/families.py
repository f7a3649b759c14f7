#!/usr/bin/env python3
"""Every supported family through the pipeline on its tiny random config: export, verify, FP16, INT8.

Per family (``export.source.FAMILIES``; ``export.testing.tiny_family_config`` at 64x64, 5 classes,
30 queries, fan-in random weights): export time, node counts, the largest ONNX Runtime vs
PyTorch differences at batch 1 and at batch 4 (top-k scores and boxes), the op types the graph
uses beyond RT-DETR's own graph (what a TensorRT parser must take besides), and how well the
FP16 and INT8 (Q/DQ, calibrated on generated images) artifacts agree with the fp32 graph on
the verification images (top-k detections above score 0.3 matched as sets: label agreement and
largest score / box difference). The baseline in the same run is RT-DETR itself.

Random tiny models say nothing about trained accuracy; they show the graph computes the same
thing in every precision and where it does not.

    python benchmarks/families.py [--families d_fine,deimv2] [--calib-images 16]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from rtdetr_edge.build import BuildOptions, build_bundle
from rtdetr_edge.bundle import Bundle
from rtdetr_edge.calib import CalibrationOptions
from rtdetr_edge.export import testing
from rtdetr_edge.export.options import ExportOptions
from rtdetr_edge.export.source import FAMILIES, load_model
from rtdetr_edge.export.verify import verification_images, verify
from rtdetr_edge.matching import match_topk, merge
from rtdetr_edge.preprocess import Preprocessor

from _common import CALIB_SEED, shapes_set, table, write_json

SIZE = 64
CONF = 0.3


def _session(path: Path) -> Any:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def agreement(ref: list[np.ndarray], cand: list[np.ndarray]) -> dict[str, float]:
    """Candidate top-k vs fp32 top-k, per image, detections above CONF in the reference."""
    matches = []
    for i in range(ref[0].shape[0]):
        keep = ref[0][i] > CONF
        r = (ref[0][i][keep], ref[1][i][keep], ref[2][i][keep])
        matches.append(match_topk(r, (cand[0][i], cand[1][i], cand[2][i]), tail_margin=-1.0, gate=0.1))
    m = merge(matches)
    return {
        "compared": m.compared,
        "label_agreement": round(m.label_agreement, 4),
        "max_abs_score": m.max_abs_score,
        "max_abs_box": m.max_abs_box,
    }


def measure(model_type: str, work: Path, calib: Path, calib_images: int, base_ops: set[str] | None) -> dict[str, Any]:
    folder = testing.save_model_folder(
        testing.random_model(testing.tiny_family_config(model_type), seed=0), work / model_type, (SIZE, SIZE)
    )
    t0 = time.perf_counter()
    out = build_bundle(
        folder,
        work / f"{model_type}-bundle",
        BuildOptions(
            precision="best",
            check_images=4,
            export=ExportOptions(top_k=40),
            calibration=CalibrationOptions(calib=str(calib), size=calib_images, cache_dir=None),
        ),
    )
    build_s = time.perf_counter() - t0
    bundle = Bundle(out)
    report = json.loads((out / "report.json").read_text())
    graph = onnx.load(str(bundle.onnx_path()))
    loaded = load_model(folder)
    per_batch = {}
    for bs in (1, 4):
        v = verify(loaded.model, graph.SerializeToString(), bundle.contract, batch_sizes=(bs,), raise_on_fail=False)
        per_batch[f"b{bs}"] = {"max_abs_score": v.max_abs_score, "max_abs_box": v.max_abs_box, "passed": v.passed}
    pixels, _ = Preprocessor(bundle.contract.preprocessing).batch(verification_images(8))
    meta = bundle.metadata
    fp32 = _session(bundle.onnx_path()).run(None, {"images": pixels})
    prec: dict[str, Any] = {}
    for name in ("fp16", "int8"):
        art = meta["artifacts"].get(name)
        if art is None:
            continue
        prec[name] = agreement(fp32, _session(out / art["file"]).run(None, {"images": pixels}))
    plan = meta["artifacts"].get("int8", {})
    ops = {n.op_type for n in graph.graph.node}
    return {
        "model_type": model_type,
        "family": FAMILIES[model_type].name,
        "build_s": round(build_s, 1),
        "export_s": report["export"]["timings_s"].get("export"),
        "node_counts": report["export"]["node_counts"],
        "verification": per_batch,
        "new_ops_vs_rt_detr": sorted(ops - base_ops) if base_ops is not None else [],
        "ops": sorted(ops),
        "fp16_kept_fp32": report.get("fp16", {}).get("kept_fp32"),
        "fp16_rules": report.get("fp16", {}).get("fp32_rules"),
        "int8_mac_shares": plan.get("mac_shares"),
        "int8_excluded": len(plan.get("excluded_nodes", [])),
        "agreement": prec,
        "default_precision": meta.get("default_precision"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default=",".join(FAMILIES), help="comma-separated model types (default: all)")
    ap.add_argument("--calib-images", type=int, default=16)
    args = ap.parse_args()
    calib = shapes_set("calib-families", args.calib_images + 8, CALIB_SEED)
    wanted = [f for f in args.families.split(",") if f]
    order = ["rt_detr"] + [f for f in wanted if f != "rt_detr"]
    rows, results = [], []
    base_ops = None
    with tempfile.TemporaryDirectory(prefix="rtdetr-families-") as tmp:
        for mt in order:
            r = measure(mt, Path(tmp), calib, args.calib_images, base_ops)
            if mt == "rt_detr":
                base_ops = set(r["ops"])
            results.append(r)
            a16, a8 = r["agreement"].get("fp16", {}), r["agreement"].get("int8", {})
            rows.append(
                [
                    r["family"],
                    r["export_s"],
                    r["node_counts"]["final"],
                    f"{r['verification']['b1']['max_abs_score']:.1e}/{r['verification']['b1']['max_abs_box']:.1e}",
                    f"{r['verification']['b4']['max_abs_score']:.1e}/{r['verification']['b4']['max_abs_box']:.1e}",
                    f"{a16.get('label_agreement', '-')} {a16.get('max_abs_score', 0):.1e}/{a16.get('max_abs_box', 0):.1e}",
                    f"{a8.get('label_agreement', '-')} {a8.get('max_abs_score', 0):.1e}/{a8.get('max_abs_box', 0):.1e}",
                    (r["int8_mac_shares"] or {}).get("int8", "-"),
                    " ".join(r["new_ops_vs_rt_detr"]) or "-",
                ]
            )
    print(
        table(
            [
                "family",
                "export s",
                "nodes",
                "b1 |ds|/|db|",
                "b4 |ds|/|db|",
                "fp16 labels |ds|/|db|",
                "int8 labels |ds|/|db|",
                "int8 MAC",
                "ops beyond RT-DETR",
            ],
            rows,
        )
    )
    path = write_json("families.json", {"image_size": SIZE, "conf": CONF, "families": results})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
