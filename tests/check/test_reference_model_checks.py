"""rtdetr-check on the shipped reference model (skips while models/rtdetr-shapes is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.check.perturb import perturbed_copy

pytest.importorskip("polygraphy")
pytest.importorskip("faster_coco_eval")

from rtdetr_edge.calib import CalibrationOptions
from rtdetr_edge.check import CheckOptions, run_check, run_checks


@pytest.fixture(scope="module")
def reference_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rtdetr_edge.data import synth

    return synth.generate(tmp_path_factory.mktemp("refdata"), 48, seed=97)


@pytest.fixture(scope="module")
def reference_best(reference_bundle: Path, reference_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rtdetr_edge.build import BuildOptions, add_precisions

    return add_precisions(
        reference_bundle,
        tmp_path_factory.mktemp("refbest") / "shapes",
        BuildOptions(
            precision="best",
            check_images=0,
            calibration=CalibrationOptions(calib=str(reference_data), size=32, cache_dir=None),
        ),
    )


@pytest.mark.slow
def test_reference_fp32_against_itself_passes(reference_bundle: Path, reference_data: Path) -> None:
    report = run_check(reference_bundle, "fp32", CheckOptions(data=str(reference_data), num_images=8))
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
def test_reference_perturbed_copy_fails_and_layerwise_names_it(
    reference_bundle: Path, reference_data: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "perturbed.onnx"
    conv = perturbed_copy(reference_bundle / "model.onnx", bad, stage="stages.2")
    report = run_check(reference_bundle, str(bad), CheckOptions(data=str(reference_data), num_images=8, layerwise=True))
    assert not report.passed and report.failures, report.format()
    assert report.layerwise is not None and report.layerwise.first[0].node == conv, report.format()
