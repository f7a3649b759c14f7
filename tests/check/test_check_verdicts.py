"""rtdetr-check: Polygraphy comparisons of a bundle's precisions against fp32 (CPU, tiny models).

The TensorRT-runner path is GPU-marked. Tests on the shipped reference model (``reference_*``)
skip while ``models/rtdetr-shapes`` does not exist.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import run_cli

pytest.importorskip("polygraphy")
pytest.importorskip("faster_coco_eval")

from rtdetr_edge._optional import tensorrt_available  # noqa: E402
from rtdetr_edge.check import CheckOptions, check_bundle_dir, run_check, run_checks  # noqa: E402
from rtdetr_edge.check.compare import parse_tolerance_args, tolerances_for  # noqa: E402
from rtdetr_edge.check.data import CheckDataLoader, resolve_images  # noqa: E402
from rtdetr_edge.check.detections import DEFAULT_THRESHOLDS, agreement  # noqa: E402
from rtdetr_edge.check.models import PRED_BOXES, PROBS, SCORES, BundleFiles  # noqa: E402
from rtdetr_edge.check.queries import align_queries, align_rows  # noqa: E402
from rtdetr_edge.cli.check import main as check_main  # noqa: E402
from rtdetr_edge.detections import Detections  # noqa: E402
from rtdetr_edge.errors import RtdetrEdgeError  # noqa: E402


@pytest.fixture(scope="module")
def best_bundle(tiny_model_dir: Path, shapes_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fp32 + fp16 + int8 (Q/DQ) of the tiny model, calibrated on 8 of the 12 shapes images."""
    from rtdetr_edge.build import BuildOptions, build

    return build(tiny_model_dir, tmp_path_factory.mktemp("check") / "best",
                 BuildOptions(precision="best", calib=str(shapes_data), calib_size=8,
                              no_calib_cache=True, check_images=0, top_k=50))


def perturbed_copy(fp32: Path, out: Path, stage: str = "stages.1", scale: float = 0.5) -> str:
    """Copy of ``fp32`` with noise added to the weights of the first backbone Conv in ``stage``."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(fp32))
    inits = {t.name: t for t in model.graph.initializer}
    conv = next(n for n in model.graph.node if n.op_type == "Conv" and "/backbone/" in n.name and stage in n.name
                and n.input[1] in inits)
    weight = numpy_helper.to_array(inits[conv.input[1]])
    noise = np.random.default_rng(0).normal(0, scale * float(weight.std()), weight.shape).astype(weight.dtype)
    inits[conv.input[1]].CopyFrom(numpy_helper.from_array(weight + noise, conv.input[1]))
    onnx.save(model, str(out))
    return conv.name


# --- the acceptance, on the tiny model ------------------------------------------------------------


def test_fp32_against_itself_passes_exactly(tiny_bundle: Path) -> None:
    report = run_check(tiny_bundle, candidate="fp32", num_images=3)
    assert report.passed, report.format()
    assert set(report.tensors.outputs) == {PROBS, PRED_BOXES, SCORES}
    assert all(o.max_abs == 0.0 for o in report.tensors.outputs.values())
    d = report.detections
    assert d.reference_detections > 0 and d.ap == pytest.approx(1.0) and d.mean_iou == pytest.approx(1.0)
    assert d.label_flips == d.missed == d.extra == 0 and d.score_drift_max == 0.0
    assert report.data["kind"] == "synthetic" and "no calibration source" in report.data["description"]
    json.dumps(report.to_dict())  # JSON-able


def test_fp16_and_int8_report_numbers(best_bundle: Path, shapes_data: Path) -> None:
    reports = run_checks(best_bundle, data=str(shapes_data))
    assert [r.candidate.label for r in reports] == ["fp16", "int8"]
    for r in reports:
        assert r.data["images"] == 4 and r.data["excluded_calibration"] == 8, r.data
        for name in (PROBS, PRED_BOXES, SCORES):
            o = r.tensors.outputs[name]
            assert np.isfinite(o.max_abs) and o.max_abs > 0, (name, o)
        d = r.detections
        assert d.ap is not None and 0 <= d.ap <= 1 and d.mean_iou is not None and d.score_drift_mean is not None
        text = r.format()
        assert "post/probs" in text and "AP " in text and ("PASS" in text or "FAIL:" in text)
    fp16 = reports[0]
    assert fp16.candidate.precision == "fp16" and fp16.tensors.outputs[PROBS].tolerance.atol == 1e-2
    assert fp16.passed, fp16.format()  # FP16 keeps the sensitive nodes in fp32: near-identical outputs


def test_perturbed_backbone_conv_fails_and_layerwise_names_it(tiny_bundle: Path, tmp_path: Path) -> None:
    bad = tmp_path / "perturbed.onnx"
    conv = perturbed_copy(tiny_bundle / "model.onnx", bad)
    report = run_check(tiny_bundle, candidate=str(bad), num_images=3, layerwise=True, save_outputs=str(tmp_path / "o"))
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

    report = run_check(tiny_bundle, candidate="fp32", num_images=2, save_outputs=str(tmp_path))
    results = RunResults.load(report.saved["outputs"])
    names = [name for name, _ in results.items()]
    assert names == ["reference:onnxrt-fp32", "candidate:onnxrt-fp32"]
    first = results["reference:onnxrt-fp32"][0]
    assert {PROBS, PRED_BOXES, "scores", "labels", "boxes"} <= set(first.keys())
    assert len(results["candidate:onnxrt-fp32"]) == 2
    feeds = load_json(report.saved["inputs"])
    assert len(feeds) == 2 and feeds[0]["images"].shape == (1, 3, 64, 64)
    tool = shutil.which("polygraphy")
    if tool:  # the saved file is what `polygraphy inspect data` reads
        proc = subprocess.run([tool, "inspect", "data", report.saved["outputs"]], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0 and "post/probs" in proc.stdout, proc.stderr


# --- data ----------------------------------------------------------------------------------------


def test_data_loader_feeds_our_preprocessing(tiny_bundle: Path, shapes_data: Path) -> None:
    from rtdetr_edge.bundle import Bundle
    from rtdetr_edge.data.synth import render_scene
    from rtdetr_edge.images import list_images, read_image
    from rtdetr_edge.preprocess import Preprocessor

    files = BundleFiles.open(tiny_bundle)
    pre = Preprocessor(Bundle(tiny_bundle).contract.preprocessing)
    folder = resolve_images(str(shapes_data.parent / "images"), files, num_images=3)
    loader = CheckDataLoader(folder, files.contract)
    feeds = list(loader)
    paths = list_images(shapes_data.parent / "images")[:3]
    expected, sizes = pre.batch([read_image(p) for p in paths])
    assert len(feeds) == 3 and all(list(f) == ["images"] and f["images"].dtype == np.float32 for f in feeds)
    np.testing.assert_array_equal(np.concatenate([f["images"] for f in feeds]), expected)
    assert loader.sizes == sizes and loader.names == [p.name for p in paths]
    synthetic = CheckDataLoader(resolve_images("synthetic", files, num_images=2), files.contract)
    scenes = [img for _, img in synthetic.images()]
    rng = np.random.default_rng(20240607)
    expected_scenes = [render_scene(rng, 640, 480)[0], render_scene(rng, 1280, 720)[0]]
    assert all(np.array_equal(a, b) for a, b in zip(scenes, expected_scenes)) and len(scenes) == 2
    np.testing.assert_array_equal(next(iter(synthetic))["images"], pre.batch(scenes[:1])[0])


def test_default_data_is_the_held_out_calibration_source(best_bundle: Path, shapes_data: Path) -> None:
    files = BundleFiles.open(best_bundle)
    manifest = json.loads((best_bundle / "calib" / "manifest.json").read_text())
    calibrated = {e["file"] for e in manifest["images"]}
    default = resolve_images(None, files)
    assert default.kind == "coco" and len(default) == 4 and default.excluded_calibration == 8
    assert not calibrated & {p.name for p in default.paths}
    assert "calibration source" in default.description
    folder = resolve_images(str(shapes_data.parent / "images"), files)  # the same images, named by their folder
    assert [p.name for p in folder.paths] == sorted(p.name for p in default.paths)
    only_calib = shapes_data.parent / "only_calibration.json"  # a json listing nothing but calibration images
    coco = json.loads(shapes_data.read_text())
    coco["images"] = [im for im in coco["images"] if im["file_name"] in calibrated]
    only_calib.write_text(json.dumps(coco))
    with pytest.raises(RtdetrEdgeError, match="no images left to check"):
        resolve_images(str(only_calib), files)


# --- building blocks -----------------------------------------------------------------------------


def test_query_alignment_undoes_a_permutation() -> None:
    rng = np.random.default_rng(1)
    boxes, probs = rng.random((30, 4)), rng.random((30, 5))
    perm = rng.permutation(30)
    noisy_boxes = boxes[perm] + rng.normal(0, 1e-4, (30, 4))
    found = align_rows(boxes, probs, noisy_boxes, probs[perm])
    np.testing.assert_array_equal(perm[found], np.arange(30))
    np.testing.assert_array_equal(align_rows(boxes, probs, boxes, probs), np.arange(30))


def test_a_replaced_query_is_left_out_within_the_limit() -> None:
    rng = np.random.default_rng(2)
    ref = {PRED_BOXES: rng.random((1, 30, 4)), PROBS: rng.random((1, 30, 5))}
    perm = rng.permutation(30)
    cand = {k: v[:, perm] + 1e-5 for k, v in ref.items()}
    cand[PRED_BOXES][0, 7] = [0.9, 0.9, 0.05, 0.05]  # another query took this place
    gates = {PRED_BOXES: 0.02, PROBS: 0.04}
    aligned, moved, unmatched = align_queries(ref, cand, gates)
    assert moved > 0 and unmatched is not None and unmatched.sum() == 1
    assert np.abs(aligned[PROBS][~unmatched] - ref[PROBS][~unmatched]).max() < 1e-4


def test_detection_agreement_counts_flips_misses_and_extras() -> None:
    names = ("a", "b")
    ref = Detections(np.array([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60]], np.float32),
                     np.array([0.9, 0.8, 0.7], np.float32), np.array([0, 1, 0]), names)
    same = agreement([ref], [ref], [(100, 100)], DEFAULT_THRESHOLDS["fp32"])
    assert same.passed and same.ap == pytest.approx(1.0) and same.mean_iou == 1.0
    cand = Detections(np.array([[0, 0, 10, 10], [20, 20, 40, 40], [70, 70, 90, 90]], np.float32),
                      np.array([0.85, 0.8, 0.6], np.float32), np.array([0, 0, 1]), names)
    d = agreement([ref], [cand], [(100, 100)], DEFAULT_THRESHOLDS["int8"])
    assert (d.label_flips, d.missed, d.extra, d.matched) == (1, 1, 1, 1)
    assert d.score_drift_max == pytest.approx(0.05) and not d.passed
    assert any("label flip rate" in f for f in d.failures)


@pytest.mark.parametrize("values, expected", [
    (None, None), (["1e-3"], 1e-3), (["post/probs=0.02", "pred_boxes=0.01"], {"post/probs": 0.02, "pred_boxes": 0.01}),
    (["1e-3", "2e-3"], "one bare value"), (["post/probs=x"], "expected V or NAME=V"),
])
def test_tolerance_arguments(values: list[str] | None, expected: object) -> None:
    if isinstance(expected, str):
        with pytest.raises(RtdetrEdgeError, match=expected):
            parse_tolerance_args(values, "atol")
    else:
        assert parse_tolerance_args(values, "atol") == expected


def test_tolerance_overrides() -> None:
    tol = tolerances_for("int8", atol={"post/probs": 0.2}, rtol=0.01)
    assert tol[PROBS].atol == 0.2 and tol[PRED_BOXES].atol == 5e-2 and tol[SCORES].rtol == 0.01
    with pytest.raises(RtdetrEdgeError, match="unknown output"):
        tolerances_for("fp16", atol={"probs": 0.1})


def test_check_bundle_dir_for_the_build(best_bundle: Path, shapes_data: Path) -> None:
    metadata = json.loads((best_bundle / "metadata.json").read_text())
    out = check_bundle_dir(best_bundle, metadata, ["fp32", "fp16", "int8"], data=str(shapes_data),
                           num_images=4)
    json.dumps(out)
    assert set(out) == {"passed", "data", "fp16", "int8"} and isinstance(out["passed"], bool)
    assert out["data"]["images"] == 4 and out["fp16"]["tensors"]["outputs"]["post/probs"]["max_abs"] >= 0
    assert check_bundle_dir(best_bundle, metadata, ["fp32"]) == {"skipped": "no fp16 or int8 artifact to check"}
    skipped = check_bundle_dir(best_bundle, metadata, ["fp16"], data=str(shapes_data.parent / "nope"))
    assert "--data" in skipped["skipped"]


def test_polygraphy_is_imported_lazily() -> None:
    code = "import sys, rtdetr_edge.check; assert 'polygraphy' not in sys.modules, 'imported eagerly'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# --- CLI -----------------------------------------------------------------------------------------


def test_cli_exit_codes_and_json(tiny_bundle: Path, tmp_path: Path) -> None:
    bad = tmp_path / "perturbed.onnx"
    perturbed_copy(tiny_bundle / "model.onnx", bad)
    ok = run_cli("rtdetr-check", str(tiny_bundle), "--num-images", "2", "--json", str(tmp_path / "ok.json"))
    assert ok.returncode == 0, ok.stderr
    assert "candidate fp32" in ok.stdout and ok.stdout.rstrip().endswith("PASS")
    assert json.loads((tmp_path / "ok.json").read_text())["passed"] is True
    fail = run_cli("rtdetr-check", str(tiny_bundle), "--candidate", str(bad), "--num-images", "2", "-q")
    assert fail.returncode == 1 and "Traceback" not in fail.stderr, fail.stderr
    assert "FAIL: post/probs: max |d|" in fail.stdout and not fail.stderr.strip()


@pytest.mark.parametrize("args, message", [
    (["--candidate", "bf16"], "--candidate bf16: not one of fp32, fp16, int8"),
    (["--candidate", "int8"], "no int8 artifact; the bundle has fp32"),
    (["--candidate", "{tmp}/notes.txt"], "notes.txt: expected an .onnx file or a TensorRT engine"),
    (["--candidate", "{tmp}/broken.onnx"], "broken.onnx: not a readable ONNX model"),
    (["--reference", "model.engine"], "--reference model.engine: not one of"),
    (["--atol", "post/prob=0.1"], "--atol post/prob=...: unknown output"),
    (["--rtol", "1", "--rtol", "2"], "--rtol '1': give one bare value"),
    (["--data", "/no/such/folder"], "--data /no/such/folder: not an existing folder"),
    (["--num-images", "0"], "--num-images must be >= 1"),
    (["--conf", "1.5"], "--conf must be in [0, 1]"),
])
def test_cli_user_errors_are_one_line(tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      args: list[str], message: str) -> None:
    (tmp_path / "notes.txt").write_text("not a model")
    (tmp_path / "broken.onnx").write_bytes(b"\x08\x07garbage")
    assert check_main([str(tiny_bundle), *[a.replace("{tmp}", str(tmp_path)) for a in args]]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


@pytest.mark.skipif(tensorrt_available(), reason="TensorRT is installed here")
def test_tensorrt_runner_without_tensorrt_names_the_install(tiny_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check_main([str(tiny_bundle), "--runner", "tensorrt"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --runner tensorrt: TensorRT cannot be imported") and "pip install tensorrt" in err


def test_cli_not_a_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check_main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a bundle" in err and len(err.strip().splitlines()) == 1


# --- TensorRT (GPU) ------------------------------------------------------------------------------


@pytest.mark.gpu
def test_tensorrt_candidate_through_polygraphy(best_bundle: Path, shapes_data: Path) -> None:
    if not tensorrt_available():
        pytest.skip("TensorRT is not installed")
    fp32 = run_check(best_bundle, candidate="fp32", runner="tensorrt", data=str(shapes_data))
    assert fp32.candidate.runner == "tensorrt" and fp32.candidate.name == "candidate:trt-fp32"
    assert set(fp32.tensors.outputs) == {PROBS, PRED_BOXES, SCORES}
    assert fp32.detections.ap is not None
    fp16 = run_check(best_bundle, candidate="fp16", runner="tensorrt", data=str(shapes_data))
    assert fp16.tensors.outputs[PROBS].max_abs < 0.05, fp16.format()


# --- the reference model (skips until models/rtdetr-shapes exists) --------------------------------


@pytest.fixture(scope="module")
def reference_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rtdetr_edge.data import synth

    return synth.generate(tmp_path_factory.mktemp("refdata"), 48, seed=97)


@pytest.fixture(scope="module")
def reference_best(reference_bundle: Path, reference_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rtdetr_edge.build import BuildOptions, build

    return build(reference_bundle, tmp_path_factory.mktemp("refbest") / "shapes",
                 BuildOptions(precision="best", calib=str(reference_data), calib_size=32, no_calib_cache=True,
                              check_images=0))


@pytest.mark.slow
def test_reference_fp32_against_itself_passes(reference_bundle: Path, reference_data: Path) -> None:
    report = run_check(reference_bundle, candidate="fp32", data=str(reference_data), num_images=8)
    assert report.passed and report.detections.reference_detections > 0, report.format()


@pytest.mark.slow
def test_reference_fp16_and_int8_report_numbers(reference_best: Path) -> None:
    reports = run_checks(reference_best)  # default data: the 16 held-out images of the calibration source
    assert [r.candidate.label for r in reports] == ["fp16", "int8"]
    for r in reports:
        assert r.data["images"] == 16 and r.data["excluded_calibration"] == 32
        assert r.detections.reference_detections > 0 and r.detections.ap is not None, r.format()
        print(r.format())
    assert reports[0].passed, reports[0].format()


@pytest.mark.slow
def test_reference_perturbed_copy_fails_and_layerwise_names_it(reference_bundle: Path, reference_data: Path,
                                                                tmp_path: Path) -> None:
    bad = tmp_path / "perturbed.onnx"
    conv = perturbed_copy(reference_bundle / "model.onnx", bad, stage="stages.2")
    report = run_check(reference_bundle, candidate=str(bad), data=str(reference_data), num_images=8, layerwise=True)
    assert not report.passed and report.failures, report.format()
    assert report.layerwise is not None and report.layerwise.first[0].node == conv, report.format()


def test_check_options_validate() -> None:
    with pytest.raises(RtdetrEdgeError, match="--conf"):
        CheckOptions(conf=2.0)
