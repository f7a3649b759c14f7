"""rtdetr-check on the shipped reference model (skips while models/rtdetr-shapes is absent).

The INT8 build is the README's: 256 calibration images from a 300-image generated set (seed 7);
the checks run on 50 other generated images (seed 3, the model card's held-out seed). The default
tolerances and thresholds were calibrated on this model (see rtdetr_edge/check/compare.py and
detections.py): its FP16 and INT8 builds pass, and an INT8 copy whose activation scales are 20x too
small fails on every criterion.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.check.perturb import perturbed_copy, scaled_activation_qdq_copy

pytest.importorskip("polygraphy")
pytest.importorskip("faster_coco_eval")

from rtdetr_edge.calib import CalibrationOptions
from rtdetr_edge.check import CheckOptions, run_check
from rtdetr_edge.cli.check import main as check_main


@pytest.fixture(scope="module")
def reference_heldout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rtdetr_edge.data import synth

    return synth.generate(tmp_path_factory.mktemp("refheldout"), 50, seed=3)


@pytest.fixture(scope="module")
def reference_best(reference_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rtdetr_edge.build import BuildOptions, add_precisions
    from rtdetr_edge.data import synth

    calib = synth.generate(tmp_path_factory.mktemp("refcalib"), 300, seed=7)
    return add_precisions(
        reference_bundle,
        tmp_path_factory.mktemp("refbest") / "shapes",
        BuildOptions(
            precision="best", check_images=0, calibration=CalibrationOptions(calib=str(calib), cache_dir=None)
        ),
    )


@pytest.mark.slow
def test_reference_fp16_and_int8_pass_and_a_mis_scaled_int8_copy_fails(
    reference_best: Path, reference_heldout: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.onnx"
    scaled_activation_qdq_copy(reference_best / "model.int8.qdq.onnx", broken, 0.05)
    out = tmp_path / "check.json"
    argv = [str(reference_best), "--data", str(reference_heldout), "--json", str(out)]
    code = check_main([*argv, "--candidate", "fp16", "--candidate", "int8", "--candidate", str(broken)])
    printed = capsys.readouterr().out
    assert code == 1, printed
    last = printed.rstrip().splitlines()[-1]
    assert last.startswith("FAIL: broken.onnx: ") and "int8:" not in last and "fp16:" not in last, last
    checks = {c["candidate"]["label"]: c for c in json.loads(out.read_text())["checks"]}
    for label in ("fp16", "int8"):
        c = checks[label]
        assert c["passed"], (label, c["failures"])
        assert c["tensors"]["foreground_rows"] > 0 and c["detections"]["reference_detections"] > 0
        assert c["detections"]["ap"] >= c["detections"]["thresholds"]["min_ap"]
    bad = checks["broken.onnx"]
    assert not bad["passed"] and bad["candidate"]["precision"] == "int8"
    for criterion in ("post/probs: max |d|", "pred_boxes: max |d|", "foreground query rows without", "AP ", "missed"):
        assert any(f.startswith(criterion) for f in bad["failures"]), (criterion, bad["failures"])
    assert f"broken.onnx: {'; '.join(bad['failures'])}" in last
    assert check_main([*argv, "--candidate", "int8"]) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1] == "  PASS"


@pytest.mark.slow
def test_reference_perturbed_copy_fails_and_layerwise_names_it(
    reference_bundle: Path, reference_heldout: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "perturbed.onnx"
    conv = perturbed_copy(reference_bundle / "model.onnx", bad, stage="stages.2")
    report = run_check(
        reference_bundle, str(bad), CheckOptions(data=str(reference_heldout), num_images=8, layerwise=True)
    )
    assert not report.passed and report.failures, report.format()
    assert report.layerwise is not None and report.layerwise.first[0].node == conv, report.format()
