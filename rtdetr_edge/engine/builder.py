"""Build a serialized TensorRT engine from an ONNX file following a :class:`BuildPlan`.

One of the four modules that import ``tensorrt`` (imported inside each function after
:func:`~rtdetr_edge.backends.trt_logging.load_tensorrt` has checked it). API used, by version
(NVIDIA/TensorRT ``python/src`` bindings of release/8.6, release/10.x, 11.1):

* all: ``Builder``, ``create_network(flags)``, ``OnnxParser.parse_from_file``, ``ParserError``
  (``desc``, ``node``, ``code``), ``IBuilderConfig.set_memory_pool_limit(WORKSPACE, bytes)``,
  ``create_timing_cache``/``set_timing_cache``/``get_timing_cache().serialize()``,
  ``builder_optimization_level`` (>= 8.6), ``DLA_core``/``default_device_type``,
  ``IOptimizationProfile.set_shape``, ``build_serialized_network``.
* ``ParserError.node_name()``/``node_operator()``: 10.x+ (8.6 has only the node index).
* 8.x-10.x only (removed in 11): ``BuilderFlag.FP16/INT8/PREFER_PRECISION_CONSTRAINTS``,
  ``ILayer.precision``/``set_output_type``, ``ITensor.set_dynamic_range``,
  ``IBuilderConfig.int8_calibrator``/``set_calibration_profile``.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import atomic
from ..backends.trt_logging import LogCapture, capture, load_tensorrt, logger
from ..backends.trt_runtime import dims_of
from ..engine_format import BatchProfile
from ..errors import CalibrationError, EngineError
from .calibrators import cache_only_calibrator, native_cache_text
from .options import BuildPlan, EngineBuildOptions

if TYPE_CHECKING:
    import tensorrt

log = logging.getLogger("rtdetr_edge")


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
        where = f"node {it.node_index} {it.op_type or '?'} '{it.node_name}'" if it.node_index >= 0 else "the graph"
        code = f" [{it.code}]" if it.code else ""
        lines.append(f"  {where}: {it.message.strip()}{code}")
    if len(issues) > 10:
        lines.append(f"  ... and {len(issues) - 10} more")
    lines.append(
        "Check the opset (17 needs TensorRT >= 8.6; use --opset 16 for 8.5) and that the ONNX came from "
        "rtdetr-build; onnx/onnx-tensorrt docs/operators.md lists what each version parses."
    )
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
        issues.append(
            ParserIssue(idx, name or (node_names[idx] if known else ""), op, str(err.desc()), str(err.code()))
        )
    return issues


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


def build_serialized_engine(
    onnx_path: str | os.PathLike[str],
    plan: BuildPlan,
    options: EngineBuildOptions,
    profile: BatchProfile,
    hints: NetworkHints | None = None,
    ranges: dict[str, float] | None = None,
    calibrator: Any = None,
) -> bytes:
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

    with capture() as cap:
        return _build(trt, onnx_path, plan, options, profile, hints or NetworkHints(), ranges, calibrator, cap)


def _build(
    trt: Any,
    onnx_path: str | os.PathLike[str],
    plan: BuildPlan,
    options: EngineBuildOptions,
    profile: BatchProfile,
    hints: NetworkHints,
    ranges: dict[str, float] | None,
    calibrator: Any,
    cap: LogCapture,
) -> bytes:
    version = str(trt.__version__)
    trt_logger = logger()
    try:
        builder = trt.Builder(trt_logger)
    except (RuntimeError, TypeError) as exc:  # no GPU/driver: CUDA initialisation fails here
        raise EngineError(f"TensorRT cannot start a builder (no usable CUDA GPU?): {exc}") from exc
    flags = 0
    for name in plan.network_flags:
        flags |= 1 << int(_flag(trt.NetworkDefinitionCreationFlag, name, version))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(os.fspath(onnx_path)):
        raise EngineError(
            format_parser_errors(onnx_path, _parser_issues(parser, list(hints.node_names), list(hints.node_ops)))
        )
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
            log.warning(
                "DLA needs static shapes: layers see a dynamic batch %s and fall back to the GPU; use --batch N",
                profile,
            )

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
        calib = (
            calibrator if calibrator is not None else cache_only_calibrator(native_cache_text(ranges or {}, version))
        )
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
                log.warning(
                    "timing cache %s is unreadable or from another TensorRT/GPU; starting a new one", cache_path
                )
            config.set_timing_cache(config.create_timing_cache(b""), False)

    log.info(
        "building %s engine (TensorRT %s, batch %s) from %s ...", plan.precision, version, profile, Path(onnx_path).name
    )
    serialized = builder.build_serialized_network(network, config)
    if calibrator is not None:
        if hasattr(calibrator, "close"):
            calibrator.close()
        error = getattr(calibrator, "error", None)
        if isinstance(error, Exception):
            raise error if isinstance(error, CalibrationError) else CalibrationError(f"calibration failed: {error}")
    if serialized is None:
        hint = []
        text = cap.summary()
        if options.workspace_mib is not None or "workspace" in text.lower() or "memory" in text.lower():
            hint.append(
                f"the workspace limit ({options.workspace_mib or 'default'} MiB) may be too small: raise "
                "--workspace or leave it unset"
            )
        if options.dla_core is not None:
            hint.append("try without --dla-core")
        raise EngineError(
            f"TensorRT could not build the {plan.precision} engine from {onnx_path}: {text}"
            + (f". Hint: {'; '.join(hint)}" if hint else "")
        )
    if cache_path is not None:
        atomic.write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)
