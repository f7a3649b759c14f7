"""Build a serialized TensorRT engine from an ONNX file with NVIDIA's Polygraphy, following a :class:`BuildPlan`.

One of the four modules that import ``tensorrt`` (inside functions, after
:func:`~rtdetr_edge.backends.trt_logging.load_tensorrt` has checked it). Polygraphy
(``polygraphy.backend.trt``, NVIDIA's tested wrappers of the TensorRT builder API for 8.x-11.x)
does the TensorRT calls:

* ``NetworkFromOnnxPath``: builder, network (explicit batch on 8.x, ``strongly_typed``), ONNX
  parser with external weights found by path;
* ``CreateConfig``: the optimisation profile, FP16/INT8/TF32 flags, precision constraints,
  memory pool limits, timing cache loading, builder optimisation level, the INT8 calibrator and
  its calibration profile, DLA with GPU fallback;
* ``EngineBytesFromNetwork``: ``build_serialized_network`` and saving (merging) the timing cache;
* ``Calibrator`` (see :mod:`.calibrators`).

What stays here, because Polygraphy lacks it: which layers belong to the ONNX nodes kept in FP32
(:func:`owning_node`), ``ITensor`` dynamic ranges, the DLA core (Polygraphy always sets core 0),
a calibration profile at the calibration batch, a check that TensorRT accepted the optimisation
profile, parser errors worded per node, and our error messages (TensorRT's and Polygraphy's
error lines are collected for the call that produced them).
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._optional import require
from ..backends.trt_logging import LogCapture, capture, load_tensorrt, logger
from ..engine_format import BatchProfile
from ..errors import CalibrationError, EngineError
from .options import BuildPlan, EngineBuildOptions

if TYPE_CHECKING:
    import tensorrt

    from .calibrators import DeviceCalibrator

log = logging.getLogger("rtdetr_edge")

# Polygraphy's logger is process-wide; one build at a time switches it to Python logging
_POLYGRAPHY_LOCK = threading.Lock()


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
        "Check that the ONNX came from rtdetr-build for this TensorRT (opset 17; the FP16-typed Q/DQ graph "
        "model.int8.qdq.onnx is opset 19 and needs TensorRT >= 10); onnx/onnx-tensorrt docs/operators.md "
        "lists what each version parses."
    )
    return "\n".join(lines)


# str(nvonnxparser::IParserError) in TensorRT's Python bindings: "In node 3 (importFoo): CODE: desc";
# 10.x adds " with name: N and operator: O" after the index
_PARSER_LINE = re.compile(
    r"In node (?P<idx>-?\d+)(?: with name: (?P<name>.*?) and operator: (?P<op>.*?))?"
    r" \((?P<func>[^)]*)\): (?P<code>[A-Z_]+): (?P<desc>.*)",
    re.S,
)


def parser_issues(lines: list[str], node_names: tuple[str, ...], node_ops: tuple[str, ...]) -> list[ParserIssue]:
    """The parser errors among the error lines Polygraphy logged, with node names from the ONNX."""
    issues = []
    for line in lines:
        m = _PARSER_LINE.search(line)
        if m is None:
            continue
        idx = int(m["idx"])
        known = 0 <= idx < len(node_names)
        name = (m["name"] or "").strip() or (node_names[idx] if known else "")
        op = (m["op"] or "").strip() or (node_ops[idx] if known and idx < len(node_ops) else "")
        issues.append(ParserIssue(idx, name, op, m["desc"].strip(), m["code"]))
    return issues


@dataclass(frozen=True)
class NetworkHints:
    """What the builder needs to know about the ONNX (read with onnx by the caller)."""

    node_names: tuple[str, ...] = ()
    node_ops: tuple[str, ...] = ()
    fp32_nodes: frozenset[str] = frozenset()  # ONNX node names to keep in FP32
    fp32_tensors: frozenset[str] = frozenset()  # ONNX value names those nodes produce
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)  # graph inputs, -1 for dynamic axes


def owning_node(layer_name: str, node_names: frozenset[str]) -> str | None:
    """The ONNX node a parsed layer came from, or None.

    TensorRT's ONNX parser names a node's first layer after the node and further ones
    ``<node>_<k>``. A layer name ``a_1`` may therefore be node ``a_1`` itself or the second layer
    of node ``a``: an exact node name wins, else the longest node name it extends by ``_<digits>``.
    """
    if layer_name in node_names:
        return layer_name
    stem = layer_name
    while True:
        head, sep, tail = stem.rpartition("_")
        if not sep or not tail.isdigit():
            return None
        if head in node_names:
            return head
        stem = head


def _pin_fp32(network: tensorrt.INetworkDefinition, hints: NetworkHints, patterns: tuple[str, ...]) -> int:
    """Pin matching layers to FP32 (weakly typed networks, TensorRT < 11). Returns how many."""
    import tensorrt as trt

    floats = (trt.float32, trt.float16)
    globs = [p for p in patterns if "/" in p or "*" in p or "?" in p]
    nodes = frozenset(hints.node_names) | hints.fp32_nodes
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type == trt.LayerType.CONSTANT:
            continue
        name = layer.name
        by_node = owning_node(name, nodes) in hints.fp32_nodes
        outs = [layer.get_output(j) for j in range(layer.num_outputs)]
        by_tensor = any(t.name in hints.fp32_tensors for t in outs)
        by_glob = any(fnmatch.fnmatchcase(name, g) for g in globs)
        float_outs = [j for j, t in enumerate(outs) if t.dtype in floats]
        if not (by_node or by_tensor or by_glob) or not float_outs:
            continue
        ins = [layer.get_input(k) for k in range(layer.num_inputs)]
        if all(t is None or t.dtype in floats for t in ins):
            # a layer reading uint8/int (the frame front's first Cast) gets only its output type:
            # its compute precision is defined by the conversion, not a float choice
            layer.precision = trt.float32
        for j in float_outs:
            layer.set_output_type(j, trt.float32)
        pinned += 1
    return pinned


def _set_dynamic_ranges(network: tensorrt.INetworkDefinition, ranges: dict[str, float]) -> int:
    """``ITensor.set_dynamic_range(-amax, amax)`` for every tensor with a range (8.6-10.x)."""
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


@dataclass(frozen=True)
class ConfigChoice:
    """What :func:`config_choice` gives Polygraphy's loaders for one plan (CPU-testable)."""

    strongly_typed: bool
    fp16: bool
    int8: bool
    tf32: bool
    precision_constraints: str | None  # "prefer" or None
    use_dla: bool
    gpu_fallback: bool
    dla_core: int | None
    workspace_bytes: int | None
    optimization_level: int | None
    timing_cache: str | None


def config_choice(plan: BuildPlan, options: EngineBuildOptions) -> ConfigChoice:
    """The plan's flag names as Polygraphy's ``NetworkFromOnnxPath``/``CreateConfig`` arguments."""
    known = {"FP16", "INT8", "PREFER_PRECISION_CONSTRAINTS", "GPU_FALLBACK"}
    unknown = sorted(set(plan.builder_flags) - known) + sorted(set(plan.clear_flags) - {"TF32"})
    unknown += sorted(set(plan.network_flags) - {"EXPLICIT_BATCH", "STRONGLY_TYPED"})
    if unknown:
        raise EngineError(f"internal: the build plan names flags the builder does not map: {', '.join(unknown)}")
    flags = set(plan.builder_flags)
    strong = "STRONGLY_TYPED" in plan.network_flags or plan.strongly_typed
    return ConfigChoice(
        strongly_typed="STRONGLY_TYPED" in plan.network_flags,
        fp16="FP16" in flags,
        int8="INT8" in flags,
        # weakly typed FP16/INT8 keep TensorRT's default (TF32 on); fp32 turns it off to match ONNX
        # Runtime, and strongly typed graphs compute their FP32-typed layers in FP32 as planned
        tf32="TF32" not in plan.clear_flags and not strong,
        precision_constraints="prefer" if "PREFER_PRECISION_CONSTRAINTS" in flags else None,
        use_dla=options.dla_core is not None,
        gpu_fallback="GPU_FALLBACK" in flags,
        dla_core=options.dla_core,
        workspace_bytes=None if options.workspace_mib is None else int(options.workspace_mib) << 20,
        optimization_level=options.builder_optimization_level,
        timing_cache=options.timing_cache,
    )


def batch_shapes(
    inputs: dict[str, tuple[int, ...]], profile: BatchProfile
) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """(min, opt, max) per input with a dynamic batch; any other dynamic axis is an error."""
    out = {}
    for name, dims in inputs.items():
        if any(d < 0 for d in dims[1:]):
            raise EngineError(f"input {name} {dims}: only the batch may be dynamic")
        if dims and dims[0] < 0:
            out[name] = profile.shapes(dims[1:])
    return out


class _PolygraphyLines(logging.Handler):
    """Polygraphy's log records -> the rtdetr_edge logger; its error lines are kept for messages."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.levelno >= logging.ERROR:
            self.errors.append(text)
            log.debug("Polygraphy: %s", text)
        elif record.levelno >= logging.WARNING:
            log.warning("Polygraphy: %s", text)
        else:
            log.debug("Polygraphy: %s", text)


@contextlib.contextmanager
def _polygraphy_logging() -> Iterator[_PolygraphyLines]:
    """Route Polygraphy's logger to Python logging (not stdout) for one build, and collect its errors."""
    from polygraphy.logger import G_LOGGER

    handler = _PolygraphyLines()
    with _POLYGRAPHY_LOCK:
        saved = (G_LOGGER.use_python_logging_system, G_LOGGER.colors, G_LOGGER.letter)
        G_LOGGER.use_python_logging_system = True
        G_LOGGER.colors = G_LOGGER.letter = False
        pylog = logging.getLogger("Polygraphy")
        level, propagate = pylog.level, pylog.propagate
        pylog.setLevel(logging.INFO)
        pylog.propagate = False
        pylog.addHandler(handler)
        try:
            yield handler
        finally:
            pylog.removeHandler(handler)
            pylog.setLevel(level)
            pylog.propagate = propagate
            G_LOGGER.use_python_logging_system, G_LOGGER.colors, G_LOGGER.letter = saved


def build_serialized_engine(
    onnx_path: str | os.PathLike[str],
    plan: BuildPlan,
    options: EngineBuildOptions,
    profile: BatchProfile,
    hints: NetworkHints,
    ranges: dict[str, float] | None = None,
    calibrator: DeviceCalibrator | None = None,
) -> bytes:
    """Parse ``onnx_path`` and build a serialized engine following ``plan``.

    Args:
        onnx_path: the ONNX to parse (external data next to it is found by path).
        plan: from :func:`~rtdetr_edge.engine.options.plan_build` for this TensorRT.
        options: workspace, timing cache, optimisation level, DLA, FP32 layers.
        profile: batch profile, already clamped to what the ONNX accepts.
        hints: the ONNX's inputs, node names/ops (error messages, FP32 pinning).
        ranges: INT8 amax per tensor, for implicit INT8 (cache or dynamic range).
        calibrator: from :func:`~rtdetr_edge.engine.calibrators.make_calibrator` (implicit INT8 on user data).

    Raises:
        EngineError: parser errors (with node names), unsupported options, or a failed build
            with TensorRT's own error lines and a hint (workspace, DLA).
        CalibrationError: the calibration data failed (bad batch, shape change).
    """
    load_tensorrt("building TensorRT engines")
    require("polygraphy", "building TensorRT engines")
    import tensorrt as trt

    with capture() as cap, _polygraphy_logging() as poly:
        try:
            return _build(trt, onnx_path, plan, options, profile, hints, ranges, calibrator, cap, poly)
        finally:
            if calibrator is not None:
                calibrator.close()


def _build(
    trt: Any,
    onnx_path: str | os.PathLike[str],
    plan: BuildPlan,
    options: EngineBuildOptions,
    profile: BatchProfile,
    hints: NetworkHints,
    ranges: dict[str, float] | None,
    calibrator: DeviceCalibrator | None,
    cap: LogCapture,
    poly: _PolygraphyLines,
) -> bytes:
    from polygraphy.backend.trt import (
        CreateConfig,
        EngineBytesFromNetwork,
        NetworkFromOnnxPath,
        PostprocessConfig,
        PostprocessNetwork,
        Profile,
    )
    from polygraphy.backend.trt import util as polygraphy_trt_util
    from polygraphy.exception import PolygraphyException

    from .calibrators import cache_only_calibrator, native_cache_text

    version = str(trt.__version__)
    if not hints.inputs:
        raise EngineError(f"internal: no input shapes for {onnx_path} (read them with inspect_onnx)")
    choice = config_choice(plan, options)
    dynamic = batch_shapes(hints.inputs, profile)
    # one process-wide TensorRT logger: Polygraphy's loaders use ours (TensorRT keeps the first one)
    if hasattr(polygraphy_trt_util, "TRT_LOGGER"):
        polygraphy_trt_util.TRT_LOGGER = logger()
    counts: dict[str, int] = {}

    network: Callable[[], Any] = NetworkFromOnnxPath(os.fspath(onnx_path), strongly_typed=choice.strongly_typed)
    if plan.layer_constraints:

        def pin(network: tensorrt.INetworkDefinition) -> None:
            counts["fp32"] = _pin_fp32(network, hints, options.fp32_layers)

        network = PostprocessNetwork(network, pin, "keep layers in FP32")
    if plan.int8_source == "dynamic_range":

        def set_ranges(network: tensorrt.INetworkDefinition) -> None:
            counts["ranges"] = _set_dynamic_ranges(network, ranges or {})

        network = PostprocessNetwork(network, set_ranges, "INT8 dynamic ranges")

    trt_calibrator = None
    calib_shapes: dict[str, tuple[int, ...]] = {}
    if plan.int8_source == "calibrator":
        if calibrator is not None:
            trt_calibrator, calib_shapes = calibrator.calibrator, calibrator.shapes
        else:
            trt_calibrator = cache_only_calibrator(native_cache_text(ranges or {}, version))

    missing = sorted(set(dynamic) - set(calib_shapes)) if calib_shapes else []
    if missing:
        raise CalibrationError(f"the calibration batches have no {', '.join(missing)} (the network's inputs)")
    shapes = Profile()
    for name, (lo, mid, hi) in dynamic.items():
        shapes.add(name, lo, mid, hi)
    memory = None if choice.workspace_bytes is None else {trt.MemoryPoolType.WORKSPACE: choice.workspace_bytes}
    timing = choice.timing_cache if choice.timing_cache and Path(choice.timing_cache).is_file() else None
    config = CreateConfig(
        tf32=choice.tf32,
        fp16=choice.fp16,
        int8=choice.int8,
        profiles=[shapes],
        precision_constraints=choice.precision_constraints,
        memory_pool_limits=memory,
        load_timing_cache=timing,
        builder_optimization_level=choice.optimization_level,
        calibrator=trt_calibrator,
        use_dla=choice.use_dla,
        allow_gpu_fallback=choice.gpu_fallback,
    )

    def finish_config(builder: tensorrt.Builder, network: tensorrt.INetworkDefinition, cfg: Any) -> None:
        # TensorRT returns -1 from add_optimization_profile for a profile it rejects; Polygraphy
        # does not look, and the build would fail later without saying why
        if cfg.num_optimization_profiles != 1:
            raise EngineError(
                f"TensorRT rejected the optimisation profile {profile} for {sorted(dynamic) or 'the inputs'}: "
                f"{cap.summary()}"
            )
        if choice.dla_core is not None:
            if builder.num_DLA_cores <= choice.dla_core:
                raise EngineError(f"--dla-core {choice.dla_core}: this device has {builder.num_DLA_cores} DLA core(s)")
            cfg.DLA_core = int(choice.dla_core)  # Polygraphy always picks core 0
            if not profile.static:
                log.warning(
                    "DLA needs static shapes: layers see a dynamic batch %s and fall back to the GPU; use --batch N",
                    profile,
                )
        if calib_shapes and dynamic:
            # calibration runs at the calibration profile's OPT shape: the calibration batch
            calib = Profile()
            for name, shape in calib_shapes.items():
                calib.add(name, shape, shape, shape)
            cfg.set_calibration_profile(calib.to_trt(builder, network))

    if choice.timing_cache:  # Polygraphy locks the cache with a sibling .lock file: the folder must exist
        try:
            Path(choice.timing_cache).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EngineError(f"--timing-cache {choice.timing_cache}: cannot create its folder ({exc})") from exc
    build = EngineBytesFromNetwork(
        network, PostprocessConfig(config, finish_config), save_timing_cache=choice.timing_cache
    )
    log.info(
        "building %s engine (TensorRT %s, batch %s) from %s ...", plan.precision, version, profile, Path(onnx_path).name
    )
    try:
        serialized = build()
    except OSError as exc:  # the timing cache's lock or file (read-only bundle, full disk)
        raise EngineError(
            f"building from {Path(onnx_path).name}: {exc}; pass --timing-cache PATH in a writable folder"
        ) from exc
    except PolygraphyException as exc:
        issues = parser_issues(poly.errors, hints.node_names, hints.node_ops)
        if issues:
            raise EngineError(format_parser_errors(onnx_path, issues)) from None
        _raise_calibration_error(calibrator)
        raise EngineError(_build_failure(plan, options, onnx_path, cap, poly, str(exc))) from None
    _raise_calibration_error(calibrator)
    if "fp32" in counts:
        log.info("precision: %d layer(s) kept in FP32 (%s)", counts["fp32"], ",".join(options.fp32_layers))
    if "ranges" in counts:
        log.info("INT8: dynamic ranges set on %d tensor(s)", counts["ranges"])
    return bytes(serialized)


def _raise_calibration_error(calibrator: DeviceCalibrator | None) -> None:
    error = calibrator.error if calibrator is not None else None
    if error is not None:
        raise error if isinstance(error, CalibrationError) else CalibrationError(f"calibration failed: {error}")


def _build_failure(
    plan: BuildPlan,
    options: EngineBuildOptions,
    onnx_path: str | os.PathLike[str],
    cap: LogCapture,
    poly: _PolygraphyLines,
    polygraphy_error: str,
) -> str:
    text = cap.summary() if cap.errors else "; ".join(poly.errors[-6:]) or polygraphy_error.strip()
    hint = []
    if options.workspace_mib is not None or "workspace" in text.lower() or "memory" in text.lower():
        hint.append(
            f"the workspace limit ({options.workspace_mib or 'default'} MiB) may be too small: raise "
            "--workspace or leave it unset"
        )
    if options.dla_core is not None:
        hint.append("try without --dla-core")
    if options.timing_cache and "timing" in text.lower():
        hint.append(f"delete the timing cache {options.timing_cache}")
    return f"TensorRT could not build the {plan.precision} engine from {onnx_path}: {text}" + (
        f". Hint: {'; '.join(hint)}" if hint else ""
    )
