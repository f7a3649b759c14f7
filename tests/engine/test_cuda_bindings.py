"""The CUDA binding wrappers with stand-in bindings (no GPU): device counting errors, pycuda's context
stack across threads, and a CUDA graph capture whose body fails.
"""

from __future__ import annotations

import ctypes
import threading
import types
from typing import Any

import numpy as np
import pytest

from rtdetr_edge.cuda import buffers
from rtdetr_edge.errors import EngineError


class FakeRuntime:
    """cuda-python's runtime module as far as counting devices and capturing graphs go."""

    class cudaStreamCaptureMode:
        cudaStreamCaptureModeThreadLocal = 2

    def __init__(self, count_error: int = 0, count: int = 1, driver: int = 12060) -> None:
        self.count_error, self.count, self.driver = count_error, count, driver
        self.calls: list[str] = []
        self.end_error = 0

    def cudaGetDeviceCount(self) -> tuple[int, int | None]:
        # cuda-python >= 12.9 returns codes here; without a driver (35, None) with driver version 0
        # (run on this machine with 12.9.10 and 13.4.4). 12.6.x raises instead: Cuda1262NoDriver
        return (self.count_error, None if self.count_error else self.count)

    def cudaDriverGetVersion(self) -> tuple[int, int]:
        return (0, self.driver)

    def cudaRuntimeGetVersion(self) -> tuple[int, int]:
        return (0, 13000)

    def cudaGetErrorName(self, err: Any) -> tuple[int, bytes]:
        return (0, f"cudaError{int(err)}".encode())

    def cudaStreamBeginCapture(self, stream: Any, mode: int) -> tuple[int]:
        self.calls.append("begin")
        return (0,)

    def cudaStreamEndCapture(self, stream: Any) -> tuple[int, Any]:
        # on an error cuda-python 12.9+ returns (err, None) (runtime.pyx of 12.9.10, cudaStreamEndCapture:
        # `return (_cudaError_t(err), None)`); 12.6.2.post1 returns the NULL graph object instead
        # (runtime.pyx:15805-15806): graph_capture touches the graph only when err is 0, so both are fine
        self.calls.append("end")
        return (self.end_error, None if self.end_error else "graph")

    def cudaGraphDestroy(self, graph: Any) -> tuple[int]:
        self.calls.append(f"destroy {graph}")
        return (0,)

    def cudaGetLastError(self) -> tuple[int]:
        self.calls.append("clear")
        return (0,)

    def cudaGraphInstantiate(self, graph: Any, flags: int) -> tuple[int, Any]:
        self.calls.append("instantiate")
        return (0, "exec")


@pytest.mark.parametrize(
    "error, driver, expected",
    [
        (0, 12060, 1),
        (100, 12060, 0),  # cudaErrorNoDevice
        (35, 0, 0),  # cudaErrorInsufficientDriver and no driver installed: this CPU machine
        (35, 12020, 'the NVIDIA driver supports CUDA 12.2, older than this cuda-python .*"cuda-python==12\\.\\*"'),
        (3, 12060, "CUDA cannot count devices: cudaError3 \\(3\\)"),  # e.g. cudaErrorInitializationError
    ],
)
def test_device_count_tells_no_gpu_from_a_broken_setup(error: int, driver: int, expected: int | str) -> None:
    drv = buffers._CudaPython(FakeRuntime(count_error=error, driver=driver))
    if isinstance(expected, int):
        assert drv.device_count() == expected
    else:
        with pytest.raises(EngineError, match=expected):
            drv.device_count()


def test_cuda_status_reports_a_broken_setup_without_raising(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buffers, "_DRIVER", buffers._CudaPython(FakeRuntime(count_error=35, driver=12020)))
    status = buffers.cuda_status()
    assert status.devices == 0 and "older than this cuda-python" in status.reason
    assert status.versions["driver"] == "12.2" and status.versions["runtime"] == "13.0"
    from rtdetr_edge.backends import trt_logging

    monkeypatch.setattr(trt_logging, "load_tensorrt", lambda purpose="": None)
    assert trt_logging.tensorrt_usable() is False  # auto backend: warned, then ONNX Runtime


class Cuda1262NoDriver:
    """cuda-python 12.6.2.post1's runtime module on a host whose ``libcuda.so.1`` cannot be loaded.

    Its ``cuda/bindings/_bindings/cydriver.pyx`` (the wheel ships the .pyx): ``cuPythonInit``
    (lines 470-490) sets its init flag, then raises ``RuntimeError('Failed to dlopen libcuda.so.1')``;
    every later driver call finds its function pointer NULL and raises
    ``RuntimeError('Function "cuInit" not found')`` (``_cuInit``, lines 2682-2687; the same for
    each driver function). ``cudaRuntimeGetVersion`` returns the bindings' own CUDART_VERSION
    without the driver (``_lib/cyruntime/cyruntime.pyx``). Reproduced on this machine: the first
    call raised the dlopen error, the later ones "not found".
    """

    def __init__(self) -> None:
        self.initialised = False

    def _driver_call(self, function: str) -> Any:
        if not self.initialised:
            self.initialised = True
            raise RuntimeError("Failed to dlopen libcuda.so.1")
        raise RuntimeError(f'Function "{function}" not found')

    def cudaGetDeviceCount(self) -> Any:
        return self._driver_call("cuInit")  # lazyInitDriver: cuInit first

    def cudaDriverGetVersion(self) -> Any:
        return self._driver_call("cuDriverGetVersion")

    def cudaRuntimeGetVersion(self) -> tuple[int, int]:
        return (0, 12060)


@pytest.mark.parametrize("first", ["cudaGetDeviceCount", "cudaDriverGetVersion"])
def test_cuda_python_12_6_without_a_driver_counts_no_device(first: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """12.6.2.post1 raises where 12.9+ return cudaErrorInsufficientDriver: still "no CUDA device"."""
    rt = Cuda1262NoDriver()
    drv = buffers._CudaPython(rt)
    if first == "cudaDriverGetVersion":
        assert drv.versions()["driver"] == "none"
    assert drv.device_count() == 0 and drv.device_count() == 0  # the first and the later error
    monkeypatch.setattr(buffers, "_DRIVER", drv)
    status = buffers.cuda_status()
    assert status.devices == 0 and status.versions["driver"] == "none" and status.versions["runtime"] == "12.6"
    assert status.reason == "no CUDA device (NVIDIA driver: none; cuda-python: Failed to dlopen libcuda.so.1)"
    assert buffers.device_count() == 0
    with pytest.raises(EngineError, match="CUDA device 0 is not available: found no CUDA device"):
        buffers.device_properties(0)


def test_auto_detector_falls_back_to_onnxruntime_with_one_warning_under_cuda_python_12_6(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """TensorRT installed, no driver (a container without ``--runtime nvidia``): ONNX Runtime, one warning."""
    from rtdetr_edge import Detector, detector, selftest
    from rtdetr_edge.backends import trt_logging
    from rtdetr_edge.backends.onnxruntime import OnnxRuntimeBackend

    monkeypatch.setattr(buffers, "_DRIVER", buffers._CudaPython(Cuda1262NoDriver()))
    monkeypatch.setattr(detector, "tensorrt_available", lambda: True)
    monkeypatch.setattr(trt_logging, "load_tensorrt", lambda purpose="": None)
    with caplog.at_level("WARNING", logger="rtdetr_edge"):
        det = Detector(selftest.DATA / "bundle")
    assert isinstance(det.backend, OnnxRuntimeBackend)
    assert [r.getMessage() for r in caplog.records] == [
        "TensorRT is installed but CUDA device 0 is not usable (no CUDA device (NVIDIA driver: none; "
        "cuda-python: Failed to dlopen libcuda.so.1)): running ONNX Runtime"
    ]
    det.close()


def test_selftest_exits_0_under_cuda_python_12_6_without_a_driver(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from rtdetr_edge import selftest

    monkeypatch.setattr(buffers, "_DRIVER", buffers._CudaPython(Cuda1262NoDriver()))
    assert selftest.main(["--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out and "SKIP  cuda_pinned_round_trip" in out and "Failed to dlopen libcuda.so.1" in out


def test_a_failed_capture_is_ended_its_graph_dropped_and_the_body_error_kept() -> None:
    rt = FakeRuntime()
    drv = buffers._CudaPython(rt)

    def body() -> None:
        raise EngineError("TensorRT inference failed: enqueue during capture")

    with pytest.raises(EngineError, match="enqueue during capture"):
        drv.graph_capture("stream", body)
    assert rt.calls == ["begin", "end", "destroy graph", "clear"]  # ended, partial graph destroyed, error cleared
    rt.calls.clear()
    rt.end_error = 901  # cudaErrorStreamCaptureInvalidated, body fine
    with pytest.raises(EngineError, match="cudaStreamEndCapture"):
        drv.graph_capture("stream", lambda: None)
    assert rt.calls == ["begin", "end", "clear"]
    rt.calls.clear()
    rt.end_error = 0
    assert drv.graph_capture("stream", lambda: None) == ("graph", "exec")


class PageLocked(np.ndarray):
    """An array whose ``base`` is its allocation object, as pycuda's ``pagelocked_empty`` returns."""

    allocation: Any = None

    def __array_finalize__(self, obj: Any) -> None:
        self.allocation = getattr(obj, "allocation", None)

    @property
    def base(self) -> Any:
        return self.allocation


class FakePyCuda:
    """pycuda.driver with a per-thread context stack; every call checks that a context is current."""

    class Error(Exception):
        pass

    def __init__(self) -> None:
        self.local = threading.local()
        self.calls = 0
        fake = self

        class Context:
            def __init__(self, device: int) -> None:
                self.device = device

            def push(self) -> None:
                fake.stack().append(self)

            @staticmethod
            def pop() -> None:
                fake.stack().pop()

            @staticmethod
            def get_current() -> Any:
                return fake.get_current_context()

        class Device:
            def __init__(self, index: int) -> None:
                if index > 0:
                    raise fake.Error("invalid device ordinal")
                self.index = index

            @staticmethod
            def count() -> int:
                return 1

            def retain_primary_context(self) -> Context:
                return Context(self.index)

        class Stream:
            def __init__(self) -> None:
                fake.current()
                self.handle = 1234

            def synchronize(self) -> None:
                fake.current()

        class Alloc:
            def __init__(self, n: int) -> None:
                self.memory = np.zeros(n, np.uint8)

            def __int__(self) -> int:
                return int(self.memory.ctypes.data)

            def free(self) -> None:
                fake.current()

        self.Context, self.Device, self.Stream, self.Alloc = Context, Device, Stream, Alloc
        self.host_alloc_flags = types.SimpleNamespace(DEVICEMAP=2)

    def stack(self) -> list[Any]:
        if not hasattr(self.local, "stack"):
            self.local.stack = []
        stack: list[Any] = self.local.stack
        return stack

    def current(self) -> Any:
        self.calls += 1
        if not self.stack():
            raise self.Error("no current context")
        return self.stack()[-1]

    def init(self) -> None:
        pass

    def pagelocked_empty(self, n: int, dtype: Any, mem_flags: int = 0) -> np.ndarray:
        """Like pycuda: an ndarray whose ``.base`` is the page-locked allocation."""
        self.current()
        owner = self

        class HostAllocation:
            def free(self) -> None:
                owner.current()

            def get_device_pointer(self) -> int:
                owner.current()
                return int(arr.ctypes.data)

        arr = np.zeros(n, dtype).view(PageLocked)
        arr.allocation = HostAllocation()
        return arr

    def mem_alloc(self, n: int) -> Any:
        self.current()
        return self.Alloc(n)

    def memcpy_htod_async(self, dst: int, src: np.ndarray, stream: Any) -> None:
        self.current()
        ctypes.memmove(dst, src.ctypes.data, src.nbytes)

    def memcpy_dtoh_async(self, dst: np.ndarray, src: int, stream: Any) -> None:
        self.current()
        ctypes.memmove(dst.ctypes.data, src, dst.nbytes)

    def get_current_context(self) -> Any:
        return self.stack()[-1] if self.stack() else None


def test_pycuda_pushes_the_primary_context_per_call_in_every_thread_and_leaves_no_stack() -> None:
    fake = FakePyCuda()
    drv = buffers._PyCuda(fake)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            drv.set_device(0)
            ptr, owner = drv.host_alloc(64, mapped=True)
            assert drv.mapped_device_pointer(ptr, owner) == ptr  # the fake maps host memory in place
            dev, dev_owner = drv.malloc(64)
            stream, _handle = drv.stream_create()
            drv.htod(dev, ptr, owner, 64, stream)
            drv.stream_sync(stream)
            with drv.activate(0):  # a block for TensorRT calls: the context is current inside
                assert fake.stack()[-1].device == 0
            drv.free(dev, dev_owner)
            drv.host_free(ptr, owner)
            assert fake.stack() == []  # nothing left pushed on this thread
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    work()
    assert not errors, errors
    assert fake.calls >= 4 * 8
    assert len(drv._primary) == 1  # retained once, shared by the threads
    with pytest.raises(EngineError, match="device 1"):
        drv.set_device(1)
