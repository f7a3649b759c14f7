"""TensorRT backend: runs a serialized engine through TensorRT's tensor-name API.

Buffers come from :mod:`rtdetr_edge.cuda.buffers`: on an integrated GPU that can map host memory
(Jetson) inputs and outputs live in mapped page-locked memory, so the Detector's preprocessing
writes straight into what the GPU reads (``input_buffer`` returns that memory, no copies); on a
discrete GPU they are page-locked host buffers copied to and from device buffers on one stream.

Threads: a backend owns its execution context(s), one stream and one set of buffers, so calls
must not overlap; the Detector serialises them with its lock. For parallel inference give each
thread its own backend with :meth:`TensorRTBackend.clone`: a new context, stream and buffers on
the same engine on TensorRT >= 10 (contexts share the optimisation profile there), on its own
deserialization of the engine on 8.x (only an engine's first context gets the profile; see
:mod:`.trt_runtime`). Every call makes the backend's device current for the calling thread.

CUDA graphs (``TensorRTOptions(cuda_graph=True)``): one context and one graph per batch size, so
no graph is replayed after its context's shapes changed (:class:`~.trt_runtime.BatchRunner`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..contract import METADATA_KEY
from ..cuda import buffers
from ..engine_format import (
    DeviceIdentity,
    EngineMetadata,
    check_compatible,
    check_engine_file,
    load_sidecar,
    resolve_shape,
    volume,
)
from ..errors import EngineError, InputError
from . import trt_runtime
from .base import Backend, TensorSpec
from .options import TensorRTOptions
from .trt_logging import load_tensorrt, tensorrt_version

log = logging.getLogger("rtdetr_edge")


class TensorRTBackend(Backend):
    """Runs a TensorRT ``.engine`` built by rtdetr-edge (or any engine, without a contract).

    Args:
        path: the engine file; its sidecar ``<name>.json`` (written by rtdetr-edge) carries the
            TensorRT version, GPU and model contract and is checked before loading.
        options: :class:`~rtdetr_edge.backends.options.TensorRTOptions` (device, CUDA graphs,
            memory kind, hash check).

    Raises:
        MissingDependencyError: TensorRT or CUDA Python is not installed (with the route).
        EngineError: truncated file, engine for another TensorRT version or GPU, load failure.
    """

    name = "tensorrt"

    def __init__(
        self,
        path: str | os.PathLike[str],
        options: TensorRTOptions | None = None,
        _engine: trt_runtime.Engine | None = None,
    ) -> None:
        load_tensorrt("running TensorRT engines")
        self.path = Path(path)
        self.options = options or TensorRTOptions()
        self.device = self.options.device
        self.cuda_graph = self.options.cuda_graph
        self.meta: EngineMetadata | None = load_sidecar(self.path)
        check_engine_file(self.path, self.meta, self.options.verify_hash)
        self.trt_version = tensorrt_version()
        if self.meta is not None:  # the TensorRT version first: checking it needs no GPU
            check_compatible(self.meta, self.trt_version, None, self.path)
        props = buffers.device_properties(self.device)
        self.gpu = props
        if self.meta is not None:
            check_compatible(self.meta, self.trt_version, DeviceIdentity.of(props), self.path)
        else:
            log.warning(
                "%s has no sidecar (%s): TensorRT version and GPU cannot be checked and it carries no model contract",
                self.path,
                self.path.with_suffix(".json").name,
            )
        self.memory = buffers.choose_memory_kind(props.integrated, props.can_map_host_memory, self.options.memory)
        with buffers.on_device(self.device):
            self._engine = (
                _engine.retain()
                if _engine is not None
                else trt_runtime.Engine(
                    self.path.read_bytes(), str(self.path), self.meta.dla_core if self.meta else None
                )
            )
            self._stream = buffers.Stream()
            self._start, self._end = buffers.Event(), buffers.Event()
            self._io = list(self._engine.io)
            self._inputs = [t for t in self._io if t.is_input]
            self._outputs = [t for t in self._io if not t.is_input]
            if not self._inputs:
                raise EngineError(f"{self.path}: the engine has no inputs")
            # with CUDA graphs a context per batch size (up to 8 with the default 1,1,8 profile): they
            # never run at once (one stream), so on TensorRT >= 10.1 they share one activation block
            # instead of each reserving its own (trt_runtime.ExecutionContext)
            self._shared: buffers.DeviceMemory | None = None
            shared = self.cuda_graph and trt_runtime.shares_memory(self._engine.version)
            self._runner = trt_runtime.BatchRunner(
                (lambda: self._engine.create_context(self._shared_memory)) if shared else self._engine.create_context,
                self._inputs,
                self._capture if self.cuda_graph else None,
                str(self.path),
            )
            self._runner.start()
        self._buffers: dict[str, buffers.HostDeviceBuffer] = {}
        self._capacity = 0
        self._closed = False
        self.last_gpu_ms: float | None = None
        log.debug("tensorrt %s on %s (%s memory)", self.path.name, props.name, self.memory)

    # --- Backend interface ------------------------------------------------------------------

    @property
    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec(t.name, t.shape, t.dtype) for t in self._inputs]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec(t.name, t.shape, t.dtype) for t in self._outputs]

    @property
    def batch_range(self) -> tuple[int, int]:
        return self._engine.batch_range()

    def input_buffer(self, batch: int) -> np.ndarray:
        """The host view the engine reads (mapped memory: zero copies): ``[batch,3,H,W]`` float32, or
        ``[batch,H,W,3]`` uint8 for an engine built from a frame-input artifact (``--frame-size``)."""
        spec = self._inputs[0]
        if spec.dtype not in (np.float32, np.uint8):
            raise EngineError(
                f"{self.path}: input {spec.name} is {spec.dtype}; the Detector feeds float32 tensors or uint8 "
                "frames (export float16 graphs with float32 inputs)"
            )
        self._reserve(batch)
        return self._buffers[spec.name].host[:batch]

    def infer(self, batch: int) -> dict[str, np.ndarray]:
        if len(self._inputs) != 1:
            raise EngineError(f"{self.path}: infer() needs a single-input engine; use run() with all inputs")
        if self._capacity < batch or batch < 1:
            raise InputError(f"infer({batch}): call input_buffer({batch}) and fill it first")
        return self._execute(batch)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [t.name for t in self._inputs if t.name not in feeds]
        if missing:
            raise InputError(f"run(): missing inputs {missing}; the engine takes {[t.name for t in self._inputs]}")
        batch = int(feeds[self._inputs[0].name].shape[0])
        self._reserve(batch)
        for t in self._inputs:
            arr = np.asarray(feeds[t.name])
            want = resolve_shape(t.shape, batch, t.name)
            if arr.shape != want:
                raise InputError(f"run(): input {t.name} has shape {arr.shape}, expected {want}")
            np.copyto(self._buffers[t.name].host[:batch], arr, casting="same_kind")
        return self._execute(batch)

    def metadata(self) -> dict[str, str]:
        """The sidecar's contract under ``rtdetr_edge.contract`` (empty without a sidecar)."""
        if self.meta is None or self.meta.contract_json is None:
            return {}
        return {METADATA_KEY: self.meta.contract_json}

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "backend": self.name,
            "file": str(self.path),
            "tensorrt": self.trt_version,
            "gpu": self.gpu.name,
            "compute_capability": self.gpu.compute_capability,
            "memory": self.memory,
            "zero_copy": self.memory == "mapped",
            "cuda_graph": self.cuda_graph,
            "cuda_graphs": self._runner.graphs,
            "cuda_graph_captures": self._runner.captures,
            "cuda_graph_launches": self._runner.launches,
            "execution_contexts": self._runner.contexts,
            "engine_copies": self._engine.copies,
            "shared_context_memory": self._shared.nbytes if self._shared is not None else None,
            "cuda": buffers.driver().name,
            "batch_range": list(self.batch_range),
        }
        if self.meta is not None:
            info.update(
                precision=self.meta.precision,
                int8_mode=self.meta.int8_mode,
                batch_profile=list(self.meta.batch.as_tuple()),
                dla_core=self.meta.dla_core,
            )
        return info

    def clone(self) -> TensorRTBackend:
        """A backend for another thread: its own context(s), stream and buffers (see the module doc)."""
        return TensorRTBackend(self.path, self.options, _engine=self._engine)

    def close(self) -> None:
        if getattr(self, "_closed", True):
            return
        self._closed = True
        with buffers.on_device(self.device):
            self._runner.close()
            if self._shared is not None:  # after the contexts that ran in it
                self._shared.close()
            self._release()
            for ev in (self._start, self._end):
                ev.close()
            self._stream.close()
        self._engine.close()

    # --- internals --------------------------------------------------------------------------

    def _reserve(self, batch: int) -> None:
        """Buffers for at least ``batch`` images, bound to the contexts; grows (and drops graphs)."""
        if self._closed:
            raise EngineError(f"{self.path}: backend is closed")
        lo, hi = self.batch_range
        if batch < lo or (hi and batch > hi):
            raise InputError(
                f"batch {batch} is outside the engine's batch range {lo}..{hi}; rebuild the engine with "
                f"--batch covering it"
            )
        if batch <= self._capacity:
            return
        # graphs record buffer addresses: with graphs, size the buffers for the largest batch once,
        # so that a later, larger batch never moves them (and never drops the graphs)
        capacity = max(batch, hi) if self.cuda_graph and hi else batch
        with buffers.on_device(self.device):
            self._release()
            for t in self._io:
                shape = resolve_shape(t.shape, capacity, t.name)
                self._buffers[t.name] = buffers.HostDeviceBuffer(shape, t.dtype, self.memory)
            self._runner.bind({name: buf.device_ptr for name, buf in self._buffers.items()})
        self._capacity = capacity

    def _release(self) -> None:
        for buf in self._buffers.values():
            buf.close()
        self._buffers.clear()
        self._capacity = 0

    def _execute(self, batch: int) -> dict[str, np.ndarray]:
        with buffers.on_device(self.device):
            for t in self._inputs:
                self._buffers[t.name].to_device(self._stream, batch * volume(t.shape[1:]) * t.dtype.itemsize)
            self._start.record(self._stream)
            ctx = self._runner.run(batch, self._stream)
            self._end.record(self._stream)
            shapes = {t.name: ctx.tensor_shape(t.name) for t in self._outputs}
            for t in self._outputs:
                self._buffers[t.name].to_host(self._stream, volume(shapes[t.name]) * t.dtype.itemsize)
            self._stream.synchronize()
            self.last_gpu_ms = buffers.Event.elapsed_ms(self._start, self._end)
        # copies: outputs are small (K x 6 numbers per image) and must outlive buffer reuse/close
        return {
            t.name: self._buffers[t.name].host.reshape(-1)[: volume(shapes[t.name])].reshape(shapes[t.name]).copy()
            for t in self._outputs
        }

    def _shared_memory(self, nbytes: int) -> int:
        """The device block this backend's contexts share (allocated for the first, the same size for all)."""
        if self._shared is None:
            self._shared = buffers.DeviceMemory(nbytes)
        elif nbytes > self._shared.nbytes:  # every context comes from the same plan
            raise EngineError(
                f"internal: a context of {self.path.name} needs {nbytes} bytes, the shared block has {self._shared.nbytes}"
            )
        return self._shared.ptr

    def _capture(self, stream: buffers.Stream, body: Callable[[], None]) -> buffers.CudaGraph:
        return buffers.CudaGraph(stream, body)

    def __del__(self) -> None:
        if sys.is_finalizing():
            return  # CUDA may already be torn down; the process is ending anyway
        with contextlib.suppress(Exception):  # never raise from a finaliser
            self.close()
