"""A simulated TensorRT runtime and CUDA driver, for running the backend's own logic on a CPU.

Each rule is the cited source's, nothing more; where a source leaves a result undefined the model
picks something a test can see, and says so. Passing here says our Python logic follows these
rules, nothing about TensorRT itself.

* Profiles (TensorRT 8.6, NvInferRuntime.h release/8.6:1752-1757): a new context "will call
  setOptimizationProfile(0) implicitly if there are no other execution contexts assigned to
  optimization profile 0"; a context without a profile fails ``set_input_shape`` here. 10.x: every
  context gets profile 0 (release/10.3:2610-2616, "will be assigned optimization profile 0").
* Streams (CUDA runtime API: cudaMemcpyAsync "is asynchronous with respect to the host",
  cudaStreamSynchronize "Blocks until stream has completed all operations"; TensorRT
  ``enqueueV3`` "Enqueue inference on a stream", release/10.3 NvInferRuntime.h): copies, kernels
  and graph launches are queued per stream and run, in order, only at a synchronisation of that
  stream (or an event recorded on it). A missing sync leaves host buffers stale.
* Capture (samples/common/sampleInference.cpp release/10.3:961-975: "Avoid capturing
  initialization calls by executing the enqueue function at least once before starting CUDA graph
  capture", "the enqueue call may return false if the current CUDA graph capture fails"): the first
  enqueue after a shape change returns False while the stream is capturing.
* Stale graphs (NVIDIA/TensorRT#3798): a graph captured before its context's shapes changed must
  not be replayed after; TensorRT does not say what such a replay computes: here it writes NaN,
  this model's marker for "undefined", so a test sees it.
* Memory: host and "device" allocations are numpy arrays; mapped memory has one address for both.
* Not modelled (no test may rest on them): event times (a constant), data types other than
  float32 (the toy engine has one float input and one float output), DLA, multiple devices.
"""

from __future__ import annotations

import ctypes
import itertools
import sys
import types
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from rtdetr_edge.backends import trt_logging
from rtdetr_edge.cuda import buffers

C, H, W = 3, 4, 4  # input [N, 3, 4, 4] float32 -> output "total" [N, 1] = 2 x sum per image


def _view(ptr: int, count: int) -> np.ndarray:
    return np.ctypeslib.as_array((ctypes.c_float * count).from_address(ptr))


class FakeEngineObject:
    """An ``ICudaEngine`` with input ``images`` [-1,3,4,4] (profile 1..4) and output ``total`` [-1,1]."""

    def __init__(self, version: str, dynamic: bool = True) -> None:
        self.version, self.dynamic = version, dynamic
        self.contexts = 0
        self.num_io_tensors = 2
        self.live: weakref.WeakSet[FakeContext] = weakref.WeakSet()  # contexts not yet destroyed

    def get_tensor_name(self, i: int) -> str:
        return ("images", "total")[i]

    def get_tensor_mode(self, name: str) -> str:
        return "input" if name == "images" else "output"

    def get_tensor_shape(self, name: str) -> list[int]:
        b = -1 if self.dynamic else 2
        return [b, C, H, W] if name == "images" else [b, 1]

    def get_tensor_profile_shape(self, name: str, profile: int) -> tuple[list[int], list[int], list[int]]:
        return [1, C, H, W], [1, C, H, W], [4, C, H, W]

    def get_tensor_dtype(self, name: str) -> str:
        return "float32"

    # ICudaEngine::getDeviceMemorySizeV2 (NvInferRuntime.h release/10.3:2725): any size; recorded only
    device_memory_size_v2 = 4096

    def create_execution_context(self, strategy: str = "STATIC") -> FakeContext:
        self.contexts += 1
        shares = int(self.version.split(".")[0]) >= 10 or not self.dynamic
        # 8.6: profile 0 only if no live context holds it (release/8.6:1752-1757)
        free = not any(c.profile == 0 for c in self.live)
        ctx = FakeContext(self, profile=0 if (shares or free) else None)
        self.live.add(ctx)
        ctx.strategy = strategy  # recorded: what the runtime asked for (kSTATIC is the default, 10.3:2612-2622)
        return ctx


class FakeContext:
    ids = itertools.count()

    def __init__(self, engine: FakeEngineObject, profile: int | None) -> None:
        self.engine, self.profile = engine, profile
        self.batch = 0 if engine.dynamic else 2
        self.state = next(self.ids)  # changes on every shape change
        self.addresses: dict[str, int] = {}
        self.shape_sets = 0
        self.initialised = -1  # the state the last plain enqueue ran in (sampleInference.cpp:961-975)
        self.strategy = "STATIC"
        self.device_memory: tuple[int, int] | None = None  # (pointer, size) given by set_device_memory

    def set_device_memory(self, memory: int, size: int) -> None:
        # IExecutionContext::setDeviceMemoryV2 (NvInferRuntime.h release/10.3:3691): recorded only
        self.device_memory = (memory, size)

    def set_input_shape(self, name: str, dims: list[int]) -> bool:
        if self.profile is None:
            return False
        if dims[0] != self.batch:
            self.batch, self.state = dims[0], next(self.ids)
        self.shape_sets += 1
        return True

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.addresses[name] = ptr
        return True

    def get_tensor_shape(self, name: str) -> list[int]:
        return [self.batch, C, H, W] if name == "images" else [self.batch, 1]

    def execute_async_v3(self, stream: int) -> bool:
        work = self.enqueue()
        if CAPTURING:
            if self.initialised != self.state:  # initialisation work cannot be captured
                return False
            CAPTURING[-1].append(work)
        else:
            self.initialised = self.state
            queue(stream, work)
        return True

    def enqueue(self) -> Callable[[], None]:
        """The kernels of one enqueue, bound to this context's state and shape now."""
        state, n = self.state, self.batch
        src, dst = self.addresses["images"], self.addresses["total"]

        def kernels() -> None:
            x = _view(src, n * C * H * W).reshape(n, -1)
            out = _view(dst, n)
            out[:] = np.nan if self.state != state else 2 * x.sum(axis=1)  # stale graph: garbage

        return kernels


CAPTURING: list[list[Callable[[], None]]] = []
STREAMS: dict[int, list[Callable[[], object]]] = {}  # handle -> work queued and not yet run
HANDLES = itertools.count(1000)


def queue(stream: int, work: Callable[[], object]) -> None:
    """Queue ``work`` on stream ``stream`` (runs at the stream's next synchronisation)."""
    STREAMS.setdefault(int(stream), []).append(work)


def run_queued(stream: int) -> None:
    """Run what stream ``stream`` has queued, in order (cudaStreamSynchronize)."""
    pending = STREAMS.get(int(stream), [])
    while pending:
        pending.pop(0)()


class FakeDriver(buffers._Driver):
    """CUDA on numpy: pinned device memory is a second array, mapped memory is the host array."""

    name = "fake-cuda"

    def __init__(
        self, integrated: bool = True, fail_capture: bool = False, sm_count: int = 16, memory_gib: int = 61
    ) -> None:
        self.integrated, self.fail_capture = integrated, fail_capture
        self.sm_count, self.memory = sm_count, memory_gib * 2**30  # an AGX Orin 64 GB reports "Orin", 16 SMs
        self.keep: dict[int, np.ndarray] = {}
        self.captures = 0
        self.launches = 0

    def device_count(self) -> int:
        return 1

    def properties(self, index: int) -> buffers.DeviceProperties:
        return buffers.DeviceProperties(index, "Orin", 8, 7, self.integrated, True, self.memory, self.sm_count)

    def set_device(self, index: int) -> None:
        pass

    def _alloc(self, nbytes: int) -> tuple[int, Any]:
        arr = np.zeros(nbytes, np.uint8)
        ptr = int(arr.ctypes.data)
        self.keep[ptr] = arr
        return ptr, None

    def host_alloc(self, nbytes: int, mapped: bool) -> tuple[int, Any]:
        return self._alloc(nbytes)

    def host_free(self, ptr: int, owner: Any) -> None:
        self.keep.pop(ptr, None)

    def mapped_device_pointer(self, ptr: int, owner: Any) -> int:
        return ptr

    def malloc(self, nbytes: int) -> tuple[int, Any]:
        return self._alloc(nbytes)

    def free(self, ptr: int, owner: Any) -> None:
        self.keep.pop(ptr, None)

    def htod(self, dst: int, src: int, src_owner: Any, nbytes: int, stream: Any) -> None:
        queue(stream, lambda: ctypes.memmove(dst, src, nbytes))

    def dtoh(self, dst: int, dst_owner: Any, src: int, nbytes: int, stream: Any) -> None:
        queue(stream, lambda: ctypes.memmove(dst, src, nbytes))

    def dtod(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        queue(stream, lambda: ctypes.memmove(dst, src, nbytes))

    def stream_create(self) -> tuple[Any, int]:
        handle = next(HANDLES)  # one handle per stream, as cudaStreamCreate gives
        return handle, handle

    def stream_sync(self, stream: Any) -> None:
        run_queued(stream)

    def stream_destroy(self, stream: Any) -> None:
        pass

    def event_create(self) -> Any:
        return [0.0]

    def event_record(self, event: Any, stream: Any) -> None:
        event[0] = stream  # the event completes when the work queued on its stream before it has run

    def event_sync(self, event: Any) -> None:
        run_queued(event[0])

    def event_elapsed_ms(self, start: Any, end: Any) -> float:
        return 0.5

    def event_destroy(self, event: Any) -> None:
        pass

    def graph_capture(self, stream: Any, body: Callable[[], None]) -> tuple[Any, Any]:
        CAPTURING.append([])
        try:
            body()
        finally:
            recorded = CAPTURING.pop()
        if self.fail_capture:
            from rtdetr_edge.errors import EngineError

            raise EngineError("TensorRT inference failed: operation not permitted when stream is capturing")
        self.captures += 1
        return recorded, recorded

    def graph_launch(self, graph_exec: Any, stream: Any) -> None:
        self.launches += 1
        for kernel in graph_exec:
            queue(stream, kernel)

    def graph_destroy(self, graph: Any, graph_exec: Any) -> None:
        pass


def install(monkeypatch: pytest.MonkeyPatch, version: str = "10.3.0.30", dynamic: bool = True) -> types.ModuleType:
    """Put a fake ``tensorrt`` into ``sys.modules`` (and a fresh process logger); returns it."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version  # type: ignore[attr-defined]
    trt.Builder = object  # type: ignore[attr-defined]
    trt.TensorIOMode = types.SimpleNamespace(INPUT="input", OUTPUT="output")  # type: ignore[attr-defined]
    trt.nptype = lambda dt: np.float32  # type: ignore[attr-defined]
    trt.Dims = list  # type: ignore[attr-defined]
    # ExecutionContextAllocationStrategy (NvInferRuntime.h release/10.3:2523-2525; 10.x only)
    trt.ExecutionContextAllocationStrategy = types.SimpleNamespace(  # type: ignore[attr-defined]
        STATIC="STATIC", ON_PROFILE_CHANGE="ON_PROFILE_CHANGE", USER_MANAGED="USER_MANAGED"
    )

    class ILogger:
        INTERNAL_ERROR, ERROR, WARNING, INFO = range(4)
        Severity = int

        def __init__(self) -> None:
            pass

    trt.ILogger = ILogger  # type: ignore[attr-defined]

    class Runtime:
        def __init__(self, logger: Any) -> None:
            self.DLA_core = -1
            self.loaded = 0

        def deserialize_cuda_engine(self, plan: bytes) -> FakeEngineObject | None:
            self.loaded += 1
            return None if plan.startswith(b"bad") else FakeEngineObject(version, dynamic)

    trt.Runtime = Runtime  # type: ignore[attr-defined]

    class IInt8Calibrator:
        def __init__(self) -> None:
            pass

    class IInt8EntropyCalibrator2(IInt8Calibrator):
        pass

    class IInt8LegacyCalibrator(IInt8Calibrator):
        pass

    trt.IInt8Calibrator = IInt8Calibrator  # type: ignore[attr-defined]
    trt.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2  # type: ignore[attr-defined]
    trt.IInt8LegacyCalibrator = IInt8LegacyCalibrator  # type: ignore[attr-defined]
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")  # type: ignore[attr-defined]
    trt.float32, trt.float16 = "f32", "f16"  # type: ignore[attr-defined]
    trt.LayerType = types.SimpleNamespace(CONSTANT="const")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(trt_logging, "_LOGGER", None)
    return trt


def builds_without_tensorrt(
    monkeypatch: pytest.MonkeyPatch, version: str = "10.3.0.30", driver: FakeDriver | None = None
) -> list[Any]:
    """Make ``engine_for_bundle``/``build_from_recipe`` run here: a fake ``tensorrt`` of ``version``, the fake
    CUDA driver (an AGX Orin unless ``driver`` says otherwise), and a builder that returns placeholder bytes
    instead of calling Polygraphy. Returns the list the recipes handed to the builder are appended to."""
    from rtdetr_edge.engine import builder

    install(monkeypatch, version)
    monkeypatch.setattr(buffers, "_DRIVER", driver or FakeDriver())
    built: list[Any] = []

    def build(r: Any, hints: Any, timing_cache: str | None = None) -> bytes:
        built.append(r)
        return f"plan from {r.source.file} ({r.tensorrt_version})".encode()

    monkeypatch.setattr(builder, "build_serialized_engine", build)
    return built
