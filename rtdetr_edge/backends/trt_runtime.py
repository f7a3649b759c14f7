"""TensorRT at run time: a deserialized engine, its execution contexts, and how each batch runs.

One of the three modules that import ``tensorrt`` (with :mod:`.trt_logging` and
:mod:`rtdetr_edge.engine.builder`); it is imported
inside each function after :func:`~.trt_logging.load_tensorrt` has checked it, so this module
imports anywhere and is type-checked against ``tensorrt-stubs``.

Execution contexts and optimisation profiles (NvInferRuntime.h of release/8.6 and 10.x,
``createExecutionContext``; NVIDIA/TensorRT#846): on TensorRT 8.x only the *first* context of
an engine with dynamic shapes gets profile 0; any other context needs a profile of its own,
and rtdetr-edge engines have one (profile sharing between contexts is the preview feature
``PROFILE_SHARING_0806``, off by default in 8.6). From TensorRT 10.0 sharing is on by default
(the flag is deprecated), so every context of an engine can use profile 0. :class:`Engine`
therefore gives every further context on 8.x its own deserialization of the same plan (the
first context of each engine gets profile 0), and shares the engine on 10.x or for static shapes.
Building N profiles instead would make every engine N times larger and slower to build for
the threads some users run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..engine_format import resolve_shape, version_tuple
from ..errors import EngineError
from .trt_logging import capture, load_tensorrt, logger

if TYPE_CHECKING:
    import tensorrt

log = logging.getLogger("rtdetr_edge")


def shares_memory(trt_version: str) -> bool:
    """Whether contexts can run in a caller's device-memory block here (TensorRT >= 10.1; see ExecutionContext)."""
    return version_tuple(trt_version) >= (10, 1)


def shares_profiles(trt_version: str, dynamic: bool) -> bool:
    """Whether a second execution context of one engine can use optimisation profile 0 (see module doc)."""
    return not dynamic or version_tuple(trt_version)[0] >= 10


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
    """A deserialized engine shared by the backends cloned from one another.

    Args:
        plan: the engine file's bytes.
        source: file name for messages.
        dla_core: DLA core the engine was built for (must be set before deserialising).

    :meth:`create_context` is safe from any thread (it holds a lock); each context is then used
    by one thread at a time. :meth:`retain`/:meth:`close` count the backends using the engine.
    """

    def __init__(self, plan: bytes, source: str = "engine", dla_core: int | None = None) -> None:
        load_tensorrt("running TensorRT engines")
        import tensorrt as trt

        self.source = source
        self.version = str(trt.__version__)
        self._runtime = trt.Runtime(logger())
        if dla_core is not None:
            self._runtime.DLA_core = int(dla_core)
        engine = self._deserialize(plan)
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
        dynamic = any(t.profile is not None for t in self.io)
        self.shares_profiles = shares_profiles(self.version, dynamic)
        # 8.x with dynamic shapes: later contexts need their own deserialization of the plan
        self._plan: bytes | None = None if self.shares_profiles else plan
        self._siblings: list[tensorrt.ICudaEngine] = []
        self._contexts = 0
        self._users = 1
        self._lock = threading.Lock()

    def _deserialize(self, plan: bytes) -> tensorrt.ICudaEngine:
        with capture() as cap:
            engine = self._runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise EngineError(
                f"{self.source}: TensorRT {self.version} could not load this engine ({len(plan)} bytes): "
                f"{cap.summary()}. The file may be truncated or corrupt, or built by another "
                "TensorRT version or for another GPU: rebuild it on this machine"
            )
        return engine

    @property
    def inputs(self) -> list[IOTensor]:
        return [t for t in self.io if t.is_input]

    @property
    def outputs(self) -> list[IOTensor]:
        return [t for t in self.io if not t.is_input]

    @property
    def copies(self) -> int:
        """How many deserializations of the plan are held (1, plus one per extra context on 8.x)."""
        return 1 + len(self._siblings)

    def batch_range(self) -> tuple[int, int]:
        """(min, max) batch of the first input (from profile 0 when dynamic)."""
        first = self.inputs[0]
        if first.profile is None:
            return (first.shape[0], first.shape[0])
        return (first.profile[0][0], first.profile[2][0])

    def create_context(self, memory: Callable[[int], int] | None = None) -> ExecutionContext:
        """A new execution context with optimisation profile 0 (see the module doc for how).

        Args:
            memory: ``memory(nbytes) -> device pointer``: the context runs in that block instead of
                reserving its own (contexts that never run at once share one; see
                :class:`ExecutionContext`). None: TensorRT's default STATIC allocation.
        """
        with self._lock:
            if self._engine is None:
                raise EngineError(f"{self.source}: engine is closed")
            engine = self._engine
            if self._contexts and self._plan is not None:
                engine = self._deserialize(self._plan)  # its first context gets profile 0
                self._siblings.append(engine)
                log.debug("%s: TensorRT %s context %d on its own engine copy", self.source, self.version, self.copies)
            else:
                self._contexts += 1
            return ExecutionContext(engine, self.source, memory, self.version)

    def retain(self) -> Engine:
        """One more user (a clone); each user calls :meth:`close` once."""
        with self._lock:
            if self._engine is None:
                raise EngineError(f"{self.source}: engine is closed")
            self._users += 1
        return self

    def close(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users <= 0:
                self._engine = None
                self._siblings.clear()
                self._plan = None


class ExecutionContext:
    """One ``IExecutionContext``: shapes, addresses, enqueue. Use from one thread at a time.

    Activation memory: by default TensorRT's STATIC strategy, one block per context sized for all
    profiles ("pre-allocate a block of device memory that is sufficient for all profiles",
    NvInferRuntime.h release/10.3:2610-2622). With ``memory`` (TensorRT >= 10.1) the context gets
    none of its own and runs in the caller's block, which contexts that never run at once may
    share: "using it in another execution context running in parallel ... will result in undefined
    behavior" (setDeviceMemoryV2, release/10.3:3677-3691); one stream orders them. The calls are
    those of NVIDIA's Polygraphy ``TrtRunner`` (``backend/trt/runner.py`` 0.53.6, lines 236-247 and
    472-505): ``create_execution_context(USER_MANAGED)`` (kUSER_MANAGED "The user supplies custom
    allocation", release/10.3:2523-2525), then ``set_device_memory(ptr, device_memory_size_v2)``
    (setDeviceMemoryV2 and getDeviceMemorySizeV2 came in 10.1: release/10.3:2725, 3691). TensorRT
    8.6 and 10.0 would need ``createExecutionContextWithoutDeviceMemory`` and the ``device_memory``
    attribute, which the 10.13 type stubs do not declare: there each context keeps its own block.
    """

    def __init__(
        self,
        engine: tensorrt.ICudaEngine,
        source: str,
        memory: Callable[[int], int] | None = None,
        trt_version: str = "10.1",
    ) -> None:
        import tensorrt as trt

        shared = memory is not None and shares_memory(trt_version)
        with capture() as cap:
            if shared:
                ctx = engine.create_execution_context(trt.ExecutionContextAllocationStrategy.USER_MANAGED)
            else:
                ctx = engine.create_execution_context()
        if ctx is None:
            raise EngineError(
                f"{source}: TensorRT could not create an execution context (out of GPU memory?): {cap.summary()}"
            )
        if shared and memory is not None:
            size = int(engine.device_memory_size_v2)
            ctx.set_device_memory(memory(size), size)
        self._ctx: tensorrt.IExecutionContext | None = ctx
        self._engine = engine  # the context must not outlive the engine it came from
        self.source = source

    def _live(self) -> tensorrt.IExecutionContext:
        if self._ctx is None:
            raise EngineError(f"{self.source}: execution context is closed")
        return self._ctx

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> None:
        with capture() as cap:
            ok = self._live().set_input_shape(name, trt_dims(shape))
        if not ok:
            raise EngineError(f"{self.source}: TensorRT rejected input {name} shape {shape}: {cap.summary()}")

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


class Context(Protocol):
    """What :class:`BatchRunner` needs of an execution context (:class:`ExecutionContext`)."""

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> None: ...
    def set_tensor_address(self, name: str, pointer: int) -> None: ...
    def tensor_shape(self, name: str) -> tuple[int, ...]: ...
    def execute_async(self, stream_handle: int) -> None: ...
    def close(self) -> None: ...


class Stream(Protocol):
    handle: int


class Graph(Protocol):
    """A captured CUDA graph (:class:`rtdetr_edge.cuda.buffers.CudaGraph`)."""

    def launch(self, stream: Any) -> None: ...
    def close(self) -> None: ...


@dataclass
class _Slot:
    """A context whose input shapes are set once, for one batch size, and its graph."""

    context: Context
    runs: int = 0
    graph: Graph | None = None
    no_graph: bool = False


@dataclass
class BatchRunner:
    """Which execution context runs a batch, and how: plain enqueue or CUDA graph replay.

    Without graphs, one context runs everything; its input shapes are set whenever the batch
    changes, and a plain enqueue after a shape change is always correct.

    With graphs (``capture`` given), each batch size gets a context of its own whose input shapes
    are set once and never change: TensorRT may change a context's internal state when its shapes
    change, so a graph captured before a change must not be replayed after it (NVIDIA/TensorRT#3798).
    On each such context the first call is a plain enqueue (TensorRT's deferred shape-dependent
    work runs outside any graph, and it gives that call's results), the second captures a graph and
    launches it, later ones replay it. A capture that fails (the enqueue raised, or CUDA refused the
    graph) is logged and that batch size runs plain enqueues from then on, as trtexec does
    (samples/common/sampleInference.cpp).

    Args:
        new_context: makes an execution context (:meth:`Engine.create_context`).
        inputs: the engine's inputs (shapes with -1 for the batch).
        capture: ``capture(stream, body) -> Graph`` records ``body`` into a CUDA graph; None: no graphs.
        source: file name for messages.
    """

    new_context: Callable[[], Context]
    inputs: list[IOTensor]
    capture: Callable[[Any, Callable[[], None]], Graph] | None = None
    source: str = "engine"
    captures: int = 0  # CUDA graphs captured (a rebind drops them; the next ones count too)
    launches: int = 0  # graph launches: the one right after each capture, then every replay
    _main: Context | None = None
    _batch: int = 0
    _slots: dict[int, _Slot] = field(default_factory=dict)
    _addresses: dict[str, int] = field(default_factory=dict)

    @property
    def graphs(self) -> int:
        """CUDA graphs captured and alive (one per batch size at most)."""
        return sum(1 for s in self._slots.values() if s.graph is not None)

    @property
    def contexts(self) -> int:
        return len(self._slots) if self.capture is not None else int(self._main is not None)

    def start(self) -> None:
        """Create the first context now, so that an engine that cannot run fails at load time."""
        if self._main is None:
            self._main = self.new_context()

    def bind(self, addresses: dict[str, int]) -> None:
        """Point every context at new buffers; graphs recorded the old pointers, so they go."""
        self._addresses = dict(addresses)
        self._drop_graphs()
        for ctx in self._all_contexts():
            self._point(ctx)

    def run(self, batch: int, stream: Stream) -> Context:
        """Run ``batch`` images on ``stream`` (queued, not synchronised); returns the context used."""
        if self.capture is None:
            ctx = self._main_context()
            if batch != self._batch:
                self._shape(ctx, batch)
                self._batch = batch
            ctx.execute_async(stream.handle)
            return ctx
        slot = self._slots.get(batch)
        if slot is None:
            slot = self._slots[batch] = _Slot(self._slot_context())
            self._shape(slot.context, batch)
        ctx = slot.context
        slot.runs += 1
        if slot.graph is None and not slot.no_graph and slot.runs >= 2:
            slot.graph = self._capture(slot, batch, stream)
        if slot.graph is not None:
            slot.graph.launch(stream)
            self.launches += 1
        else:
            ctx.execute_async(stream.handle)
        return ctx

    def close(self) -> None:
        self._drop_graphs()
        for ctx in self._all_contexts():
            ctx.close()
        self._slots.clear()
        self._main = None

    # --- internals --------------------------------------------------------------------------

    def _main_context(self) -> Context:
        self.start()
        if self._main is None:  # for the type checker: start() made it
            raise EngineError(f"{self.source}: no execution context")
        return self._main

    def _slot_context(self) -> Context:
        # the first batch size takes the context made at load time; later ones get new ones
        taken = any(s.context is self._main for s in self._slots.values())
        if self._main is not None and not taken:
            return self._main
        ctx = self.new_context()
        self._point(ctx)
        return ctx

    def _all_contexts(self) -> list[Context]:
        out = [s.context for s in self._slots.values()]
        if self._main is not None and all(c is not self._main for c in out):
            out.append(self._main)
        return out

    def _point(self, ctx: Context) -> None:
        for name, pointer in self._addresses.items():
            ctx.set_tensor_address(name, pointer)

    def _shape(self, ctx: Context, batch: int) -> None:
        for t in self.inputs:
            ctx.set_input_shape(t.name, resolve_shape(t.shape, batch, t.name))

    def _capture(self, slot: _Slot, batch: int, stream: Stream) -> Graph | None:
        if self.capture is None:
            return None
        ctx = slot.context
        try:
            graph = self.capture(stream, lambda: ctx.execute_async(stream.handle))
        except EngineError as exc:
            slot.no_graph = True
            log.warning(
                "%s: CUDA graph capture for batch %d failed (%s); that batch runs without a graph",
                self.source,
                batch,
                exc,
            )
            return None
        self.captures += 1
        log.debug("%s: captured a CUDA graph for batch %d", self.source, batch)
        return graph

    def _drop_graphs(self) -> None:
        for slot in self._slots.values():
            if slot.graph is not None:
                slot.graph.close()
                slot.graph = None
            slot.runs = 0  # the next call is a plain enqueue again, then a capture


def dla_cores() -> int:
    """DLA cores TensorRT can use on this device (0 on GPUs without DLA, e.g. T4, Orin Nano)."""
    load_tensorrt("querying DLA cores")
    import tensorrt as trt

    return int(trt.Runtime(logger()).num_DLA_cores)


def trt_dims(shape: tuple[int, ...]) -> tensorrt.Dims:
    import tensorrt as trt

    return trt.Dims(list(shape))


def dims_of(dims: tensorrt.Dims) -> tuple[int, ...]:
    """A TensorRT ``Dims`` as a tuple (-1 for dynamic axes)."""
    return tuple(int(dims[i]) for i in range(len(dims)))
