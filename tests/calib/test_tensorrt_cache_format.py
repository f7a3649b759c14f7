"""Native TensorRT calibration caches: header version codes and the scale encoding."""

from __future__ import annotations

import struct

import pytest

from rtdetr_edge import trt_cache
from rtdetr_edge.errors import CalibrationError


@pytest.mark.parametrize(
    "version, code", [("8.6.1", 8601), ("8.5.2", 8502), ("10.3.0", 100300), ("10.13.0.35", 101300)]
)
def test_cache_header_version_codes(version: str, code: int) -> None:
    text = trt_cache.write_cache({"images": 1.0, "x": 0.5}, version)
    assert text.splitlines()[0] == f"TRT-{code}-EntropyCalibration2"
    parsed_code, algorithm, ranges = trt_cache.read_cache(text)
    assert (parsed_code, algorithm) == (code, "EntropyCalibration2")
    assert ranges["x"] == pytest.approx(0.5, rel=1e-6)


def test_cache_encoding_details() -> None:
    line = trt_cache.write_cache({"t": 127.0}, "10.3.0").splitlines()[1]
    assert line == "t: " + struct.pack(">f", 1.0).hex() == "t: 3f800000"
    zero = trt_cache.read_cache(trt_cache.write_cache({"z": 0.0}, "10.3.0"))[2]["z"]
    assert zero > 0  # floored: zero scales break TensorRT builds
    with pytest.raises(CalibrationError, match="removed in 11"):
        trt_cache.write_cache({"t": 1.0}, "11.4.1")
    with pytest.raises(CalibrationError, match="not a TensorRT calibration cache"):
        trt_cache.read_cache("hello\n")
