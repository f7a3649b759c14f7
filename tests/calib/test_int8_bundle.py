"""A bundle with an INT8 artifact: native caches, a TensorRT-shaped Q/DQ model, every precision
detects, and INT8 can be added without torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx

from rtdetr_edge.bundle import Bundle
from rtdetr_edge.ranges import CalibrationRanges


def test_int8_bundle_holds_native_caches_for_onnx_names(best_bundle: Path) -> None:
    b = Bundle(best_bundle, verify_hashes=True)
    assert b.precisions == ["fp32", "fp16", "int8"]
    # random weights: INT8 disagrees with fp32 and fails its check, so the bundle defaults to FP16
    report = json.loads((best_bundle / "report.json").read_text())
    assert not report["check"]["int8"]["passed"] and b.metadata["default_precision"] == "fp16"
    assert report["default_precision"]["reason"].startswith("int8 not kept: check: ")
    art = b.artifact("int8")
    ranges = CalibrationRanges.load(b.file(art["ranges"]))
    text = b.file(art["tensorrt_caches"]["10.3.0"]).read_text()
    lines = text.splitlines()
    assert lines[0] == "TRT-100300-EntropyCalibration2"
    assert len(lines) - 1 == len(ranges.ranges)
    names = [ln.rsplit(": ", 1)[0] for ln in lines[1:]]
    assert names[0] == "images"
    model = onnx.load(str(b.onnx_path("fp32")))
    values = {o for n in model.graph.node for o in n.output} | {i.name for i in model.graph.input}
    weights = {t.name for t in model.graph.initializer}  # MatMul weights: constant tensors in TensorRT
    assert set(names) <= values | weights and set(names) & weights
    assert b.file(art["tensorrt_caches"]["8.6.2"]).read_text().startswith("TRT-8602-EntropyCalibration2\n")
    manifest = json.loads(b.file(art["manifest"]).read_text())
    assert manifest["size"] == 8 and manifest["sha256"] == ranges.manifest_sha256
    # --calib-algorithm auto: 12 images = 8 calibration + 4 for the accuracy check, none left to choose on
    choice = json.loads((best_bundle / "report.json").read_text())["calibration"]["algorithm_choice"]
    assert choice["chosen"] == ranges.algorithm == "entropy2" and "no held-out images left" in choice["reason"]
    assert manifest["decision_images"] == []


def test_qdq_model_is_tensorrt_shaped(best_bundle: Path) -> None:
    b = Bundle(best_bundle)
    q = onnx.load(str(b.onnx_path("int8")))
    zps = [onnx.numpy_helper.to_array(t) for t in q.graph.initializer if t.name.endswith("zero_point")]
    assert zps and all(z.dtype == np.int8 and not z.any() for z in zps)
    consumers: dict[str, list[str]] = {}
    for n in q.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n.op_type)
    dq_targets = {op for n in q.graph.node if n.op_type == "DequantizeLinear" for op in consumers.get(n.output[0], [])}
    assert dq_targets <= {"Conv", "MatMul", "Gemm"}
    from rtdetr_edge.calib.plan import PrecisionPlan, graph_precisions
    from rtdetr_edge.calib.qdq import wiring_faults

    assert wiring_faults(q) == []
    # FP16-typed outside INT8 (strongly typed TensorRT keeps these types), and as planned
    realised = graph_precisions(q)
    plan = PrecisionPlan.load(b.file(b.artifact("int8")["plan"]))
    planned = {e.node: e.precision for e in plan.entries if e.node in realised}
    assert set(realised.values()) == {"int8", "fp16"} and realised == planned
    assert {o.domain: o.version for o in q.opset_import}.get("", 0) >= 19
    weak = onnx.load(str(b.file(b.artifact("int8")["trt8_file"])))
    assert {k: v for k, v in graph_precisions(weak).items() if v == "int8"} == {
        k: v for k, v in realised.items() if v == "int8"
    }
    excluded = b.artifact("int8")["excluded_nodes"]
    assert any("class_embed" in n for n in excluded) and any("sampling_offsets" in n for n in excluded)
    assert b.metadata["accuracy"].get("skipped")  # the tiny model's classes are not the data's


def test_every_precision_detects(best_bundle: Path, scene: np.ndarray) -> None:
    from rtdetr_edge import Detector

    for precision in ("fp32", "fp16", "int8"):
        with Detector(best_bundle, precision=precision, conf=0.0, max_det=5) as det:
            assert len(det(scene)) == 5


def test_adding_int8_to_an_existing_bundle_needs_no_torch(tiny_bundle: Path, shapes_data: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'transformers'): raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from rtdetr_edge.build import BuildOptions, add_precisions\n"
        "from rtdetr_edge.calib import CalibrationOptions\n"
        "add_precisions(sys.argv[1], sys.argv[2], BuildOptions(precision='int8', check_images=0,"
        " calibration=CalibrationOptions(sys.argv[3], size=6, cache_dir=None)))\n"
        "assert 'torch' not in sys.modules\n"
    )
    out = tmp_path / "with_int8"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tiny_bundle), str(out), str(shapes_data)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert Bundle(out).precisions == ["fp32", "fp16", "int8"]


def test_build_prints_the_plan_and_why_of_the_default(best_bundle: Path) -> None:
    from rtdetr_edge.cli.build import bundle_summary

    text = bundle_summary(best_bundle)
    lines = text.splitlines()
    assert lines[0].startswith("model.int8.qdq.onnx: precision plan: ") and "int8 " in lines[0]
    assert any(ln.split()[:1] == ["int8"] and "calibrated" in ln for ln in lines)
    assert any(ln.split()[:1] == ["fp16"] and "score heads" in ln for ln in lines)
    assert any(ln.split()[:1] == ["fp32"] and "LayerNormalization" in ln for ln in lines)
    assert lines[-2].startswith("default precision: fp16 (int8 not kept: check: ")
    # the summary: each precision's AP on the held-out report images and its check
    start = lines.index(next(ln for ln in lines if ln.startswith("summary of ")))
    rows = {ln.split()[0]: ln for ln in lines[start + 1 :] if ".onnx" in ln}
    assert set(rows) == {"fp32", "fp16", "int8"}
    assert "check FAILED" in rows["int8"] and "check passed" in rows["fp16"]
    # this tiny model's class names are not the data's: the summary says why there is no AP
    assert any(ln.startswith("  no AP: ") and "match the model's class names" in ln for ln in lines)
