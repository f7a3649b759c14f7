"""TensorRT's native INT8 calibration cache: write it for any TensorRT version, read it back.

Format (TensorRT 8.x-10.x, ``IInt8EntropyCalibrator2``)::

    TRT-<NV_TENSORRT_VERSION>-EntropyCalibration2
    <tensor name>: <8 hex digits>

where the hex digits are the IEEE-754 float32 bits of ``scale = amax / 127``, most significant
byte first. ``NV_TENSORRT_VERSION`` is ``M*1000 + m*100 + p`` for 8.x (8.6.1 -> 8601) and
``M*10000 + m*100 + p`` from 10.0 on (10.3.0 -> 100300). TensorRT silently ignores a cache whose
header names another version or algorithm (it recalibrates, and a cache-only calibrator then
has no data), so the cache must be written for the TensorRT that builds the engine; the bundle
keeps the version-neutral ranges and writes caches on demand.
"""

from __future__ import annotations

import math
import re
import struct

from .engine_format import version_tuple
from .errors import CalibrationError, EngineError

ENTROPY2 = "EntropyCalibration2"
# Floor for ranges: a zero scale makes TensorRT reject the build; constant-zero tensors get
# this tiny range instead (their INT8 value is 0 either way).
MIN_AMAX = 1e-6
_HEADER = re.compile(r"^TRT-(\d+)-(\w+)$")


def version_code(version: str) -> int:
    """``NV_TENSORRT_VERSION`` for a version string: "8.6.1" -> 8601, "10.3.0" -> 100300."""
    try:
        major, minor, patch = version_tuple(version)
    except EngineError as exc:
        raise CalibrationError(f"{exc}, e.g. 10.3.0") from None
    if major < 8:
        raise CalibrationError(f"TensorRT {version}: caches are written for TensorRT 8.x-10.x")
    if major >= 11:
        raise CalibrationError(
            f"TensorRT {version} has no calibrator API (removed in 11); use the bundle's Q/DQ ONNX instead"
        )
    return major * 1000 + minor * 100 + patch if major < 10 else major * 10000 + minor * 100 + patch


def scale_hex(amax: float) -> str:
    """The 8 hex digits TensorRT stores for a tensor whose range is [-amax, amax]."""
    if not math.isfinite(amax) or amax < 0:
        raise CalibrationError(f"invalid calibration range {amax!r}")
    return struct.pack(">f", max(float(amax), MIN_AMAX) / 127.0).hex()


def hex_amax(text: str) -> float:
    """Inverse of :func:`scale_hex` (returns amax)."""
    return float(struct.unpack(">f", bytes.fromhex(text))[0]) * 127.0


def write_cache(ranges: dict[str, float], trt_version: str, algorithm: str = ENTROPY2) -> str:
    """Cache text for ``trt_version`` with one line per tensor, in the given order."""
    if not ranges:
        raise CalibrationError("no calibrated tensors to write")
    lines = [f"TRT-{version_code(trt_version)}-{algorithm}"]
    for name, amax in ranges.items():
        if ":" in name and name.rsplit(":", 1)[1].strip() == "":
            raise CalibrationError(f"tensor name {name!r} cannot be written to a TensorRT cache")
        lines.append(f"{name}: {scale_hex(amax)}")
    return "\n".join(lines) + "\n"


def read_cache(text: str) -> tuple[int, str, dict[str, float]]:
    """Parse cache text -> (version code, algorithm, {tensor: amax})."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise CalibrationError("empty calibration cache")
    m = _HEADER.match(lines[0].strip())
    if not m:
        raise CalibrationError(f"not a TensorRT calibration cache (header {lines[0][:40]!r})")
    ranges = {}
    for ln in lines[1:]:
        name, _, hexval = ln.rpartition(": ")
        if not name or not re.fullmatch(r"[0-9a-fA-F]{8}", hexval.strip()):
            raise CalibrationError(f"malformed calibration cache line {ln[:60]!r}")
        ranges[name] = hex_amax(hexval.strip())
    return int(m.group(1)), m.group(2), ranges
