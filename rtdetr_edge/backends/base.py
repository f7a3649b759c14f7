"""The one interface every inference backend implements.

The Detector fills the backend's own input buffer (pinned or mapped host memory on TensorRT,
a numpy array on ONNX Runtime), then asks it to run on the first ``n`` images of that buffer:

    buf = backend.input_buffer(n)      # [n,3,H,W] float32, host-visible
    preprocess(images, out=buf)
    outputs = backend.infer(n)         # {name: ndarray}, valid until the next infer()

``run(feeds)`` is the generic path for tools (checks, calibration) that bring their own arrays.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output: ``shape`` uses -1 for dynamic dimensions."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]


class Backend(abc.ABC):
    """Load a model, describe its I/O, run it, release it. Usable as a context manager."""

    name: str = "backend"

    @property
    @abc.abstractmethod
    def inputs(self) -> list[TensorSpec]: ...

    @property
    @abc.abstractmethod
    def outputs(self) -> list[TensorSpec]: ...

    @property
    def batch_range(self) -> tuple[int, int]:
        """(min, max) batch the loaded model accepts; max 0 = unbounded."""
        return (1, 0)

    @abc.abstractmethod
    def input_buffer(self, batch: int) -> np.ndarray:
        """Host-visible array that :meth:`infer` reads: ``[batch,3,H,W]`` float32, or ``[batch,H,W,3]``
        uint8 for a frame-input graph."""

    @abc.abstractmethod
    def infer(self, batch: int) -> dict[str, np.ndarray]:
        """Run on the first ``batch`` images of :meth:`input_buffer`; outputs keyed by name."""

    @abc.abstractmethod
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run on caller-provided arrays (copied in if needed)."""

    def describe(self) -> dict[str, Any]:
        """What is running, for logs, benchmarks and reports."""
        return {"backend": self.name}

    def close(self) -> None:  # noqa: B027 - an optional hook: backends holding nothing need not override it
        """Release sessions, engines and buffers (idempotent)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
