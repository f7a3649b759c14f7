"""The one module that calls TensorRT: builder, ONNX parser, calibrators, runtime, contexts.

``tensorrt`` is imported inside each function after :func:`load_tensorrt` has checked it, so
this module imports anywhere, and it is type-checked against ``tensorrt-stubs`` (10.13). Calls
that differ between versions are guarded and commented; the version rules themselves live in
:func:`rtdetr_edge.engine.options.plan_build`.

API used, by version (NVIDIA/TensorRT ``python/src`` bindings of release/8.6, release/10.x, 11.1):

* all: ``Builder``, ``create_network(flags)``, ``OnnxParser.parse_from_file``, ``ParserError``
  (``desc``, ``node``, ``code``), ``IBuilderConfig.set_memory_pool_limit(WORKSPACE, bytes)``,
  ``create_timing_cache``/``set_timing_cache``/``get_timing_cache().serialize()``,
  ``builder_optimization_level`` (>= 8.6), ``DLA_core``/``default_device_type``,
  ``IOptimizationProfile.set_shape``, ``build_serialized_network``, ``Runtime.
  deserialize_cuda_engine``, ``num_io_tensors``/``get_tensor_name``/``get_tensor_mode``/
  ``get_tensor_shape``/``get_tensor_dtype``/``get_tensor_profile_shape``, and on contexts
  ``set_input_shape``/``set_tensor_address``/``get_tensor_shape``/``execute_async_v3``.
* ``ParserError.node_name()``/``node_operator()``: 10.x+ (8.6 has only the node index).
* 8.x-10.x only (removed in 11): ``BuilderFlag.FP16/INT8/PREFER_PRECISION_CONSTRAINTS``,
  ``ILayer.precision``/``set_output_type``, ``ITensor.set_dynamic_range``,
  ``IBuilderConfig.int8_calibrator``/``set_calibration_profile``, ``IInt8EntropyCalibrator2``.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import atomic
from .._optional import require, route_for
from ..errors import CalibrationError, EngineError, MissingDependencyError
from ..engine_format import BatchProfile
from .options import BuildPlan, EngineOptions

if TYPE_CHECKING:
    import tensorrt

log = logging.getLogger("rtdetr_edge")

ENTROPY2 = "EntropyCalibration2"


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
            f"only?). Install it: {route_for('tensorrt')}")
    return mod


def tensorrt_version() -> str:
    """The running TensorRT's ``__version__`` (e.g. ``"10.3.0.30"``)."""
    load_tensorrt()
    import tensorrt as trt

    return str(trt.__version__)


def tensorrt_usable(device: int = 0) -> bool:
    """True if real TensorRT imports and CUDA device ``device`` exists (for ``backend="auto"``)."""
    try:
        load_tensorrt()
    except MissingDependencyError:
        return False
    from ..cuda import buffers

    return buffers.device_count() > device


# --- logging ----------------------------------------------------------------------------------

class _Capture:
    """Collects TensorRT's error and warning lines while a build or load runs."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def start(self) -> None:
        with self.lock:
            self.errors, self.warnings = [], []

    def summary(self, limit: int = 12) -> str:
        with self.lock:
            lines = self.errors[-limit:] or self.warnings[-limit // 2:]
        return "; ".join(line.strip() for line in lines) or "no error logged by TensorRT"


_CAPTURE = _Capture()
_LOGGER: Any = None


def _logger() -> tensorrt.ILogger:
    """One logger for every builder and runtime (TensorRT expects a single logger per process)."""
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
                with _CAPTURE.lock:
                    _CAPTURE.errors.append(msg)
                log.error("TensorRT: %s", msg)
            elif severity == trt.ILogger.WARNING:
                with _CAPTURE.lock:
                    _CAPTURE.warnings.append(msg)
                log.warning("TensorRT: %s", msg)
            elif severity == trt.ILogger.INFO:
                log.debug("TensorRT: %s", msg)

    logger = _Logger()
    try:
        trt.init_libnvinfer_plugins(logger, "")  # engines from parser fallbacks may use plugins
    except Exception as exc:  # noqa: BLE001 - plugins are optional for RT-DETR
        log.debug("TensorRT plugins not initialised: %s", exc)
    _LOGGER = logger
    return logger


# --- parser errors ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ParserIssue:
    """One ONNX parser error, with the node it is about."""

    node_index: int
    node_name: str
    op_type: str
    message: str
    code: str = ""


def format_parser_errors(onnx_path: str | os.PathLike[str], issues: list[ParserIssue]) -> str:
    """A user message for parser failures, naming each node (``op 'name'``) as the ONNX has it."""
    lines = [f"TensorRT's ONNX parser rejected {onnx_path} ({len(issues)} error(s)):"]
    for it in issues[:10]:
        where = (f"node {it.node_index} {it.op_type or '?'} '{it.node_name}'" if it.node_index >= 0
                 else "the graph")
        code = f" [{it.code}]" if it.code else ""
        lines.append(f"  {where}: {it.message.strip()}{code}")
    if len(issues) > 10:
        lines.append(f"  ... and {len(issues) - 10} more")
    lines.append("Check the opset (17 needs TensorRT >= 8.6; use --opset 16 for 8.5) and that the ONNX came from "
                 "rtdetr-build; onnx/onnx-tensorrt docs/operators.md lists what each version parses.")
    return "\n".join(lines)


def _parser_issues(parser: tensorrt.OnnxParser, node_names: list[str], node_ops: list[str]) -> list[ParserIssue]:
    issues = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        idx = int(err.node())
        known = 0 <= idx < len(node_names)
        # node_name()/node_operator() exist from TensorRT 10.0; 8.6 gives only the index
        name = str(err.node_name()) if hasattr(err, "node_name") else (node_names[idx] if known else "")
        op = str(err.node_operator()) if hasattr(err, "node_operator") else (node_ops[idx] if known else "")
        issues.append(ParserIssue(idx, name or (node_names[idx] if known else ""), op, str(err.desc()),
                                  str(err.code())))
    return issues


# --- calibration ------------------------------------------------------------------------------

def native_cache_text(ranges: dict[str, float], trt_version: str | None = None) -> str:
    """TensorRT's own INT8 cache text for ``ranges``, for the running TensorRT by default.

    TensorRT ignores a cache whose header names another version, so it is always written for
    the version that reads it (``calib/trt_cache.py`` has the format).
    """
    from .. import trt_cache

    text: str = trt_cache.write_cache(ranges, trt_version or tensorrt_version(), ENTROPY2)
    return text


def _cache_matches(text: bytes, trt_version: str) -> bool:
    from .. import trt_cache

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


def make_calibrator(batches: Iterable[dict[str, np.ndarray]], cache_path: str | os.PathLike[str],
                    device: int = 0) -> Any:
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
                    raise CalibrationError(f"calibration batch {self.seen} has no input {name!r} "
                                           f"(it has {sorted(batch)})")
                arr = np.ascontiguousarray(batch[name], np.float32)
                buf = self._buffers.get(name)
                if buf is None:
                    buf = self._buffers[name] = buffers.HostDeviceBuffer(arr.shape, np.float32, "pinned")
                if arr.shape != buf.shape:
                    raise CalibrationError(f"calibration batch {self.seen}: {name} has shape {arr.shape}, the "
                                           f"first batch had {buf.shape}; every batch must have the same shape")
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


# --- build ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NetworkHints:
    """What the builder needs to know about the ONNX (read with onnx by the caller)."""

    node_names: tuple[str, ...] = ()
    node_ops: tuple[str, ...] = ()
    fp32_nodes: frozenset[str] = frozenset()  # ONNX node names to keep in FP32
    fp32_tensors: frozenset[str] = frozenset()  # ONNX value names those nodes produce


def _flag(enum: Any, name: str, trt_version: str) -> Any:
    member = getattr(enum, name, None)
    if member is None:
        raise EngineError(f"internal: TensorRT {trt_version} has no {getattr(enum, '__name__', 'enum')}.{name}")
    return member


def _pin_fp32(network: tensorrt.INetworkDefinition, hints: NetworkHints, patterns: tuple[str, ...]) -> int:
    """Pin matching layers to FP32 (weakly typed networks, TensorRT < 11). Returns how many."""
    import tensorrt as trt

    floats = (trt.float32, trt.float16)
    globs = [p for p in patterns if "/" in p or "*" in p or "?" in p]
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type == trt.LayerType.CONSTANT:
            continue
        name = layer.name
        # the parser names a node's layers after the node ("n", then "n_1", ...) and its output
        # tensors after the ONNX values, so either identifies the node
        by_node = name in hints.fp32_nodes or name.rsplit("_", 1)[0] in hints.fp32_nodes
        outs = [layer.get_output(j) for j in range(layer.num_outputs)]
        by_tensor = any(t.name in hints.fp32_tensors for t in outs)
        by_glob = any(fnmatch.fnmatchcase(name, g) for g in globs)
        float_outs = [j for j, t in enumerate(outs) if t.dtype in floats]
        if not (by_node or by_tensor or by_glob) or not float_outs:
            continue
        layer.precision = trt.float32
        for j in float_outs:
            layer.set_output_type(j, trt.float32)
        pinned += 1
    return pinned


def _set_dynamic_ranges(network: tensorrt.INetworkDefinition, ranges: dict[str, float]) -> int:
    """``ITensor.set_dynamic_range(-amax, amax)`` for every tensor with a range (8.5-10.x)."""
    tensors = [network.get_input(i) for i in range(network.num_inputs)]
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        tensors += [layer.get_output(j) for j in range(layer.num_outputs)]
    done = 0
    for t in tensors:
        amax = ranges.get(t.name)
        if amax is not None and t.set_dynamic_range(-float(amax), float(amax)):
            done += 1
    return done


def build_serialized_engine(onnx_path: str | os.PathLike[str], plan: BuildPlan, options: EngineOptions,
                            profile: BatchProfile, hints: NetworkHints | None = None,
                            ranges: dict[str, float] | None = None, calibrator: Any = None) -> bytes:
    """Parse ``onnx_path`` and build a serialized engine following ``plan``.

    Args:
        onnx_path: the ONNX to parse (external data next to it is found by path).
        plan: from :func:`~rtdetr_edge.engine.options.plan_build` for this TensorRT.
        options: workspace, timing cache, optimisation level, DLA, FP32 layers.
        profile: batch profile, already clamped to what the ONNX accepts.
        hints: node names/ops for error messages and FP32 pinning.
        ranges: INT8 amax per tensor, for implicit INT8 (cache or dynamic range).
        calibrator: a calibrator from :func:`make_calibrator` (implicit INT8 on user data).

    Raises:
        EngineError: parser errors (with node names), unsupported options, or a failed build
            with TensorRT's own error lines and a hint (workspace, DLA).
    """
    load_tensorrt("building TensorRT engines")
    import tensorrt as trt

    hints = hints or NetworkHints()
    version = str(trt.__version__)
    logger = _logger()
    _CAPTURE.start()
    try:
        builder = trt.Builder(logger)
    except (RuntimeError, TypeError) as exc:  # no GPU/driver: CUDA initialisation fails here
        raise EngineError(f"TensorRT cannot start a builder (no usable CUDA GPU?): {exc}") from exc
    flags = 0
    for name in plan.network_flags:
        flags |= 1 << int(_flag(trt.NetworkDefinitionCreationFlag, name, version))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(os.fspath(onnx_path)):
        raise EngineError(format_parser_errors(onnx_path, _parser_issues(parser, list(hints.node_names),
                                                                         list(hints.node_ops))))
    config = builder.create_builder_config()
    if options.workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_mib) << 20)
    if options.builder_optimization_level is not None:
        if hasattr(config, "builder_optimization_level"):  # 8.6+
            config.builder_optimization_level = int(options.builder_optimization_level)
        else:
            log.warning("TensorRT %s has no builder optimisation level; --builder-opt-level ignored", version)
    for name in plan.builder_flags:
        config.set_flag(_flag(trt.BuilderFlag, name, version))
    for name in plan.clear_flags:
        config.clear_flag(_flag(trt.BuilderFlag, name, version))
    if options.dla_core is not None:
        if builder.num_DLA_cores <= options.dla_core:
            raise EngineError(f"--dla-core {options.dla_core}: this device has {builder.num_DLA_cores} DLA core(s)")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(options.dla_core)
        if not profile.static:
            log.warning("DLA needs static shapes: layers see a dynamic batch %s and fall back to the GPU; "
                        "use --batch N", profile)

    # optimisation profile: every input with a dynamic batch gets MIN/OPT/MAX over the batch
    opt_profile = builder.create_optimization_profile()
    dynamic = False
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        dims = dims_of(tensor.shape)
        if dims and dims[0] < 0:
            lo, mid, hi = profile.shapes(dims[1:])
            opt_profile.set_shape(tensor.name, trt.Dims(list(lo)), trt.Dims(list(mid)), trt.Dims(list(hi)))
            dynamic = True
        elif any(d < 0 for d in dims):
            raise EngineError(f"input {tensor.name} {dims}: only the batch may be dynamic")
    if dynamic:
        config.add_optimization_profile(opt_profile)

    if plan.layer_constraints:
        n = _pin_fp32(network, hints, options.fp32_layers)
        log.info("precision: %d layer(s) kept in FP32 (%s)", n, ",".join(options.fp32_layers))
    if plan.int8_source == "dynamic_range":
        n = _set_dynamic_ranges(network, ranges or {})
        log.info("INT8: dynamic ranges set on %d tensor(s)", n)
    elif plan.int8_source == "calibrator":
        calib = calibrator if calibrator is not None else cache_only_calibrator(native_cache_text(ranges or {}, version))
        config.int8_calibrator = calib  # 8.x-10.x; removed in 11 (plan_build never asks for it there)
        calib_batch = int(getattr(calib, "batch_size", 0))
        if dynamic and calib_batch and hasattr(config, "set_calibration_profile"):
            cal = builder.create_optimization_profile()
            for i in range(network.num_inputs):
                tensor = network.get_input(i)
                dims = dims_of(tensor.shape)
                if dims and dims[0] < 0:
                    shape = trt.Dims([calib_batch, *dims[1:]])
                    cal.set_shape(tensor.name, shape, shape, shape)
            config.set_calibration_profile(cal)

    cache_path = Path(options.timing_cache) if options.timing_cache else None
    if cache_path is not None:
        blob = cache_path.read_bytes() if cache_path.is_file() else b""
        try:
            timing = config.create_timing_cache(blob)
            ok = timing is not None and config.set_timing_cache(timing, False)
        except (RuntimeError, TypeError, ValueError):  # a corrupt file
            ok = False
        if not ok:
            if blob:
                log.warning("timing cache %s is unreadable or from another TensorRT/GPU; starting a new one",
                            cache_path)
            config.set_timing_cache(config.create_timing_cache(b""), False)

    log.info("building %s engine (TensorRT %s, batch %s) from %s ...", plan.precision, version, profile,
             Path(onnx_path).name)
    serialized = builder.build_serialized_network(network, config)
    if calibrator is not None:
        if hasattr(calibrator, "close"):
            calibrator.close()
        error = getattr(calibrator, "error", None)
        if isinstance(error, Exception):
            raise error if isinstance(error, CalibrationError) else CalibrationError(f"calibration failed: {error}")
    if serialized is None:
        hint = []
        text = _CAPTURE.summary()
        if options.workspace_mib is not None or "workspace" in text.lower() or "memory" in text.lower():
            hint.append(f"the workspace limit ({options.workspace_mib or 'default'} MiB) may be too small: raise "
                        "--workspace or leave it unset")
        if options.dla_core is not None:
            hint.append("try without --dla-core")
        raise EngineError(f"TensorRT could not build the {plan.precision} engine from {onnx_path}: {text}"
                          + (f". Hint: {'; '.join(hint)}" if hint else ""))
    if cache_path is not None:
        atomic.write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


# --- runtime ----------------------------------------------------------------------------------

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
        logger = _logger()
        _CAPTURE.start()
        self._runtime = trt.Runtime(logger)
        if dla_core is not None:
            self._runtime.DLA_core = int(dla_core)
        engine = self._runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise EngineError(f"{source}: TensorRT {trt.__version__} could not load this engine ({len(plan)} bytes): "
                              f"{_CAPTURE.summary()}. The file may be truncated or corrupt, or built by another "
                              "TensorRT version or for another GPU: rebuild it on this machine")
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
        ctx = engine.create_execution_context()
        if ctx is None:
            raise EngineError(f"{source}: TensorRT could not create an execution context (out of GPU memory?): "
                              f"{_CAPTURE.summary()}")
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
        if not self._live().execute_async_v3(int(stream_handle)):
            raise EngineError(f"{self.source}: TensorRT inference failed: {_CAPTURE.summary()}")

    def close(self) -> None:
        self._ctx = None


def trt_dims(shape: tuple[int, ...]) -> tensorrt.Dims:
    import tensorrt as trt

    return trt.Dims(list(shape))


def dims_of(dims: tensorrt.Dims) -> tuple[int, ...]:
    """A TensorRT ``Dims`` as a tuple (-1 for dynamic axes)."""
    return tuple(int(dims[i]) for i in range(len(dims)))
