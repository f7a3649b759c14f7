"""Where an INT8 engine comes from: the bundle's Q/DQ ONNX or its ranges, and native calibration caches."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest

from rtdetr_edge.bundle import Bundle, write_bundle
from rtdetr_edge.engine import calibrators
from rtdetr_edge.engine.cache import int8_source
from rtdetr_edge.errors import CalibrationError, EngineError
from tests.engine.fakes import CONTRACT, fake_bundle


@pytest.mark.parametrize(
    "qdq, ranges, major, mode, expected",
    [
        (True, True, 10, "auto", ("model.int8.qdq.onnx", False, "qdq")),
        (True, True, 8, "auto", ("model.int8.qdq.trt8.onnx", False, "qdq")),
        (True, False, 8, "auto", ("model.int8.qdq.trt8.onnx", False, "qdq")),
        (True, True, 8, "implicit", ("model.onnx", True, "implicit")),
        (False, True, 10, "auto", ("model.onnx", True, "implicit")),
        (True, True, 10, "implicit", ("model.onnx", True, "implicit")),
        (False, True, 10, "qdq", "no Q/DQ ONNX"),
        (True, False, 10, "implicit", "needs calib/ranges.json"),
    ],
)
def test_int8_source_follows_the_tensorrt_version_and_mode(
    tmp_path: Path, qdq: bool, ranges: bool, major: int, mode: str, expected: Any
) -> None:
    bundle = fake_bundle(tmp_path, qdq=qdq, ranges=ranges)
    if isinstance(expected, str):
        with pytest.raises(EngineError, match=expected):
            int8_source(bundle, major, mode)
        return
    onnx_path, _, ranges_path, resolved = int8_source(bundle, major, mode)
    assert (onnx_path.name, ranges_path is not None, resolved) == expected


def test_int8_needs_an_int8_artifact(tmp_path: Path) -> None:
    bundle = Bundle(
        write_bundle(
            tmp_path / "b",
            {"contract": CONTRACT.to_dict(), "artifacts": {"fp32": {"file": "model.onnx"}}},
            {"model.onnx": b"x"},
        )
    )
    with pytest.raises(EngineError, match="no int8 artifact"):
        int8_source(bundle, 10, "auto")


@pytest.mark.parametrize(
    "version, header",
    [
        ("10.3.0.30", "TRT-100300-EntropyCalibration2"),
        ("8.6.1.6", "TRT-8601-EntropyCalibration2"),
        ("10.13.0.35", "TRT-101300-EntropyCalibration2"),
    ],
)
def test_native_cache_is_written_for_the_running_version(fake_trt: types.ModuleType, version: str, header: str) -> None:
    fake_trt.__version__ = version  # type: ignore[attr-defined]
    text = calibrators.native_cache_text({"images": 1.0, "post/probs": 1.0})
    lines = text.splitlines()
    assert lines[0] == header
    assert lines[1] == "images: 3c010204"  # 1/127 as IEEE float32, most significant byte first
    assert calibrators.cache_matches(text.encode(), version)
    assert not calibrators.cache_matches(text.encode(), "10.4.0")
    assert not calibrators.cache_matches(b"garbage", version)


def test_no_native_cache_on_tensorrt_11(fake_trt: types.ModuleType) -> None:
    fake_trt.__version__ = "11.1.0.106"  # type: ignore[attr-defined]
    with pytest.raises(CalibrationError, match="no calibrator API"):
        calibrators.native_cache_text({"images": 1.0})


@pytest.mark.parametrize("major, swapped", [(8, "model.int8.qdq.trt8.onnx"), (10, "model.int8.qdq.onnx")])
def test_the_int8_graph_an_engine_is_built_from_is_hash_checked(tmp_path: Path, major: int, swapped: str) -> None:
    from rtdetr_edge.errors import BundleError

    bundle = fake_bundle(tmp_path)
    (bundle.path / swapped).write_bytes(b"replaced after the build")
    with pytest.raises(BundleError, match=f"{swapped}: sha256 does not match"):
        int8_source(Bundle(bundle.path), major, "auto")
