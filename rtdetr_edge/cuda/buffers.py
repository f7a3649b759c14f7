"""Pinned, mapped and device buffers, streams, events and CUDA graphs: the CUDA the runtime needs.

Built on cuda-python's runtime bindings (``from cuda.bindings import runtime``, or
``from cuda import cudart`` before cuda-python 12.6), as NVIDIA's current TensorRT samples are;
pycuda is the fallback where cuda-python is missing (no CUDA graphs there). Both are imported
on first use, so this module imports on machines without CUDA.

Threads and devices: CUDA work runs on the thread's current device. :func:`on_device` makes a
device current for a block (``cudaSetDevice`` with cuda-python; with pycuda the device's primary
context, the one TensorRT's runtime API uses, is pushed for the block and popped after it, so no
thread is left without a context and pycuda's context stack is empty at exit:
NVIDIA/TensorRT#2357, #1107).

Memory kinds (see :func:`choose_memory_kind`):

* ``mapped`` (zero-copy): page-locked host memory mapped into the GPU's address space
  (``cudaHostAlloc(cudaHostAllocMapped)`` + ``cudaHostGetDevicePointer``). On an integrated GPU
  (Jetson) host and GPU share DRAM, so preprocessing writes straight into what TensorRT reads:
  no copies. The runtime API maps host memory by default (``cudaDeviceMapHost`` is implicit).
* ``pinned``: page-locked host memory plus a device buffer, copied with ``cudaMemcpyAsync`` on
  one stream (discrete GPUs, where mapped memory would be read over PCIe by every kernel).

cuda-python ships no type stubs or ``py.typed``: its module is handled as ``Any`` in exactly one
place (:class:`_CudaPython`), behind typed methods.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from .._optional import available, require
from ..errors import EngineError, InputError, MissingDependencyError

log = logging.getLogger("rtdetr_edge")

MEMORY_KINDS = ("auto", "mapped", "pinned")
# cudaError_t values (CUDA runtime API, stable across 11.x-13.x)
CUDA_ERROR_INSUFFICIENT_DRIVER = 35
CUDA_ERROR_NO_DEVICE = 100


@dataclass(frozen=True)
class DeviceProperties:
    """What the runtime needs to know about a GPU."""

    index: int
    name: str
    major: int
    minor: int
    integrated: bool
    can_map_host_memory: bool
    total_memory: int = 0
    sm_count: int = 0  # multiProcessorCount: tells Jetson Orin modules apart (all are "Orin", sm 8.7)

    @property
    def compute_capability(self) -> str:
        return f"{self.major}.{self.minor}"


def choose_memory_kind(integrated: bool, can_map_host_memory: bool, requested: str = "auto") -> str:
    """``"mapped"`` (zero-copy) or ``"pinned"`` (host + device copies) for a device.

    ``auto`` maps on integrated GPUs that can map host memory (Jetson) and copies on discrete
    GPUs; ``mapped`` on a discrete GPU works but makes every kernel read over PCIe.
    """
    if requested not in MEMORY_KINDS:
        raise InputError(f"memory {requested!r}: expected one of {', '.join(MEMORY_KINDS)}")
    if requested == "mapped" and not can_map_host_memory:
        raise EngineError("memory='mapped': this GPU cannot map host memory (canMapHostMemory is 0); use 'pinned'")
    if requested != "auto":
        return requested
    return "mapped" if integrated and can_map_host_memory else "pinned"


class _Driver:
    """The few CUDA calls rtdetr-edge makes; pointers are ints, streams/events are opaque."""

    name = "none"
    load_failure = ""  # why the bindings could not load the NVIDIA driver library ("" if they could)

    def device_count(self) -> int:
        raise NotImplementedError

    def properties(self, index: int) -> DeviceProperties:
        raise NotImplementedError

    def set_device(self, index: int) -> None:
        raise NotImplementedError

    def host_alloc(self, nbytes: int, mapped: bool) -> tuple[int, Any]:
        raise NotImplementedError

    def host_free(self, ptr: int, owner: Any) -> None:
        raise NotImplementedError

    def mapped_device_pointer(self, ptr: int, owner: Any) -> int:
        raise NotImplementedError

    def malloc(self, nbytes: int) -> tuple[int, Any]:
        raise NotImplementedError

    def free(self, ptr: int, owner: Any) -> None:
        raise NotImplementedError

    def htod(self, dst: int, src: int, src_owner: Any, nbytes: int, stream: Any) -> None:
        raise NotImplementedError

    def dtoh(self, dst: int, dst_owner: Any, src: int, nbytes: int, stream: Any) -> None:
        raise NotImplementedError

    def dtod(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        raise NotImplementedError

    def versions(self) -> dict[str, str]:
        """CUDA driver / runtime / bindings versions, for reports (never raises)."""
        return {"bindings": self.name}

    @contextlib.contextmanager
    def activate(self, index: int) -> Iterator[None]:
        """Device ``index`` is current on this thread inside the block."""
        self.set_device(index)
        yield

    def stream_create(self) -> tuple[Any, int]:
        raise NotImplementedError

    def stream_sync(self, stream: Any) -> None:
        raise NotImplementedError

    def stream_destroy(self, stream: Any) -> None:
        raise NotImplementedError

    def event_create(self) -> Any:
        raise NotImplementedError

    def event_record(self, event: Any, stream: Any) -> None:
        raise NotImplementedError

    def event_sync(self, event: Any) -> None:
        raise NotImplementedError

    def event_elapsed_ms(self, start: Any, end: Any) -> float:
        raise NotImplementedError

    def event_destroy(self, event: Any) -> None:
        raise NotImplementedError

    def graph_capture(self, stream: Any, body: Callable[[], None]) -> tuple[Any, Any]:
        raise EngineError(f"CUDA graphs need cuda-python (running on {self.name}); pip install cuda-python")

    def graph_launch(self, graph_exec: Any, stream: Any) -> None:
        raise NotImplementedError

    def graph_destroy(self, graph: Any, graph_exec: Any) -> None:
        raise NotImplementedError


class _CudaPython(_Driver):
    """cuda-python runtime bindings: every call returns ``(cudaError_t, *values)``."""

    name = "cuda-python"

    def __init__(self, rt: Any) -> None:
        self.rt: Any = rt

    def _ok(self, result: Any, call: str) -> Any:
        err, values = result[0], tuple(result[1:])
        if int(err) != 0:
            raise EngineError(f"CUDA error in {call}: {self.error_name(err)} ({int(err)})")
        return values[0] if len(values) == 1 else values

    def error_name(self, err: Any) -> str:
        try:
            name = self.rt.cudaGetErrorName(err)[1]
            return name.decode() if isinstance(name, bytes) else str(name)
        except Exception:  # noqa: BLE001 - naming an error must never raise another
            return str(err)

    def device_count(self) -> int:
        # Only "no device" and "no driver at all" mean zero devices; a driver older than these
        # bindings (a CUDA 13 cuda-python on a CUDA 12 driver: cudaErrorInsufficientDriver with a
        # driver present) or any other error is a broken setup the user must hear about, not "no GPU"
        try:
            err, count = self.rt.cudaGetDeviceCount()
        except RuntimeError as exc:
            # No driver library: 12.9 and later return cudaErrorInsufficientDriver with driver version
            # 0 (below), but 12.6.x raises (reproduced with 12.6.2.post1, the version Dockerfile.jetson
            # pins). Its cuda/bindings/_bindings/cydriver.pyx, cuPythonInit (lines 470-490): the
            # first driver call raises RuntimeError('Failed to dlopen libcuda.so.1'), and as the
            # init flag is already set, every later one raises 'Function "cuInit" not found'
            # (_cuInit, lines 2682-2687). cudaGetDeviceCount needs only cuInit and cuDeviceGetCount,
            # which every driver has, so this RuntimeError means the driver cannot be loaded.
            self.load_failure = self.load_failure or str(exc)
            return 0
        code = int(err)
        if code == 0:
            return int(count)
        if code == CUDA_ERROR_NO_DEVICE:
            return 0
        if code == CUDA_ERROR_INSUFFICIENT_DRIVER:
            driver_version = self._version(self.rt.cudaDriverGetVersion)
            if driver_version == 0:  # CUDA documents 0 as "no driver installed"
                return 0
            raise EngineError(
                f"the NVIDIA driver supports CUDA {_cuda_text(driver_version)}, older than this cuda-python "
                f"({self.versions().get('runtime', '?')}) needs: install the cuda-python matching the driver's CUDA "
                f'major version (pip install "cuda-python=={driver_version // 1000}.*")'
            )
        raise EngineError(f"CUDA cannot count devices: {self.error_name(err)} ({code})")

    def _version(self, call: Callable[[], Any]) -> int:
        try:
            err, value = call()
        except RuntimeError as exc:  # cuda-python 12.6.x without a loadable driver (see device_count)
            self.load_failure = self.load_failure or str(exc)
            return 0  # CUDA's "no driver installed"
        except Exception:  # noqa: BLE001 - a version query must never raise
            return -1
        return int(value) if int(err) == 0 else -1

    def versions(self) -> dict[str, str]:
        out = {"bindings": f"cuda-python {_package_version('cuda-python', 'cuda-bindings')}"}
        out["driver"] = _cuda_text(self._version(self.rt.cudaDriverGetVersion))
        out["runtime"] = _cuda_text(self._version(self.rt.cudaRuntimeGetVersion))
        return out

    def properties(self, index: int) -> DeviceProperties:
        p = self._ok(self.rt.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
        name = p.name.split(b"\0", 1)[0].decode(errors="replace") if isinstance(p.name, bytes) else str(p.name)
        return DeviceProperties(
            index,
            name.strip(),
            int(p.major),
            int(p.minor),
            bool(p.integrated),
            bool(p.canMapHostMemory),
            int(p.totalGlobalMem),
            int(p.multiProcessorCount),
        )

    def set_device(self, index: int) -> None:
        self._ok(self.rt.cudaSetDevice(index), "cudaSetDevice")

    def host_alloc(self, nbytes: int, mapped: bool) -> tuple[int, Any]:
        flags = self.rt.cudaHostAllocMapped if mapped else self.rt.cudaHostAllocDefault
        return int(self._ok(self.rt.cudaHostAlloc(nbytes, flags), "cudaHostAlloc")), None

    def host_free(self, ptr: int, owner: Any) -> None:
        self._ok(self.rt.cudaFreeHost(ptr), "cudaFreeHost")

    def mapped_device_pointer(self, ptr: int, owner: Any) -> int:
        return int(self._ok(self.rt.cudaHostGetDevicePointer(ptr, 0), "cudaHostGetDevicePointer"))

    def malloc(self, nbytes: int) -> tuple[int, Any]:
        return int(self._ok(self.rt.cudaMalloc(nbytes), "cudaMalloc")), None

    def free(self, ptr: int, owner: Any) -> None:
        self._ok(self.rt.cudaFree(ptr), "cudaFree")

    def htod(self, dst: int, src: int, src_owner: Any, nbytes: int, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._ok(self.rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream), "cudaMemcpyAsync(H2D)")

    def dtoh(self, dst: int, dst_owner: Any, src: int, nbytes: int, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._ok(self.rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream), "cudaMemcpyAsync(D2H)")

    def dtod(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        self._ok(self.rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream), "cudaMemcpyAsync(D2D)")

    def stream_create(self) -> tuple[Any, int]:
        # non-blocking: no implicit sync with the legacy default stream other libraries may use
        s = self._ok(self.rt.cudaStreamCreateWithFlags(self.rt.cudaStreamNonBlocking), "cudaStreamCreateWithFlags")
        return s, int(s)

    def stream_sync(self, stream: Any) -> None:
        self._ok(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def stream_destroy(self, stream: Any) -> None:
        self._ok(self.rt.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def event_create(self) -> Any:
        return self._ok(self.rt.cudaEventCreate(), "cudaEventCreate")

    def event_record(self, event: Any, stream: Any) -> None:
        self._ok(self.rt.cudaEventRecord(event, stream), "cudaEventRecord")

    def event_sync(self, event: Any) -> None:
        self._ok(self.rt.cudaEventSynchronize(event), "cudaEventSynchronize")

    def event_elapsed_ms(self, start: Any, end: Any) -> float:
        return float(self._ok(self.rt.cudaEventElapsedTime(start, end), "cudaEventElapsedTime"))

    def event_destroy(self, event: Any) -> None:
        self._ok(self.rt.cudaEventDestroy(event), "cudaEventDestroy")

    def graph_capture(self, stream: Any, body: Callable[[], None]) -> tuple[Any, Any]:
        # thread-local mode: other threads' CUDA calls do not invalidate this capture
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._ok(self.rt.cudaStreamBeginCapture(stream, mode), "cudaStreamBeginCapture")
        failure: BaseException | None = None
        try:
            body()
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after the capture is ended
            failure = exc
        # the capture is always ended (else the stream stays in capture mode and every later call
        # on it fails); when the body failed, its error is what the caller hears, not EndCapture's
        # (which then only says the capture was invalidated), and a partial graph is destroyed
        err, graph = self.rt.cudaStreamEndCapture(stream)
        if failure is not None:
            if int(err) == 0 and graph is not None:
                self.rt.cudaGraphDestroy(graph)
            self.rt.cudaGetLastError()  # capture errors are not sticky: clear it for the next call
            raise failure
        if int(err) != 0:
            self.rt.cudaGetLastError()
            raise EngineError(f"CUDA error in cudaStreamEndCapture: {self.error_name(err)} ({int(err)})")
        try:  # CUDA >= 12 bindings: cudaGraphInstantiate(graph, flags) -> (err, graphExec)
            result = self.rt.cudaGraphInstantiate(graph, 0)
        except TypeError:  # CUDA 11 bindings took a log buffer there; WithFlags is 11.4+
            result = self.rt.cudaGraphInstantiateWithFlags(graph, 0)
        if int(result[0]) != 0:
            self.rt.cudaGraphDestroy(graph)
        graph_exec = self._ok(result, "cudaGraphInstantiate")
        return graph, graph_exec

    def graph_launch(self, graph_exec: Any, stream: Any) -> None:
        self._ok(self.rt.cudaGraphLaunch(graph_exec, stream), "cudaGraphLaunch")

    def graph_destroy(self, graph: Any, graph_exec: Any) -> None:
        self._ok(self.rt.cudaGraphExecDestroy(graph_exec), "cudaGraphExecDestroy")
        self._ok(self.rt.cudaGraphDestroy(graph), "cudaGraphDestroy")


class _PyCuda(_Driver):
    """pycuda's driver API on each device's primary context (the one TensorRT's runtime API uses).

    The primary context is retained once per device and pushed around every call (and around
    :meth:`activate` blocks), then popped: each thread gets a current context when it needs one,
    and pycuda's context stack is empty when the process exits (it aborts otherwise).
    """

    name = "pycuda"

    def __init__(self, drv: Any) -> None:
        self.drv: Any = drv
        self._primary: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._local = threading.local()  # .device: this thread's device (0 until set)
        try:
            drv.init()
        except Exception as exc:
            raise EngineError(f"CUDA initialisation failed (pycuda): {exc}") from exc

    def _context(self, index: int) -> Any:
        with self._lock:
            ctx = self._primary.get(index)
            if ctx is None:
                try:
                    ctx = self._primary[index] = self.drv.Device(index).retain_primary_context()
                except self.drv.Error as exc:
                    raise EngineError(f"CUDA error in cuDevicePrimaryCtxRetain (device {index}): {exc}") from exc
            return ctx

    @contextlib.contextmanager
    def activate(self, index: int | None = None) -> Iterator[None]:
        """The primary context of ``index`` (default: this thread's device) is current in the block."""
        device = getattr(self._local, "device", 0) if index is None else index
        ctx = self._context(device)
        previous = getattr(self._local, "device", 0)
        self._local.device = device
        ctx.push()
        try:
            yield
        finally:
            self.drv.Context.pop()
            self._local.device = previous

    def _call(self, fn: Callable[[], Any], call: str) -> Any:
        with self.activate():
            try:
                return fn()
            except self.drv.Error as exc:
                raise EngineError(f"CUDA error in {call}: {exc}") from exc

    def device_count(self) -> int:
        try:
            return int(self.drv.Device.count())
        except self.drv.Error:
            return 0

    def versions(self) -> dict[str, str]:
        out = {"bindings": f"pycuda {_package_version('pycuda')}"}
        with contextlib.suppress(Exception):
            out["driver"] = _cuda_text(int(self.drv.get_driver_version()))
        return out

    def properties(self, index: int) -> DeviceProperties:
        d = self._call(lambda: self.drv.Device(index), "cuDeviceGet")
        attr = self.drv.device_attribute
        major, minor = d.compute_capability()
        return DeviceProperties(
            index,
            str(d.name()),
            int(major),
            int(minor),
            bool(d.get_attribute(attr.INTEGRATED)),
            bool(d.get_attribute(attr.CAN_MAP_HOST_MEMORY)),
            int(d.total_memory()),
            int(d.get_attribute(attr.MULTIPROCESSOR_COUNT)),
        )

    def set_device(self, index: int) -> None:
        self._context(index)  # a bad index fails here, with the device named
        self._local.device = index

    def host_alloc(self, nbytes: int, mapped: bool) -> tuple[int, Any]:
        flags = self.drv.host_alloc_flags.DEVICEMAP if mapped else 0
        arr = self._call(lambda: self.drv.pagelocked_empty(nbytes, np.uint8, mem_flags=flags), "cuMemHostAlloc")
        return int(arr.ctypes.data), arr

    def host_free(self, ptr: int, owner: Any) -> None:
        self._call(owner.base.free, "cuMemFreeHost")

    def mapped_device_pointer(self, ptr: int, owner: Any) -> int:
        return int(self._call(owner.base.get_device_pointer, "cuMemHostGetDevicePointer"))

    def malloc(self, nbytes: int) -> tuple[int, Any]:
        alloc = self._call(lambda: self.drv.mem_alloc(nbytes), "cuMemAlloc")
        return int(alloc), alloc

    def free(self, ptr: int, owner: Any) -> None:
        self._call(owner.free, "cuMemFree")

    def htod(self, dst: int, src: int, src_owner: Any, nbytes: int, stream: Any) -> None:
        self._call(lambda: self.drv.memcpy_htod_async(dst, src_owner[:nbytes], stream), "cuMemcpyHtoDAsync")

    def dtoh(self, dst: int, dst_owner: Any, src: int, nbytes: int, stream: Any) -> None:
        self._call(lambda: self.drv.memcpy_dtoh_async(dst_owner[:nbytes], src, stream), "cuMemcpyDtoHAsync")

    def dtod(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        self._call(lambda: self.drv.memcpy_dtod_async(dst, src, nbytes, stream), "cuMemcpyDtoDAsync")

    def stream_create(self) -> tuple[Any, int]:
        s = self._call(self.drv.Stream, "cuStreamCreate")
        return s, int(s.handle)

    def stream_sync(self, stream: Any) -> None:
        self._call(stream.synchronize, "cuStreamSynchronize")

    def stream_destroy(self, stream: Any) -> None:
        pass  # pycuda frees streams when the object goes away

    def event_create(self) -> Any:
        return self._call(self.drv.Event, "cuEventCreate")

    def event_record(self, event: Any, stream: Any) -> None:
        self._call(lambda: event.record(stream), "cuEventRecord")

    def event_sync(self, event: Any) -> None:
        self._call(event.synchronize, "cuEventSynchronize")

    def event_elapsed_ms(self, start: Any, end: Any) -> float:
        return float(self._call(lambda: end.time_since(start), "cuEventElapsedTime"))

    def event_destroy(self, event: Any) -> None:
        pass


def _cuda_text(version: int) -> str:
    """CUDA's version integer (1000 x major + 10 x minor) as ``12.6``; ``?`` when unknown."""
    if version < 0:
        return "?"
    if version == 0:
        return "none"
    return f"{version // 1000}.{version % 1000 // 10}"


def _package_version(*names: str) -> str:
    from importlib import metadata

    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            return metadata.version(name)
    return "?"


_DRIVER: _Driver | None = None


def driver() -> _Driver:
    """The CUDA bindings in use: cuda-python if importable, else pycuda (imported once)."""
    global _DRIVER
    if _DRIVER is None:
        if available("cuda.bindings.runtime"):
            _DRIVER = _CudaPython(require("cuda.bindings.runtime"))
        elif available("cuda.cudart"):  # cuda-python < 12.6 layout
            _DRIVER = _CudaPython(require("cuda.cudart"))
        elif available("pycuda.driver"):
            _DRIVER = _PyCuda(require("pycuda.driver"))
        else:
            raise MissingDependencyError(
                "CUDA Python bindings are needed for the TensorRT runtime but neither cuda-python nor pycuda can "
                'be imported. Install one: pip install "rtdetr-edge[trt]" (cuda-python matching your CUDA '
                "major version) or pip install pycuda"
            )
    return _DRIVER


@contextlib.contextmanager
def bindings(drv: _Driver) -> Iterator[None]:
    """Make ``drv`` the runtime's CUDA bindings inside the block (the self-test runs TensorRT on pycuda).

    Not for concurrent use: it swaps the process-wide choice. Buffers, streams and events made inside
    keep ``drv`` for their whole life.
    """
    global _DRIVER
    saved, _DRIVER = _DRIVER, drv
    try:
        yield
    finally:
        _DRIVER = saved


def device_count() -> int:
    """Number of CUDA devices: 0 without CUDA bindings, driver or GPU.

    Raises:
        EngineError: the CUDA setup is broken (e.g. a driver older than the bindings need), with
            what to install; that is not "no GPU".
    """
    try:
        return driver().device_count()
    except MissingDependencyError:
        return 0


@dataclass(frozen=True)
class CudaStatus:
    """What a report says about CUDA here: versions, devices, and why there are none."""

    versions: dict[str, str]
    devices: int
    reason: str = ""


def cuda_status() -> CudaStatus:
    """CUDA bindings, driver and runtime versions and the device count; never raises."""
    try:
        drv = driver()
    except (MissingDependencyError, EngineError) as exc:
        return CudaStatus({}, 0, str(exc))
    versions = drv.versions()
    try:
        count = drv.device_count()
    except EngineError as exc:
        return CudaStatus(versions, 0, str(exc))
    reason = "" if count else f"no CUDA device (NVIDIA driver: {versions.get('driver', '?')})"
    if not count and drv.load_failure:
        reason = f"no CUDA device (NVIDIA driver: none; cuda-python: {drv.load_failure})"
    return CudaStatus(versions, count, reason)


def device_properties(index: int = 0) -> DeviceProperties:
    """Properties of CUDA device ``index``; :class:`EngineError` if there is no such device."""
    count = device_count()
    if index >= count:
        found = f"{count} CUDA device(s)" if count else "no CUDA device (no NVIDIA driver or GPU)"
        raise EngineError(f"CUDA device {index} is not available: found {found}")
    return driver().properties(index)


def set_device(index: int = 0) -> None:
    """Make device ``index`` this thread's device (each thread starts on device 0)."""
    driver().set_device(index)


@contextlib.contextmanager
def on_device(index: int = 0) -> Iterator[None]:
    """Device ``index`` is current on this thread inside the block (TensorRT calls go in one)."""
    with driver().activate(index):
        yield


def copy_device(dst_ptr: int, src_ptr: int, nbytes: int, stream: Stream) -> None:
    """Queue a device-to-device copy of ``nbytes`` on ``stream``."""
    driver().dtod(dst_ptr, src_ptr, nbytes, stream.obj)


class Stream:
    """A non-blocking CUDA stream; ``handle`` is the int TensorRT's ``execute_async_v3`` takes."""

    def __init__(self) -> None:
        self._drv = driver()
        self.obj, self.handle = self._drv.stream_create()
        self._closed = False

    def synchronize(self) -> None:
        self._drv.stream_sync(self.obj)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._drv.stream_destroy(self.obj)


class Event:
    """A CUDA event for ordering and timing work on streams."""

    def __init__(self) -> None:
        self._drv = driver()
        self.obj = self._drv.event_create()
        self._closed = False

    def record(self, stream: Stream) -> None:
        self._drv.event_record(self.obj, stream.obj)

    def synchronize(self) -> None:
        self._drv.event_sync(self.obj)

    @staticmethod
    def elapsed_ms(start: Event, end: Event) -> float:
        """GPU milliseconds between two recorded events (``end`` must have completed)."""
        return start._drv.event_elapsed_ms(start.obj, end.obj)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._drv.event_destroy(self.obj)


class HostDeviceBuffer:
    """A host-visible numpy array and the device pointer the GPU reads/writes for it.

    Args:
        shape: array shape (the capacity; use ``host[:n]`` for smaller batches).
        dtype: numpy dtype.
        kind: ``"mapped"`` (zero-copy: ``device_ptr`` aliases the host memory) or ``"pinned"``
            (page-locked host memory + a device buffer; call :meth:`to_device`/:meth:`to_host`).

    ``host`` stays valid until :meth:`close`; arrays derived from it must not be used after.
    """

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype[Any] | type, kind: str = "pinned") -> None:
        if kind not in ("mapped", "pinned"):
            raise InputError(f"buffer kind {kind!r}: expected 'mapped' or 'pinned'")
        self._drv = driver()
        self.kind = kind
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        count = 1
        for d in self.shape:
            count *= d
        self.nbytes = count * self.dtype.itemsize
        alloc = max(self.nbytes, 1)
        self.host_ptr, self._host_owner = self._drv.host_alloc(alloc, mapped=kind == "mapped")
        self._dev_owner: Any = None
        try:
            if kind == "mapped":
                self.device_ptr = self._drv.mapped_device_pointer(self.host_ptr, self._host_owner)
            else:
                self.device_ptr, self._dev_owner = self._drv.malloc(alloc)
        except BaseException:
            self._drv.host_free(self.host_ptr, self._host_owner)
            raise
        raw = (ctypes.c_ubyte * alloc).from_address(self.host_ptr)
        self.host: np.ndarray = (
            np.frombuffer(memoryview(raw), np.uint8, count=self.nbytes).view(self.dtype).reshape(self.shape)
        )
        self._closed = False

    @property
    def zero_copy(self) -> bool:
        return self.kind == "mapped"

    def to_device(self, stream: Stream, nbytes: int | None = None) -> None:
        """Queue host -> device for the first ``nbytes`` (all by default); no-op when mapped."""
        if not self.zero_copy:
            self._drv.htod(self.device_ptr, self.host_ptr, self._host_owner, self._span(nbytes), stream.obj)

    def to_host(self, stream: Stream, nbytes: int | None = None) -> None:
        """Queue device -> host for the first ``nbytes``; no-op when mapped (sync the stream first)."""
        if not self.zero_copy:
            self._drv.dtoh(self.host_ptr, self._host_owner, self.device_ptr, self._span(nbytes), stream.obj)

    def _span(self, nbytes: int | None) -> int:
        n = self.nbytes if nbytes is None else int(nbytes)
        if not 0 <= n <= self.nbytes:
            raise InputError(f"copy of {n} bytes does not fit a {self.nbytes}-byte buffer")
        return n

    def close(self) -> None:
        """Free device and host memory (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.host = np.empty((0,), self.dtype)  # drop the view before its memory goes
        if self.kind == "pinned":
            self._drv.free(self.device_ptr, self._dev_owner)
        self._drv.host_free(self.host_ptr, self._host_owner)

    def __del__(self) -> None:
        # best effort for forgotten buffers; never during interpreter shutdown (CUDA may be gone)
        if not getattr(self, "_closed", True) and not sys.is_finalizing():
            with contextlib.suppress(Exception):  # never raise from a finaliser
                self.close()

    def __enter__(self) -> HostDeviceBuffer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HostDeviceBuffer({self.shape}, {self.dtype}, kind={self.kind!r})"


class DeviceMemory:
    """A plain device allocation of ``nbytes`` (e.g. the activation memory execution contexts share)."""

    def __init__(self, nbytes: int) -> None:
        self._drv = driver()
        self.nbytes = int(nbytes)
        self.ptr, self._owner = self._drv.malloc(max(self.nbytes, 1))
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._drv.free(self.ptr, self._owner)


class CudaGraph:
    """Work captured once on a stream and replayed with one launch (cuda-python only).

    Capture requires every pointer and shape used by ``body`` to stay fixed for the graph's life.
    """

    def __init__(self, stream: Stream, body: Callable[[], None]) -> None:
        self._drv = driver()
        self.graph, self.exec = self._drv.graph_capture(stream.obj, body)
        self._closed = False

    def launch(self, stream: Stream) -> None:
        self._drv.graph_launch(self.exec, stream.obj)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._drv.graph_destroy(self.graph, self.exec)
