"""TensorRT INT8 calibrators (implicit quantization, TensorRT 8.6-10.x; removed in 11), on Polygraphy's ``Calibrator``.

Polygraphy's ``Calibrator`` (``polygraphy.backend.trt``) is the ``IInt8EntropyCalibrator2``
subclass: it copies each batch to the GPU, returns batch size 1 as explicit-batch networks
require, and reads/writes the cache. Two ways to feed it:

* :func:`cache_only_calibrator`: our cache text for the running TensorRT and no data (the device
  needs no images; the bundle's version-neutral ranges become TensorRT's own cache format);
* :func:`make_calibrator`: user batches, checked here (names, shapes), with the first error kept
  and raised by the builder (TensorRT swallows exceptions raised inside its callbacks).
"""

from __future__ import annotations

import itertools
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from .. import trt_cache
from .._optional import require
from ..backends.trt_logging import load_tensorrt, tensorrt_version
from ..errors import CalibrationError, EngineError

log = logging.getLogger("rtdetr_edge")

ENTROPY2 = trt_cache.ENTROPY2


def native_cache_text(ranges: dict[str, float], trt_version: str | None = None) -> str:
    """TensorRT's own INT8 cache text for ``ranges``, for the running TensorRT by default.

    TensorRT ignores a cache whose header names another version, so it is always written for
    the version that reads it (``rtdetr_edge/trt_cache.py`` has the format).
    """
    text: str = trt_cache.write_cache(ranges, trt_version or tensorrt_version(), ENTROPY2)
    return text


def cache_matches(text: bytes, trt_version: str) -> bool:
    """Whether TensorRT ``trt_version`` would read this cache (its version and algorithm in the header)."""
    try:
        code, algo, _ = trt_cache.read_cache(text.decode("utf-8", errors="replace"))
        wanted: int = trt_cache.version_code(trt_version)
    except CalibrationError:
        return False
    return bool(code == wanted and algo == ENTROPY2)


def _polygraphy_calibrator(data: Iterable[Any], cache: str | IO[bytes]) -> Any:
    load_tensorrt("INT8 calibration")
    require("polygraphy", "INT8 calibration")
    import tensorrt as trt

    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        raise EngineError(f"TensorRT {trt.__version__} has no calibrators (removed in 11); use --int8-mode qdq")
    from polygraphy.backend.trt import Calibrator

    return Calibrator(data, cache=cache, BaseClass=trt.IInt8EntropyCalibrator2)


def cache_only_calibrator(cache_text: str) -> Any:
    """A calibrator that serves a prepared cache and no data (TensorRT 8.6-10.x).

    With a cache in TensorRT's own format for the running version, TensorRT reads the scales
    and never asks for batches, so no images or torch are needed on the device.
    """
    # a real (temporary) file: Polygraphy sizes the cache with os.fstat, which an in-memory buffer lacks
    cache = tempfile.TemporaryFile("w+b")  # noqa: SIM115 - lives as long as the calibrator
    cache.write(cache_text.encode("utf-8"))
    cache.seek(0)
    return _polygraphy_calibrator([], cache)


class DeviceCalibrator:
    """Entropy calibration over user batches on the device (TensorRT 8.6-10.x).

    Attributes:
        calibrator: the TensorRT calibrator (Polygraphy's) the builder hands to TensorRT.
        shapes: each input's batch shape (the first batch's); the builder sets a calibration
            profile of exactly these shapes, since TensorRT calibrates at the profile's OPT shape.
        error: the first problem with the data, raised by the builder after the build.
        seen: batches handed to TensorRT.
    """

    def __init__(self, batches: Iterable[dict[str, np.ndarray]], cache_path: str | os.PathLike[str]) -> None:
        it: Iterator[dict[str, np.ndarray]] = iter(batches)
        try:
            first = next(it)
        except StopIteration:
            raise CalibrationError("the calibration data is empty") from None
        if not isinstance(first, dict) or not first:
            raise CalibrationError("a calibration batch must map input names to arrays")
        self.shapes = {str(k): tuple(int(d) for d in np.shape(v)) for k, v in first.items()}
        self.error: Exception | None = None
        self.seen = 0
        self.path = Path(cache_path)
        if self.path.is_file() and not cache_matches(self.path.read_bytes(), tensorrt_version()):
            log.warning(
                "INT8: %s was written for another TensorRT version or algorithm: TensorRT ignores it and recalibrates",
                self.path,
            )
        self.calibrator = _polygraphy_calibrator(self._feed(first, it), str(self.path))

    def _feed(self, first: dict[str, np.ndarray], rest: Iterator[dict[str, np.ndarray]]) -> Iterator[dict[str, Any]]:
        try:
            for batch in itertools.chain([first], rest):
                yield self._check(batch)
        except Exception as exc:  # noqa: BLE001 - kept for the builder; TensorRT would swallow it
            self.error = exc

    def _check(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not isinstance(batch, dict) or set(batch) != set(self.shapes):
            names = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
            raise CalibrationError(
                f"calibration batch {self.seen} has inputs {names}, the first had {sorted(self.shapes)}"
            )
        out = {}
        for name, arr in batch.items():
            shape = tuple(int(d) for d in np.shape(arr))
            if shape != self.shapes[name]:
                raise CalibrationError(
                    f"calibration batch {self.seen}: {name} has shape {shape}, the first batch had "
                    f"{self.shapes[name]}; every batch must have the same shape"
                )
            out[name] = np.ascontiguousarray(arr, np.float32)
        self.seen += 1
        return out

    def close(self) -> None:
        """Free the GPU copies of the batches."""
        self.calibrator.free()


def make_calibrator(batches: Iterable[dict[str, np.ndarray]], cache_path: str | os.PathLike[str]) -> DeviceCalibrator:
    """An entropy calibrator over user data, for calibrating on the device (TensorRT 8.6-10.x).

    Args:
        batches: any iterable of ``{input_name: ndarray}``, every batch the same shape, preprocessed
            exactly as at deployment (``Preprocessor`` output for RT-DETR).
        cache_path: TensorRT calibration cache, read if present (TensorRT ignores one written for
            another version or algorithm and recalibrates: a warning says so) and written after
            calibration.
    """
    return DeviceCalibrator(batches, cache_path)
