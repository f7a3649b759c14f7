"""rtdetr-check's verdicts: Polygraphy comparisons of a bundle's precisions against fp32 (CPU, tiny models).

The TensorRT-runner path is GPU-marked."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.check.perturb import perturbed_copy

pytest.importorskip("polygraphy")
pytest.importorskip("faster_coco_eval")

from rtdetr_edge._optional import tensorrt_available
from rtdetr_edge.check import DEFAULT_TOLERANCES, CheckOptions, check_bundle_dir, run_check, run_checks
from rtdetr_edge.check.detections import DEFAULT_THRESHOLDS
from rtdetr_edge.check.models import PRED_BOXES, PROBS, SCORES


def test_fp32_against_itself_passes_exactly(tiny_bundle: Path) -> None:
    report = run_check(tiny_bundle, "fp32", CheckOptions(num_images=3))
    assert report.passed, report.format()
    assert set(report.tensors.outputs) == {PROBS, PRED_BOXES, SCORES}
    assert all(o.max_abs == 0.0 for o in report.tensors.outputs.values())
    d = report.detections
    assert d.reference_detections > 0 and d.ap == pytest.approx(1.0) and d.mean_iou == pytest.approx(1.0)
    assert d.label_flips == d.missed == d.extra == 0 and d.score_drift_max == 0.0
    assert report.data["kind"] == "synthetic" and "no calibration source" in report.data["description"]
    json.dumps(report.to_dict())  # JSON-able


def test_fp16_passes_and_int8_of_the_random_tiny_model_fails(best_bundle: Path, shapes_data: Path) -> None:
    """FP16 keeps the sensitive nodes in fp32: near-identical outputs, PASS. The random tiny model's
    class scores are near ties, so INT8 rounding changes which queries it selects: its foreground
    rows lose their counterparts and boxes move, far outside the INT8 thresholds, FAIL at both the
    tensor and the detection level (the build's own check says so too)."""
    reports = run_checks(best_bundle, None, CheckOptions(data=str(shapes_data)))
    assert [r.candidate.label for r in reports] == ["fp16", "int8"]
    for r in reports:
        assert r.data["images"] == 4 and r.data["excluded_calibration"] == 8, r.data
        for name in (PROBS, PRED_BOXES, SCORES):
            o = r.tensors.outputs[name]
            assert np.isfinite(o.max_abs) and o.max_abs > 0, (name, o)
        d = r.detections
        assert d.ap is not None and 0 <= d.ap <= 1 and d.mean_iou is not None and d.score_drift_mean is not None
        assert d.reference_detections > 0
        text = r.format()
        assert "post/probs" in text and "AP " in text
        verdict = "  PASS" if r.passed else "  FAIL: " + "; ".join(r.failures)
        assert text.splitlines()[-1] == verdict, text
    fp16, int8 = reports
    assert (
        fp16.candidate.precision == "fp16"
        and fp16.tensors.outputs[PROBS].tolerance == DEFAULT_TOLERANCES["fp16"][PROBS]
    )
    assert fp16.passed and not fp16.failures, fp16.format()
    f = fp16.detections
    assert f.ap is not None and f.ap >= DEFAULT_THRESHOLDS["fp16"].min_ap
    assert f.mean_iou is not None and f.mean_iou >= DEFAULT_THRESHOLDS["fp16"].min_mean_iou
    assert f.label_flips == f.missed == f.extra == 0
    assert int8.candidate.precision == "int8" and not int8.passed, int8.format()
    assert int8.tensors.foreground_rows > 0 and not int8.tensors.outputs[PRED_BOXES].passed, int8.format()
    assert int8.tensors.unmatched_fraction > int8.tensors.max_unmatched, int8.format()
    i = int8.detections
    assert not i.passed and i.ap is not None and i.ap < DEFAULT_THRESHOLDS["int8"].min_ap, int8.format()
    assert any(failure.startswith("AP ") for failure in int8.failures), int8.failures
    built = json.loads((best_bundle / "report.json").read_text())["check"]
    assert (built["fp16"]["passed"], built["int8"]["passed"], built["passed"]) == (True, False, False)


def test_perturbed_backbone_conv_fails_and_layerwise_names_it(tiny_bundle: Path, tmp_path: Path) -> None:
    bad = tmp_path / "perturbed.onnx"
    conv = perturbed_copy(tiny_bundle / "model.onnx", bad)
    report = run_check(
        tiny_bundle, str(bad), CheckOptions(num_images=3, layerwise=True, save_outputs=str(tmp_path / "o"))
    )
    assert not report.passed
    assert report.candidate.precision == "fp32"  # read from the graph: no Q/DQ, no float16
    assert any(f.startswith("post/probs: max |d|") for f in report.failures), report.failures
    lw = report.layerwise
    assert lw is not None and lw.first, report.format()
    assert lw.first[0].node == conv, (lw.first[0], conv)
    assert all(d.position >= lw.first[0].position for d in lw.first)
    text = report.format()
    assert f"first {conv} [Conv]" in text and "FAIL: post/probs" in text
    assert "polygraphy run" in text and "--onnx-outputs mark all" in text
    assert str(tmp_path / "o" / "inputs.json") in text
    assert Path(report.saved["layerwise"]).is_file()


def test_run_results_json_loads_back_in_polygraphy(tiny_bundle: Path, tmp_path: Path) -> None:
    from polygraphy.comparator import RunResults
    from polygraphy.json import load_json

    report = run_check(tiny_bundle, "fp32", CheckOptions(num_images=2, save_outputs=str(tmp_path)))
    results = RunResults.load(report.saved["outputs"])
    names = [name for name, _ in results.items()]
    assert names == ["reference:onnxrt-fp32", "candidate:onnxrt-fp32"]
    first = results["reference:onnxrt-fp32"][0]
    assert {PROBS, PRED_BOXES, "scores", "labels", "boxes"} <= set(first.keys())
    assert len(results["candidate:onnxrt-fp32"]) == 2
    feeds = load_json(report.saved["inputs"])
    assert len(feeds) == 2 and feeds[0]["images"].shape == (1, 3, 64, 64)


def test_saved_run_results_are_what_polygraphy_inspect_data_reads(tiny_bundle: Path, tmp_path: Path) -> None:
    tool = shutil.which("polygraphy")
    if tool is None:
        pytest.skip("the polygraphy command is not on PATH")
    report = run_check(tiny_bundle, "fp32", CheckOptions(num_images=2, save_outputs=str(tmp_path)))
    proc = subprocess.run(
        [tool, "inspect", "data", report.saved["outputs"]], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "post/probs" in proc.stdout, proc.stderr


def test_build_time_check_records_each_precisions_verdict(best_bundle: Path, shapes_data: Path) -> None:
    metadata = json.loads((best_bundle / "metadata.json").read_text())
    out = check_bundle_dir(best_bundle, metadata, ["fp32", "fp16", "int8"], data=str(shapes_data), num_images=4)
    json.dumps(out)
    assert set(out) == {"passed", "images", "data", "fp16", "int8"} and out["images"] == 4
    # the verdicts of test_fp16_passes_and_int8_of_the_random_tiny_model_fails, on the same images
    assert (out["fp16"]["passed"], out["int8"]["passed"], out["passed"]) == (True, False, False)
    assert out["data"]["images"] == 4 and out["fp16"]["tensors"]["outputs"]["post/probs"]["max_abs"] > 0
    assert check_bundle_dir(best_bundle, metadata, ["fp32"]) == {"skipped": "no fp16 or int8 artifact to check"}
    skipped = check_bundle_dir(best_bundle, metadata, ["fp16"], data=str(shapes_data.parent / "nope"))
    assert "--data" in skipped["skipped"]


@pytest.mark.gpu
def test_gpu_tensorrt_candidate_through_polygraphy(best_bundle: Path, shapes_data: Path) -> None:
    if not tensorrt_available():
        pytest.skip("TensorRT is not installed")
    fp32 = run_check(best_bundle, "fp32", CheckOptions(runner="tensorrt", data=str(shapes_data)))
    assert fp32.candidate.runner == "tensorrt" and fp32.candidate.name == "candidate:trt-fp32"
    assert set(fp32.tensors.outputs) == {PROBS, PRED_BOXES, SCORES}
    assert fp32.detections.ap is not None
    fp16 = run_check(best_bundle, "fp16", CheckOptions(runner="tensorrt", data=str(shapes_data)))
    assert fp16.tensors.outputs[PROBS].max_abs < 0.05, fp16.format()
