"""Build engines from bundles and keep them in ``BUNDLE/engines/`` (one per TensorRT, GPU, options).

``engine_for_bundle`` is what ``rtdetr-engine`` and ``Detector(BUNDLE, engines=BundleEngines())`` call: it returns an engine
valid for this machine, building (and caching) one from the bundle's ONNX when none is.
``build_engine`` is the same build for any ONNX. ``rtdetr-engine BUNDLE`` runs ``engine_for_bundle`` on the device.

Which ONNX each precision uses:

============  =====================================  ==========================================
precision     TensorRT 8.6-10.x                      TensorRT 11
============  =====================================  ==========================================
fp32          model.onnx                             model.onnx
fp16          model.onnx + FP16 flag (FP32 islands)  model.fp16.onnx (strongly typed)
int8 qdq      8.x: model.int8.qdq.trt8.onnx (FP32-   model.int8.qdq.onnx
(default)     typed) + INT8+FP16 flags, FP32 pins;
              10.x: model.int8.qdq.onnx (FP16-typed
              outside INT8 layers, strongly typed)
int8 implicit model.onnx + calib/ranges.json cache   (removed)
              (--int8-mode implicit)
============  =====================================  ==========================================
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import atomic
from ..backends.trt_logging import tensorrt_version
from ..bundle import Bundle
from ..contract import ModelContract
from ..engine_format import (
    PRECISIONS,
    BatchProfile,
    EngineMetadata,
    cache_key,
    check_engine_file,
    engine_file_name,
    incompatibility,
    load_sidecar,
    sidecar_path,
    version_tuple,
)
from ..errors import EngineError, InputError
from ..onnx_facts import read_onnx_facts
from .builder import NetworkHints
from .calibrators import DeviceCalibrator
from .options import BuildPlan, EngineBuildOptions, default_timing_cache, plan_build

log = logging.getLogger("rtdetr_edge")


@dataclass(frozen=True)
class OnnxBuildFacts:
    """The builder's view of an ONNX file: :class:`~rtdetr_edge.onnx_facts.OnnxFacts` plus its hash and
    FP32-pinning hints."""

    path: Path
    sha256: str
    inputs: dict[str, tuple[int, ...]]
    has_qdq: bool
    has_fp16: bool
    contract_json: str | None
    hints: NetworkHints
    batch_bounds: tuple[int, int]


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "/*?")


def inspect_onnx(
    path: str | os.PathLike[str], fp32_layers: tuple[str, ...] = (), sha256: str | None = None
) -> OnnxBuildFacts:
    """Read inputs, Q/DQ and float16 use, the embedded contract and FP32-pinning hints.

    Args:
        path: ONNX file (external weights are not loaded).
        fp32_layers: ONNX op types and node-name globs to keep in FP32.
        sha256: the file's hash if already known (bundle metadata), else computed.
    """
    try:
        facts = read_onnx_facts(path)
        bounds = facts.batch_bounds
    except InputError as exc:
        raise EngineError(str(exc)) from exc
    op_patterns = {x for x in fp32_layers if not _is_glob(x)}
    globs = [x for x in fp32_layers if _is_glob(x)]
    keep = [
        n for n in facts.nodes if n.op_type in op_patterns or any(fnmatch.fnmatchcase(n.name, pat) for pat in globs)
    ]
    hints = NetworkHints(
        node_names=tuple(n.name for n in facts.nodes),
        node_ops=tuple(n.op_type for n in facts.nodes),
        fp32_nodes=frozenset(n.name for n in keep if n.name),
        fp32_tensors=frozenset(o for n in keep for o in n.outputs if o),
        inputs=dict(facts.inputs),
    )
    return OnnxBuildFacts(
        facts.path,
        sha256 or facts.sha256(),
        facts.inputs,
        facts.has_qdq,
        facts.has_fp16,
        facts.contract_json,
        hints,
        bounds,
    )


def _load_ranges(ranges: Any) -> dict[str, float] | None:
    """Ranges from a dict, a CalibrationRanges, or a ranges.json path."""
    if ranges is None:
        return None
    if isinstance(ranges, dict):
        return {str(k): float(v) for k, v in ranges.items()}
    if isinstance(ranges, (str, os.PathLike)):
        from ..ranges import CalibrationRanges

        ranges = CalibrationRanges.load(ranges)
    table = getattr(ranges, "ranges", None)
    if not isinstance(table, dict):
        raise InputError(f"ranges: expected a dict, CalibrationRanges or ranges.json path, got {type(ranges).__name__}")
    return {str(k): float(v) for k, v in table.items()}


def _intersect(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    lo = max(a[0], b[0])
    highs = [h for h in (a[1], b[1]) if h]
    hi = min(highs) if highs else 0
    if hi and hi < lo:
        raise EngineError(
            f"the graph accepts batches {a[0]}..{a[1] or 'any'} but the contract says "
            f"{b[0]}..{b[1] or 'any'}: they do not overlap"
        )
    return lo, hi


@dataclass(frozen=True)
class _Job:
    trt_version: str
    gpu_name: str
    compute_capability: str
    facts: OnnxBuildFacts
    plan: BuildPlan
    profile: BatchProfile
    options: EngineBuildOptions
    ranges: dict[str, float] | None
    key: str
    contract_json: str | None
    device: int


def _prepare(
    onnx_path: str | os.PathLike[str],
    precision: str,
    options: EngineBuildOptions,
    ranges: dict[str, float] | None,
    contract: ModelContract | str | None,
    calibrator: DeviceCalibrator | None,
    device: int,
    onnx_sha256: str | None = None,
) -> _Job:
    from ..cuda import buffers

    version = tensorrt_version()  # MissingDependencyError naming JetPack / pip routes
    props = buffers.device_properties(device)
    facts = inspect_onnx(onnx_path, options.fp32_layers, onnx_sha256)
    plan = plan_build(
        version,
        precision,
        options,
        facts.has_qdq,
        facts.has_fp16,
        has_ranges=bool(ranges),
        has_calibrator=calibrator is not None,
    )
    contract_json = contract.to_json() if isinstance(contract, ModelContract) else contract or facts.contract_json
    bounds = facts.batch_bounds
    if contract_json:
        c = ModelContract.from_json(contract_json, str(onnx_path))
        bounds = _intersect(bounds, (c.min_batch, c.max_batch))
    profile = options.batch.clamp(*bounds)
    if profile != options.batch:
        log.info(
            "batch profile %s clamped to %s (the graph accepts %s..%s)",
            options.batch,
            profile,
            bounds[0],
            bounds[1] or "any",
        )
    extra: dict[str, Any] = {}
    if plan.layer_constraints:
        extra["fp32_layers"] = sorted(options.fp32_layers)
    if plan.int8_mode == "implicit":
        extra["int8_source"] = "user-calibrator" if calibrator is not None else plan.int8_source
        if calibrator is None and ranges:
            extra["ranges"] = hashlib.sha256(repr(sorted(ranges.items())).encode()).hexdigest()[:16]
    key = cache_key(
        facts.sha256,
        precision,
        version,
        props.name,
        props.compute_capability,
        profile,
        options.dla_core,
        plan.int8_mode,
        extra,
    )
    return _Job(
        version, props.name, props.compute_capability, facts, plan, profile, options, ranges, key, contract_json, device
    )


def _build(job: _Job, out_path: Path, calibrator: DeviceCalibrator | None = None) -> Path:
    from ..cuda import buffers
    from .builder import build_serialized_engine

    for note in job.plan.notes:
        log.info("%s: %s", job.plan.precision, note)
    with buffers.on_device(job.device):
        blob = build_serialized_engine(
            job.facts.path, job.plan, job.options, job.profile, job.facts.hints, job.ranges, calibrator
        )
    atomic.write_bytes(out_path, blob)
    meta = EngineMetadata(
        tensorrt_version=job.trt_version,
        gpu_name=job.gpu_name,
        compute_capability=job.compute_capability,
        precision=job.plan.precision,
        int8_mode=job.plan.int8_mode,
        batch=job.profile,
        onnx_sha256=job.facts.sha256,
        contract_json=job.contract_json,
        engine_bytes=len(blob),
        engine_sha256=hashlib.sha256(blob).hexdigest(),
        dla_core=job.options.dla_core,
        cache_key=job.key,
        build_options={
            **job.options.to_dict(),
            "onnx": job.facts.path.name,
            "plan": list(job.plan.notes),
            "network_flags": list(job.plan.network_flags),
            "builder_flags": list(job.plan.builder_flags),
        },
    )
    meta.save(sidecar_path(out_path))  # after the engine: an engine without sidecar counts as invalid
    log.info("engine written: %s (%.1f MB)", out_path, len(blob) / 1e6)
    return out_path


def build_engine(
    onnx_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    precision: str,
    options: EngineBuildOptions | None = None,
    ranges: Any = None,
    contract: ModelContract | str | None = None,
    calibrator: DeviceCalibrator | None = None,
    device: int = 0,
) -> Path:
    """Build a TensorRT engine from an ONNX file and write it (atomically) with its sidecar.

    Args:
        onnx_path: the ONNX (fp32, or the bundle's fp16 / Q/DQ graph, see the module table).
        out_path: engine file to write; ``<out>.json`` gets the sidecar.
        precision: fp32, fp16 or int8.
        options: :class:`EngineBuildOptions` (default: batch 1,1,8, TensorRT defaults otherwise).
        ranges: implicit INT8 ranges: dict, ``CalibrationRanges`` or ``calib/ranges.json`` path.
        contract: model contract for the sidecar (default: the one embedded in the ONNX).
        calibrator: from :func:`rtdetr_edge.engine.calibrators.make_calibrator` (implicit INT8 on data).
        device: CUDA device to build on.

    Returns:
        ``out_path``.
    """
    opts = options or EngineBuildOptions()
    table = _load_ranges(ranges)
    job = _prepare(onnx_path, precision, opts, table, contract, calibrator, device)
    return _build(job, Path(out_path), calibrator)


def int8_source(bundle: Bundle, major: int, mode: str) -> tuple[Path, str | None, str | None, str]:
    """(onnx, its sha256, ranges.json or None, resolved mode) for an INT8 engine from ``bundle``.

    The Q/DQ route takes the FP16-typed ``model.int8.qdq.onnx`` (opset 19) on TensorRT >= 10 and
    the FP32-typed ``model.int8.qdq.trt8.onnx`` (opset <= 17, built with INT8+FP16 flags) on 8.x;
    bundles made before the split have one FP32-typed Q/DQ file, used on every version.
    """
    art = bundle.artifacts.get("int8")
    if art is None:
        raise EngineError(
            f"{bundle.path}: no int8 artifact (the bundle has {', '.join(bundle.precisions)}); "
            "rebuild it with rtdetr-build --precision int8 on the host"
        )
    fp32_file = bundle.artifact("fp32")["file"]
    qdq: tuple[Path, str | None] | None = None
    if art.get("file") and art["file"] != fp32_file:  # paths through the bundle: hashes checked on use
        trt8 = bundle.trt8_onnx_path() if major < 10 else None
        qdq = (trt8, art.get("trt8_sha256")) if trt8 is not None else (bundle.onnx_path("int8"), art.get("sha256"))
    rel = art.get("ranges") or ("calib/ranges.json" if (bundle.path / "calib/ranges.json").is_file() else None)
    ranges = str(bundle.path / rel) if rel and (bundle.path / rel).is_file() else None
    if mode == "auto":
        # Q/DQ wherever the bundle has it: it carries the plan (INT8 layers, FP16 elsewhere, FP32
        # where planned); the calibration cache (implicit) only for bundles without one
        mode = "qdq" if qdq else "implicit"
    if mode == "qdq":
        if qdq is None:
            raise EngineError(f"{bundle.path}: --int8-mode qdq but the bundle has no Q/DQ ONNX (model.int8.qdq.onnx)")
        return qdq[0], qdq[1], None, "qdq"
    if ranges is None:
        raise EngineError(f"{bundle.path}: implicit INT8 needs calib/ranges.json, which the bundle lacks")
    return bundle.onnx_path("fp32"), bundle.artifact("fp32").get("sha256"), ranges, "implicit"


def frame_source(bundle: Bundle, precision: str, major: int, int8_mode: str, frame_size: tuple[int, int]) -> Path:
    """The frame-input ONNX an engine of ``precision`` is built from on TensorRT ``major``.

    The same choice as for the tensor-input graphs (module table): int8 Q/DQ from the int8 frame
    graph (its TensorRT 8.x form below 10), implicit int8 and fp32 from the fp32 frame graph,
    fp16 from the fp16 frame graph on TensorRT >= 11 and from the fp32 one with the FP16 flag
    before. ``int8_mode`` is the resolved route (``qdq`` or ``implicit``).
    """
    source = "int8" if precision == "int8" and int8_mode == "qdq" else "fp32"
    if precision == "fp16" and major >= 11:
        source = "fp16"
    return bundle.frame_onnx_path(source, frame_size, trt8=source == "int8" and major < 10)


def engine_for_bundle(
    bundle: Bundle,
    precision: str,
    options: EngineBuildOptions | None = None,
    device: int = 0,
    rebuild: bool = False,
    frame_size: tuple[int, int] | None = None,
) -> Path:
    """A valid engine for this machine from ``BUNDLE/engines/``, built and cached if missing.

    Args:
        bundle: an open :class:`~rtdetr_edge.bundle.Bundle`.
        precision: fp32, fp16 or int8.
        options: how to build (batch profile, workspace, INT8 route, ...).
        device: CUDA device to build for.
        rebuild: build even if a valid cached engine exists.
        frame_size: (width, height): build from the bundle's frame-input artifact of that size
            (``rtdetr-build --frame-size``; input ``frames`` uint8 ``[N,H,W,3]``, batch profile on N;
            its embedded contract, with the frame spec, goes into the sidecar). None (default):
            the graph taking the preprocessed tensor.

    An engine is reused only if its sidecar matches this TensorRT version, this GPU and the
    requested options (cache key) and the file has the recorded size; otherwise it is rebuilt.
    Engines for other machines are left in place (bundles are shared between devices).
    """
    if precision not in PRECISIONS:
        raise InputError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    options = options or EngineBuildOptions()
    version = tensorrt_version()
    major = version_tuple(version)[0]
    ranges: str | None = None
    if precision == "int8":
        onnx, sha256, ranges, mode = int8_source(bundle, major, options.int8_mode)
        options = dataclasses.replace(options, int8_mode=mode)
        if mode == "implicit":
            # the layers the host kept out of INT8 (heads, sampling offsets, sensitivity decisions)
            # stay out on the device too: the Q/DQ ONNX encodes that, the fp32 ONNX does not
            # (pinned to FP32 here: the implicit route cannot say FP16-but-not-INT8)
            kept = tuple(n for n in bundle.artifact("int8").get("excluded_nodes", []) if n.startswith("/"))
            options = dataclasses.replace(options, fp32_layers=tuple(options.fp32_layers) + kept)
    elif precision == "fp16" and major >= 11:
        if "fp16" not in bundle.precisions:
            raise EngineError(
                f"{bundle.path}: TensorRT {version} builds FP16 only from a float16 ONNX "
                "(model.fp16.onnx) and the bundle has none; rebuild it with --precision fp16 on the host"
            )
        onnx, sha256 = bundle.onnx_path("fp16"), bundle.artifact("fp16").get("sha256")
    else:
        onnx, sha256 = bundle.onnx_path("fp32"), bundle.artifact("fp32").get("sha256")
    engines = bundle.engines_dir
    if options.timing_cache is None:
        from ..cuda import buffers

        props = buffers.device_properties(device)
        cache_file = default_timing_cache(engines, version, props.compute_capability, props.name)
        options = dataclasses.replace(options, timing_cache=cache_file)
    contract: ModelContract | None = bundle.contract
    if frame_size is not None:
        # the same graph with the frame front prepended; Q/DQ and FP16 are in the model part only,
        # the front is pinned to FP32 by the default fp32_layers (frame/*). The implicit route's
        # ranges name the model's tensors, which the front leaves unchanged.
        onnx = frame_source(bundle, precision, major, options.int8_mode, frame_size)
        sha256, contract = None, None  # the frame graph's own contract (with its frame spec)
    table = _load_ranges(ranges)
    job = _prepare(onnx, precision, options, table, contract, None, device, sha256)
    path = engines / engine_file_name(
        precision, job.profile, version, job.compute_capability, job.key, options.dla_core
    )
    if path.is_file() and not rebuild:
        reason = _stale(path, job)
        if reason is None:
            log.info("using cached engine %s", path)
            return path
        log.info("rebuilding %s: %s", path.name, reason)
    return _build(job, path)


def _stale(path: Path, job: _Job) -> str | None:
    """Why a cached engine cannot be reused (None = it can)."""
    try:
        meta = load_sidecar(path)
        if meta is None:
            return "its sidecar is missing"
        why = incompatibility(meta, job.trt_version, job.gpu_name, job.compute_capability)
        if why:
            return why
        if meta.cache_key != job.key:
            return "it was built with other options"
        check_engine_file(path, meta)
    except EngineError as exc:
        return str(exc)
    return None


class BundleEngines:
    """An engine source for :class:`~rtdetr_edge.detector.Detector`: build on first use, cache in the bundle.

    Args:
        options: how engines are built (default :class:`EngineBuildOptions`).

    ``Detector(bundle, engines=BundleEngines())`` runs the bundle's cached engine for this GPU and
    TensorRT version, building it first (minutes on a Jetson) when it is missing or stale.
    """

    def __init__(self, options: EngineBuildOptions | None = None) -> None:
        self.options = options or EngineBuildOptions()

    def engine_for(self, bundle: Bundle, precision: str, device: int) -> Path:
        return engine_for_bundle(bundle, precision, self.options, device)

    def engine_for_frames(self, bundle: Bundle, precision: str, device: int, frame_size: tuple[int, int]) -> Path:
        """The engine of the bundle's frame-input artifact for ``frame_size`` (width, height), built on first use."""
        return engine_for_bundle(bundle, precision, self.options, device, frame_size=frame_size)
