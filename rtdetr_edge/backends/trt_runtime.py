"""TensorRT at run time: a deserialized engine, its execution contexts, and tensor shapes.

One of the four modules that import ``tensorrt`` (with :mod:`.trt_logging`,
:mod:`rtdetr_edge.engine.builder` and :mod:`rtdetr_edge.engine.calibrators`); it is imported
inside each function after :func:`~.trt_logging.load_tensorrt` has checked it, so this module
imports anywhere and is type-checked against ``tensorrt-stubs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import EngineError
from .trt_logging import capture, load_tensorrt, logger

if TYPE_CHECKING:
    import tensorrt


@dataclass(frozen=True)
class IOTensor:
    """An engine input or output; ``shape`` has -1 for dynamic axes, ``profile`` is (min, opt, max)."""

    name: str
    is_input: bool
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None


def _np_dtype(dt: tensorrt.DataType) -> np.dtype[Any]:
    import tensorrt as trt

    try:
        return np.dtype(trt.nptype(dt))
    except TypeError as exc:
        raise EngineError(f"engine tensor type {dt} has no numpy equivalent") from exc


class Engine:
    """A deserialized engine (thread-safe to share; create one context per thread).

    Args:
        plan: the engine file's bytes.
        source: file name for messages.
        dla_core: DLA core the engine was built for (must be set before deserialising).
    """

    def __init__(self, plan: bytes, source: str = "engine", dla_core: int | None = None) -> None:
        load_tensorrt("running TensorRT engines")
        import tensorrt as trt

        self.source = source
        with capture() as cap:
            self._runtime = trt.Runtime(logger())
            if dla_core is not None:
                self._runtime.DLA_core = int(dla_core)
            engine = self._runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise EngineError(
                f"{source}: TensorRT {trt.__version__} could not load this engine ({len(plan)} bytes): "
                f"{cap.summary()}. The file may be truncated or corrupt, or built by another "
                "TensorRT version or for another GPU: rebuild it on this machine"
            )
        self._engine: tensorrt.ICudaEngine | None = engine
        self.io: list[IOTensor] = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            shape = dims_of(engine.get_tensor_shape(name))
            prof = None
            if is_input and any(d < 0 for d in shape):
                mn, op, mx = engine.get_tensor_profile_shape(name, 0)
                prof = (dims_of(mn), dims_of(op), dims_of(mx))
            self.io.append(IOTensor(name, is_input, shape, _np_dtype(engine.get_tensor_dtype(name)), prof))

    @property
    def inputs(self) -> list[IOTensor]:
        return [t for t in self.io if t.is_input]

    @property
    def outputs(self) -> list[IOTensor]:
        return [t for t in self.io if not t.is_input]

    def batch_range(self) -> tuple[int, int]:
        """(min, max) batch of the first input (from profile 0 when dynamic)."""
        first = self.inputs[0]
        if first.profile is None:
            return (first.shape[0], first.shape[0])
        return (first.profile[0][0], first.profile[2][0])

    def create_context(self) -> ExecutionContext:
        if self._engine is None:
            raise EngineError(f"{self.source}: engine is closed")
        return ExecutionContext(self._engine, self.source)

    def close(self) -> None:
        self._engine = None


class ExecutionContext:
    """One ``IExecutionContext``: shapes, addresses, enqueue. Use from one thread at a time."""

    def __init__(self, engine: tensorrt.ICudaEngine, source: str) -> None:
        with capture() as cap:
            ctx = engine.create_execution_context()
        if ctx is None:
            raise EngineError(
                f"{source}: TensorRT could not create an execution context (out of GPU memory?): {cap.summary()}"
            )
        self._ctx: tensorrt.IExecutionContext | None = ctx
        self.source = source

    def _live(self) -> tensorrt.IExecutionContext:
        if self._ctx is None:
            raise EngineError(f"{self.source}: execution context is closed")
        return self._ctx

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> None:
        if not self._live().set_input_shape(name, trt_dims(shape)):
            raise EngineError(f"{self.source}: input {name} shape {shape} is outside the engine's profile")

    def set_tensor_address(self, name: str, pointer: int) -> None:
        if not self._live().set_tensor_address(name, int(pointer)):
            raise EngineError(f"{self.source}: TensorRT rejected the buffer address for {name}")

    def tensor_shape(self, name: str) -> tuple[int, ...]:
        return dims_of(self._live().get_tensor_shape(name))

    def execute_async(self, stream_handle: int) -> None:
        with capture() as cap:
            ok = self._live().execute_async_v3(int(stream_handle))
        if not ok:
            raise EngineError(f"{self.source}: TensorRT inference failed: {cap.summary()}")

    def close(self) -> None:
        self._ctx = None


def trt_dims(shape: tuple[int, ...]) -> tensorrt.Dims:
    import tensorrt as trt

    return trt.Dims(list(shape))


def dims_of(dims: tensorrt.Dims) -> tuple[int, ...]:
    """A TensorRT ``Dims`` as a tuple (-1 for dynamic axes)."""
    return tuple(int(dims[i]) for i in range(len(dims)))
