"""TensorRT INT8 calibrators (implicit quantization, TensorRT 8.5-10.x; removed in 11).

The calibrator classes are made inside factories so ``tensorrt`` stays a lazy import: one
serves a prepared cache and no data (the device needs no images), one feeds user batches.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .. import atomic, trt_cache
from ..backends.trt_logging import load_tensorrt, tensorrt_version
from ..errors import CalibrationError, EngineError

log = logging.getLogger("rtdetr_edge")

ENTROPY2 = trt_cache.ENTROPY2


def native_cache_text(ranges: dict[str, float], trt_version: str | None = None) -> str:
    """TensorRT's own INT8 cache text for ``ranges``, for the running TensorRT by default.

    TensorRT ignores a cache whose header names another version, so it is always written for
    the version that reads it (``calib/trt_cache.py`` has the format).
    """
    text: str = trt_cache.write_cache(ranges, trt_version or tensorrt_version(), ENTROPY2)
    return text


def _cache_matches(text: bytes, trt_version: str) -> bool:
    try:
        code, algo, _ = trt_cache.read_cache(text.decode("utf-8", errors="replace"))
        wanted: int = trt_cache.version_code(trt_version)
    except CalibrationError:
        return False
    return bool(code == wanted and algo == ENTROPY2)


def cache_only_calibrator(cache_text: str) -> Any:
    """An ``IInt8EntropyCalibrator2`` that serves a prepared cache and no data (TensorRT 8.5-10.x).

    With a cache in TensorRT's own format for the running version, TensorRT reads the scales
    and never asks for batches, so no images or torch are needed on the device.
    """
    load_tensorrt("INT8 calibration")
    import tensorrt as trt

    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        raise EngineError(f"TensorRT {trt.__version__} has no calibrators (removed in 11); use --int8-mode qdq")
    payload = cache_text.encode("utf-8")

    class CacheOnlyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int]:
            return []  # no data: everything comes from the cache

        def read_calibration_cache(self) -> bytes:
            return payload

        def write_calibration_cache(self, cache: Any) -> None:
            pass  # the bundle keeps version-neutral ranges; nothing to save

    return CacheOnlyCalibrator()


def make_calibrator(
    batches: Iterable[dict[str, np.ndarray]], cache_path: str | os.PathLike[str], device: int = 0
) -> Any:
    """An entropy calibrator over user data, for calibrating on the device (TensorRT 8.5-10.x).

    Args:
        batches: any iterable of ``{input_name: ndarray}``, every batch the same shape, preprocessed
            exactly as at deployment (``Preprocessor`` output for RT-DETR).
        cache_path: TensorRT calibration cache. Read only if its header matches the running
            TensorRT and EntropyCalibration2 (else TensorRT would silently recalibrate, or fail
            with no data); written after calibration.
        device: CUDA device for the batch buffers.

    The calibrator has ``batch_size`` and ``close()``; the builder sets a calibration profile of
    that batch for dynamic-batch networks.
    """
    load_tensorrt("INT8 calibration")
    import tensorrt as trt

    from ..cuda import buffers

    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        raise EngineError(f"TensorRT {trt.__version__} has no calibrators (removed in 11); use --int8-mode qdq")
    version = str(trt.__version__)
    path = Path(cache_path)
    it: Iterator[dict[str, np.ndarray]] = iter(batches)
    try:
        first = next(it)
    except StopIteration:
        raise CalibrationError("the calibration data is empty") from None
    if not first:
        raise CalibrationError("a calibration batch must map input names to arrays")
    batch_size = int(next(iter(first.values())).shape[0])

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batch_size = batch_size
            self.seen = 0
            self.error: Exception | None = None
            self._pending: dict[str, np.ndarray] | None = first
            self._buffers: dict[str, buffers.HostDeviceBuffer] = {}
            buffers.set_device(device)
            self._stream = buffers.Stream()

        def get_batch_size(self) -> int:
            return self.batch_size

        def get_batch(self, names: list[str]) -> list[int]:
            # TensorRT prints and swallows exceptions raised here (and ends calibration), so
            # they are kept and re-raised by the builder once the build returns
            try:
                return self._next(names)
            except Exception as exc:  # noqa: BLE001
                self.error = exc
                return []

        def _next(self, names: list[str]) -> list[int]:
            batch = self._pending if self._pending is not None else next(it, None)
            self._pending = None
            if batch is None:
                return []  # no more data
            pointers = []
            for name in names:
                if name not in batch:
                    raise CalibrationError(
                        f"calibration batch {self.seen} has no input {name!r} (it has {sorted(batch)})"
                    )
                arr = np.ascontiguousarray(batch[name], np.float32)
                buf = self._buffers.get(name)
                if buf is None:
                    buf = self._buffers[name] = buffers.HostDeviceBuffer(arr.shape, np.float32, "pinned")
                if arr.shape != buf.shape:
                    raise CalibrationError(
                        f"calibration batch {self.seen}: {name} has shape {arr.shape}, the "
                        f"first batch had {buf.shape}; every batch must have the same shape"
                    )
                np.copyto(buf.host, arr)
                buf.to_device(self._stream)
                pointers.append(buf.device_ptr)
            self._stream.synchronize()
            self.seen += 1
            return pointers

        def read_calibration_cache(self) -> bytes | None:
            # TensorRT's documented contract: the cache bytes, or None when there is none
            if not path.is_file():
                return None
            data = path.read_bytes()
            if _cache_matches(data, version):
                log.info("INT8: using calibration cache %s", path)
                return data
            log.warning("INT8: ignoring %s (written for another TensorRT version or algorithm); recalibrating", path)
            return None

        def write_calibration_cache(self, cache: Any) -> None:
            atomic.write_bytes(path, bytes(cache))
            log.info("INT8: calibration cache written to %s (%d batches)", path, self.seen)

        def close(self) -> None:
            for buf in self._buffers.values():
                buf.close()
            self._buffers.clear()
            self._stream.close()

    return EntropyCalibrator()
