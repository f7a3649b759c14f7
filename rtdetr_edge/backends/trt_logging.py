"""TensorRT's import check and its one process-wide logger, with log capture per call.

TensorRT wants a single ``ILogger`` per process; its messages go to the ``rtdetr_edge`` logger.
Error and warning lines are also collected for the call that produced them (:func:`capture`):
each build, load or enqueue opens its own :class:`LogCapture` in a context variable, so two
Detectors loading engines on two threads each report their own TensorRT errors.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

from .._optional import require, route_for
from ..errors import MissingDependencyError

if TYPE_CHECKING:
    import tensorrt

log = logging.getLogger("rtdetr_edge")


def load_tensorrt(purpose: str = "TensorRT engines") -> ModuleType:
    """Import TensorRT or raise :class:`MissingDependencyError` naming how to get it.

    ``tensorrt-stubs`` alone installs a ``tensorrt`` directory of ``.pyi`` files that Python
    imports as an empty namespace package; that is reported as missing too.
    """
    mod = require("tensorrt", purpose)
    if not hasattr(mod, "Builder") or not hasattr(mod, "__version__"):
        where = ", ".join(str(p) for p in getattr(mod, "__path__", [])) or "?"
        raise MissingDependencyError(
            f"'tensorrt' is needed for {purpose} but the 'tensorrt' found ({where}) is not TensorRT (type stubs "
            f"only?). Install it: {route_for('tensorrt')}"
        )
    return mod


def tensorrt_version() -> str:
    """The running TensorRT's ``__version__`` (e.g. ``"10.3.0.30"``)."""
    load_tensorrt()
    import tensorrt as trt

    return str(trt.__version__)


def tensorrt_usable(device: int = 0) -> bool:
    """True if real TensorRT imports and CUDA device ``device`` exists (for ``backend="auto"``).

    Where TensorRT is installed but CUDA device ``device`` is not usable (no driver: a container
    started without ``--runtime nvidia``; no GPU; a broken CUDA setup), one warning says why.
    """
    try:
        load_tensorrt()
    except MissingDependencyError:
        return False
    from ..cuda import buffers

    status = buffers.cuda_status()  # never raises
    if status.devices > device:
        return True
    why = status.reason or f"{status.devices} CUDA device(s)"
    log.warning("TensorRT is installed but CUDA device %d is not usable (%s): running ONNX Runtime", device, why)
    return False


@dataclass
class LogCapture:
    """TensorRT's error and warning lines during one call (see :func:`capture`)."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self, limit: int = 12) -> str:
        lines = self.errors[-limit:] or self.warnings[-limit // 2 :]
        return "; ".join(line.strip() for line in lines) or "no error logged by TensorRT"


_CURRENT: contextvars.ContextVar[LogCapture | None] = contextvars.ContextVar("rtdetr_edge_trt_log", default=None)
_LOGGER: Any = None


@contextlib.contextmanager
def capture() -> Iterator[LogCapture]:
    """Collect TensorRT's error/warning lines logged by this thread (context) until the block ends."""
    cap = LogCapture()
    token = _CURRENT.set(cap)
    try:
        yield cap
    finally:
        _CURRENT.reset(token)


def record(kind: Literal["error", "warning"], msg: str) -> None:
    """Log a TensorRT error/warning line and add it to the calling context's capture, if any."""
    cap = _CURRENT.get()
    if kind == "error":
        if cap is not None:
            cap.errors.append(msg)
        log.error("TensorRT: %s", msg)
    else:
        if cap is not None:
            cap.warnings.append(msg)
        log.warning("TensorRT: %s", msg)


def logger() -> tensorrt.ILogger:
    """The process's TensorRT logger (created, with the plugin library initialised, on first use)."""
    global _LOGGER
    if _LOGGER is not None:
        return _LOGGER
    load_tensorrt()
    import tensorrt as trt

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
            if severity in (trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR):
                record("error", msg)
            elif severity == trt.ILogger.WARNING:
                record("warning", msg)
            elif severity == trt.ILogger.INFO:
                log.debug("TensorRT: %s", msg)

    instance = _Logger()
    try:
        trt.init_libnvinfer_plugins(instance, "")  # engines from parser fallbacks may use plugins
    except Exception as exc:  # noqa: BLE001 - plugins are optional for RT-DETR
        log.debug("TensorRT plugins not initialised: %s", exc)
    _LOGGER = instance
    return instance
