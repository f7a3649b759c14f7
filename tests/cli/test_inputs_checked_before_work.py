"""``--calib`` and ``--trt-cache-version`` mistakes fail before the export starts (issue 24, item 7).

The export is replaced by one that records it was called: each case must fail without calling it
(no timing: what is asserted is that the work never began).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import Cli


@pytest.fixture()
def export_calls(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    from rtdetr_edge import export

    calls: list[object] = []

    def fake_export(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise AssertionError("the export started before the inputs were checked")

    monkeypatch.setattr(export, "export_onnx", fake_export)
    return calls


def _dataset(root: Path, n: int) -> Path:
    from rtdetr_edge.data.synth import generate

    return generate(root, n, 0)


@pytest.mark.parametrize(
    ("calib", "extra", "expected"),
    [
        ("missing.json", [], "--calib {tmp}/missing.json: not an existing folder of images, a COCO .json file"),
        (
            "data",
            [],
            "--calib {tmp}/data: the folder has no images (.jpg, .jpeg, .png, .bmp, .webp, .tif, .tiff) directly inside; it holds annotations.json: pass {tmp}/data/annotations.json",
        ),
        (
            "data/annotations.json",
            ["--calib-size", "50"],
            "--calib {tmp}/data/annotations.json: 4 images, fewer than --calib-size 50",
        ),
        ("data/annotations.json", ["--trt-cache-version", "ten"], "--trt-cache-version ten: "),
        (
            "data/annotations.json",
            ["--trt-cache-version", "11.0.0"],
            "--trt-cache-version 11.0.0: TensorRT 11.0.0 has no calibrator API",
        ),
    ],
    ids=["missing-file", "dataset-folder", "too-few-images", "bad-version", "trt11-version"],
)
def test_calibration_mistakes_fail_before_the_export(
    cli: Cli,
    tiny_model_dir: Path,
    tmp_path: Path,
    export_calls: list[object],
    calib: str,
    extra: list[str],
    expected: str,
) -> None:
    _dataset(tmp_path / "data", 4)
    run = cli(
        "rtdetr-build",
        "--model",
        str(tiny_model_dir),
        "--precision",
        "int8",
        "--calib",
        str(tmp_path / calib),
        "--out",
        str(tmp_path / "out"),
        *extra,
    )
    assert expected.format(tmp=tmp_path) in run.one_line_error()
    assert export_calls == [] and not (tmp_path / "out").exists()


def test_adding_int8_to_a_bundle_checks_the_calibration_source_first(
    cli: Cli, tiny_bundle: Path, tmp_path: Path
) -> None:
    import shutil

    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    before = json.loads((bundle / "metadata.json").read_text())
    _dataset(tmp_path / "data", 4)
    run = cli(
        "rtdetr-build",
        "--model",
        str(bundle),
        "--out",
        str(bundle),
        "--precision",
        "int8",
        "--calib",
        str(tmp_path / "data"),
    )
    assert "pass " in run.one_line_error() and "annotations.json" in run.one_line_error()
    assert json.loads((bundle / "metadata.json").read_text()) == before
