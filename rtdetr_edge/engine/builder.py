"""Build a serialized TensorRT engine with NVIDIA's Polygraphy, following an :class:`~rtdetr_edge.engine_recipe.EngineRecipe`.

One of the three modules that import ``tensorrt`` (inside functions, after
:func:`~rtdetr_edge.backends.trt_logging.load_tensorrt` has checked it). Polygraphy
(``polygraphy.backend.trt``, NVIDIA's tested wrappers of the TensorRT builder API for 8.x-11.x)
does the TensorRT calls:

* ``NetworkFromOnnxPath``: builder, network (explicit batch on 8.x, ``strongly_typed``), ONNX
  parser with external weights found by path;
* ``CreateConfig``: the optimisation profile, FP16/INT8/TF32 flags, precision constraints,
  memory pool limits, timing cache loading, builder optimisation level, DLA with GPU fallback
  (weakly typed: Polygraphy's ``use_dla``);
* ``EngineBytesFromNetwork``: ``build_serialized_network`` and saving (merging) the timing cache.

What stays here, because Polygraphy lacks it: which layers belong to the ONNX nodes pinned to FP32
(:func:`owning_node`), the DLA core (Polygraphy always sets core 0), DLA on a strongly typed
network (device type, core and GPU fallback without Polygraphy's precision-constraint flag, which
such a network refuses), a check that TensorRT accepted the optimisation profile, parser errors
worded per node, and our error messages (TensorRT's and Polygraphy's error lines are collected
for the call that produced them).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._optional import require
from ..backends.trt_logging import LogCapture, capture, load_tensorrt, logger
from ..engine_format import BatchProfile, version_tuple
from ..engine_recipe import BUILDER_FLAGS, EngineRecipe
from ..errors import EngineError
from .polygraphy_log import PolygraphyLines, polygraphy_log

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


@dataclass(frozen=True)
class ConfigChoice:
    """What :func:`config_choice` gives Polygraphy's loaders for one recipe (CPU-testable)."""

    strongly_typed: bool  # the network flag (TensorRT 10; 11 is strongly typed whatever is asked)
    fp16: bool
    int8: bool
    tf32: bool
    precision_constraints: str | None  # "prefer" or None
    use_dla: bool  # Polygraphy's use_dla (weakly typed DLA)
    direct_dla: bool  # device type, DLA core and GPU fallback set by us (strongly typed DLA)
    gpu_fallback: bool
    dla_core: int | None
    workspace_bytes: int | None
    optimization_level: int | None


def config_choice(r: EngineRecipe) -> ConfigChoice:
    """The recipe's decisions as Polygraphy's ``NetworkFromOnnxPath``/``CreateConfig`` arguments."""
    unknown = sorted(set(r.builder_flags) - set(BUILDER_FLAGS))
    if unknown:
        raise EngineError(f"internal: the recipe names flags the builder does not map: {', '.join(unknown)}")
    flags = set(r.builder_flags)
    options = r.options
    return ConfigChoice(
        strongly_typed=r.strongly_typed and r.line == "10",
        fp16="FP16" in flags,
        int8="INT8" in flags,
        tf32=r.tf32,
        precision_constraints="prefer" if "PREFER_PRECISION_CONSTRAINTS" in flags else None,
        use_dla=r.dla_route == "polygraphy",
        direct_dla=r.dla_route == "direct",
        gpu_fallback="GPU_FALLBACK" in flags,
        dla_core=r.dla_core,
        workspace_bytes=None if options.workspace_mib is None else int(options.workspace_mib) << 20,
        optimization_level=options.builder_optimization_level,
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


def build_serialized_engine(
    r: EngineRecipe, hints: NetworkHints, timing_cache: str | None = None, cache_hits_only: bool = False
) -> bytes:
    """Parse the recipe's source ONNX and build a serialized engine as the recipe says.

    Args:
        r: from :func:`~rtdetr_edge.engine_recipe.recipe` for the running TensorRT.
        hints: the ONNX's inputs, node names/ops (error messages, FP32 pinning).
        timing_cache: the timing-cache file to load (if it exists) and save (None: none).
        cache_hits_only: the self-test's proof that a rebuild reads the timing cache: TensorRT's
            ``ERROR_ON_TIMING_CACHE_MISS`` ("Emit error when a tactic being timed is not present in
            the timing cache", NvInfer.h, release/10.3:8368-8370; absent from 8.6) is set, and any
            error line TensorRT or Polygraphy logs during the build fails it. Needs TensorRT >= 10
            and an existing ``timing_cache``.

    Raises:
        EngineError: parser errors (with node names), unsupported options, or a failed build
            with TensorRT's own error lines and a hint (workspace, DLA).
    """
    load_tensorrt("building TensorRT engines")
    require("polygraphy", "building TensorRT engines")
    import tensorrt as trt

    if cache_hits_only:
        if version_tuple(str(trt.__version__))[0] < 10:
            raise EngineError(f"TensorRT {trt.__version__} has no ERROR_ON_TIMING_CACHE_MISS flag (added in 10.x)")
        if not timing_cache or not Path(timing_cache).is_file():
            raise EngineError(f"cache_hits_only needs an existing timing cache, got {timing_cache!r}")
    with capture() as cap, polygraphy_log() as poly:
        blob = _build(trt, r, hints, timing_cache, cap, poly, cache_hits_only)
        if cache_hits_only and (cap.errors or poly.errors):
            lines = "; ".join([*cap.errors, *poly.errors][-6:])
            raise EngineError(f"the rebuild missed the timing cache {timing_cache}: {lines}")
        return blob


def _build(
    trt: Any,
    r: EngineRecipe,
    hints: NetworkHints,
    timing_cache: str | None,
    cap: LogCapture,
    poly: PolygraphyLines,
    cache_hits_only: bool = False,
) -> bytes:
    from polygraphy.backend.trt import (
        CreateConfig,
        EngineBytesFromNetwork,
        NetworkFromOnnxPath,
        PostprocessConfig,
        PostprocessNetwork,
        Profile,
    )
    from polygraphy.exception import PolygraphyException

    version = str(trt.__version__)
    if version != r.tensorrt_version:
        raise EngineError(f"internal: a recipe for TensorRT {r.tensorrt_version} given to TensorRT {version}")
    onnx_path = r.source.path
    if not hints.inputs:
        raise EngineError(f"internal: no input shapes for {onnx_path} (read them with inspect_onnx)")
    choice = config_choice(r)
    dynamic = batch_shapes(hints.inputs, r.profile)
    # Polygraphy's builder and parser log through Polygraphy's own TensorRT logger, whose lines reach
    # `poly` (polygraphy_log); ours stays with our runtimes. Two loggers are fine: "The logger used to
    # create an instance of IBuilder, IRuntime or IRefitter is used for all objects created through
    # that interface" (NvInferRuntimeBase.h, release/8.6:502, release/10.3:675); only the global
    # logger of standalone functions keeps the first one given (getLogger(), NvInferRuntime.h,
    # release/8.6:3743-3747, release/10.3:4612-4617), which TensorRT notes in one INFO line
    logger()  # ours first, with the plugin library initialised (trt_logging.logger)
    counts: dict[str, int] = {}

    network: Callable[[], Any] = NetworkFromOnnxPath(os.fspath(onnx_path), strongly_typed=choice.strongly_typed)
    if r.fp32_pins:

        def pin(network: tensorrt.INetworkDefinition) -> None:
            counts["fp32"] = _pin_fp32(network, hints, r.fp32_pins)

        network = PostprocessNetwork(network, pin, "keep layers in FP32")

    shapes = Profile()
    for name, (lo, mid, hi) in dynamic.items():
        shapes.add(name, lo, mid, hi)
    memory = None if choice.workspace_bytes is None else {trt.MemoryPoolType.WORKSPACE: choice.workspace_bytes}
    timing = timing_cache if timing_cache and Path(timing_cache).is_file() else None
    config = CreateConfig(
        tf32=choice.tf32,
        fp16=choice.fp16,
        int8=choice.int8,
        profiles=[shapes],
        precision_constraints=choice.precision_constraints,
        memory_pool_limits=memory,
        load_timing_cache=timing,
        builder_optimization_level=choice.optimization_level,
        use_dla=choice.use_dla,
        allow_gpu_fallback=choice.gpu_fallback and choice.use_dla,
        **({"error_on_timing_cache_miss": True} if cache_hits_only else {}),
    )

    def finish_config(builder: tensorrt.Builder, network: tensorrt.INetworkDefinition, cfg: Any) -> None:
        # TensorRT returns -1 from add_optimization_profile for a profile it rejects; Polygraphy
        # does not look, and the build would fail later without saying why
        if cfg.num_optimization_profiles != 1:
            raise EngineError(
                f"TensorRT rejected the optimisation profile {r.profile} for {sorted(dynamic) or 'the inputs'}: "
                f"{'; '.join(poly.errors[-6:]) or cap.summary()}"
            )
        if choice.dla_core is not None:
            if builder.num_DLA_cores <= choice.dla_core:
                raise EngineError(f"--dla-core {choice.dla_core}: this device has {builder.num_DLA_cores} DLA core(s)")
            if choice.direct_dla:
                # strongly typed (TensorRT >= 11.4.1): no precision flag exists or is allowed; the
                # device type, core and GPU fallback are all DLA needs ("Strongly Typed Networks
                # for DLA", TensorRT 11.4.1 documentation)
                cfg.default_device_type = trt.DeviceType.DLA
                if choice.gpu_fallback:
                    cfg.set_flag(trt.BuilderFlag.GPU_FALLBACK)
            cfg.DLA_core = int(choice.dla_core)  # Polygraphy always picks core 0

    if timing_cache:  # Polygraphy locks the cache with a sibling .lock file: the folder must exist
        try:
            Path(timing_cache).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EngineError(f"--timing-cache {timing_cache}: cannot create its folder ({exc})") from exc
    build = EngineBytesFromNetwork(network, PostprocessConfig(config, finish_config), save_timing_cache=timing_cache)
    log.info("building %s engine (TensorRT %s, batch %s) from %s ...", r.precision, version, r.profile, onnx_path.name)
    try:
        serialized = build()
    except OSError as exc:  # the timing cache's lock or file (read-only bundle, full disk)
        raise EngineError(
            f"building from {onnx_path.name}: {exc}; pass --timing-cache PATH in a writable folder"
        ) from exc
    except PolygraphyException as exc:
        issues = parser_issues(poly.errors, hints.node_names, hints.node_ops)
        if issues:
            raise EngineError(format_parser_errors(onnx_path, issues)) from None
        raise EngineError(_build_failure(r, timing_cache, cap, poly, str(exc))) from None
    if "fp32" in counts:
        log.info("precision: %d layer(s) pinned to FP32 (%s)", counts["fp32"], ",".join(r.fp32_pins))
    return bytes(serialized)


def _build_failure(
    r: EngineRecipe, timing_cache: str | None, cap: LogCapture, poly: PolygraphyLines, polygraphy_error: str
) -> str:
    text = cap.summary() if cap.errors else "; ".join(poly.errors[-6:]) or polygraphy_error.strip()
    hint = []
    workspace = r.options.workspace_mib
    if workspace is not None or "workspace" in text.lower() or "memory" in text.lower():
        hint.append(
            f"the workspace limit ({workspace or 'default'} MiB) may be too small: raise --workspace or leave it unset"
        )
    if r.dla_core is not None:
        hint.append("try without --dla-core")
    if timing_cache and "timing" in text.lower():
        hint.append(f"delete the timing cache {timing_cache}")
    return f"TensorRT could not build the {r.precision} engine from {r.source.path}: {text}" + (
        f". Hint: {'; '.join(hint)}" if hint else ""
    )
