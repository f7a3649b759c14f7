"""Build engines from bundles and keep them in ``BUNDLE/engines/`` (one per recipe and device).

``engine_for_bundle`` is what ``rtdetr-engine`` and ``Detector(BUNDLE, engines=BundleEngines())``
call: it returns an engine valid for this machine, building (and caching) one when none is.
``build_engine`` is the same build for a lone ONNX. What each engine is built from and how is
:func:`rtdetr_edge.engine_recipe.recipe`'s decision alone (its module has the table); this module
finds the device, checks the source against the bundle's recorded hash, builds, and writes the
engine with its sidecar.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .. import atomic
from ..backends.trt_logging import tensorrt_version
from ..bundle import Bundle
from ..contract import ModelContract
from ..engine_format import (
    PRECISIONS,
    DeviceIdentity,
    EngineMetadata,
    check_engine_file,
    incompatibility,
    load_sidecar,
    sidecar_path,
)
from ..engine_recipe import EngineBuildOptions, EngineRecipe, bundle_graphs, onnx_graphs, recipe, typing_of
from ..errors import EngineError, InputError
from ..onnx_facts import read_onnx_facts
from .builder import NetworkHints

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


def device_identity(device: int = 0) -> DeviceIdentity:
    """The :class:`~rtdetr_edge.engine_format.DeviceIdentity` of CUDA device ``device``."""
    from ..cuda import buffers

    return DeviceIdentity.of(buffers.device_properties(device))


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


def build_from_recipe(
    r: EngineRecipe,
    out_path: str | os.PathLike[str],
    device: int = 0,
    contract_json: str | None = None,
    timing_cache: str | None = None,
) -> Path:
    """Build the engine ``r`` describes on CUDA device ``device`` and write it (atomically) with its sidecar.

    Args:
        r: the recipe (its source already checked against the bundle's hash by the caller).
        out_path: engine file to write; ``<out>.json`` gets the sidecar.
        device: CUDA device to build on.
        contract_json: the model contract for the sidecar (default: the one embedded in the ONNX).
        timing_cache: timing-cache file to load and save (None: none).
    """
    from ..cuda import buffers
    from .builder import build_serialized_engine

    ident = device_identity(device)
    facts = inspect_onnx(r.source.path, r.fp32_pins, r.source.sha256 or None)
    if r.profile != r.options.batch:
        log.info("batch profile %s clamped to %s (what the graph accepts)", r.options.batch, r.profile)
    for note in r.notes:
        log.info("%s engine: %s", r.precision, note)
    with buffers.on_device(device):
        blob = build_serialized_engine(r, facts.hints, timing_cache)
    out = Path(out_path)
    atomic.write_bytes(out, blob)
    meta = EngineMetadata(
        tensorrt_version=r.tensorrt_version,
        gpu_name=ident.name,
        compute_capability=ident.compute_capability,
        sm_count=ident.sm_count,
        memory_gib=ident.memory_gib,
        precision=r.precision,
        int8_mode=r.int8_kind,
        batch=r.profile,
        onnx_sha256=facts.sha256,
        contract_json=contract_json or facts.contract_json,
        engine_bytes=len(blob),
        engine_sha256=hashlib.sha256(blob).hexdigest(),
        dla_core=r.dla_core,
        cache_key=r.cache_key(ident),
        build_options=r.options.to_dict(),
        recipe=r.decision(),
    )
    meta.save(sidecar_path(out))  # after the engine: an engine without sidecar counts as invalid
    log.info("engine written: %s (%.1f MB)", out, len(blob) / 1e6)
    return out


def onnx_recipe(
    onnx_path: str | os.PathLike[str],
    precision: str,
    options: EngineBuildOptions,
    tensorrt_version: str,
    contract: ModelContract | None = None,
) -> EngineRecipe:
    """The recipe for a lone ONNX file: its typing read from the graph, its batch range from the graph and ``contract``."""
    facts = inspect_onnx(onnx_path)
    bounds = facts.batch_bounds
    text = contract.to_json() if contract is not None else facts.contract_json
    if text:
        c = ModelContract.from_json(text, str(onnx_path))
        bounds = _intersect(bounds, (c.min_batch, c.max_batch))
    graphs = onnx_graphs(facts.path, facts.sha256, typing_of(facts.has_qdq, facts.has_fp16), bounds)
    return recipe(graphs, precision, tensorrt_version, options)


def build_engine(
    onnx_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    precision: str,
    options: EngineBuildOptions | None = None,
    contract: ModelContract | None = None,
    device: int = 0,
) -> Path:
    """Build a TensorRT engine from a lone ONNX file and write it (atomically) with its sidecar.

    Args:
        onnx_path: the ONNX: fp32, float16 or Q/DQ, as the recipe for ``precision`` on this
            TensorRT needs (a bundle's graphs: :func:`engine_for_bundle`).
        out_path: engine file to write; ``<out>.json`` gets the sidecar.
        precision: fp32, fp16 or int8.
        options: :class:`~rtdetr_edge.engine_recipe.EngineBuildOptions` (default: batch 1,1,8).
        contract: model contract for the sidecar (default: the one embedded in the ONNX).
        device: CUDA device to build on.

    Returns:
        ``out_path``.
    """
    opts = options or EngineBuildOptions()
    r = onnx_recipe(onnx_path, precision, opts, tensorrt_version(), contract)
    return build_from_recipe(
        r, out_path, device, contract.to_json() if contract is not None else None, opts.timing_cache
    )


def bundle_recipe(
    bundle: Bundle,
    precision: str,
    options: EngineBuildOptions,
    tensorrt_version: str,
    frame_size: tuple[int, int] | None = None,
) -> EngineRecipe:
    """The recipe of ``bundle``'s ``precision`` engine on ``tensorrt_version`` (frames of ``frame_size``)."""
    return recipe(bundle_graphs(bundle, frame_size), precision, tensorrt_version, options)


def checked_source(bundle: Bundle, r: EngineRecipe) -> Path:
    """The recipe's source file, checked against the sha256 the bundle recorded for it (BundleError if not)."""
    return bundle.checked_file(r.source.file, r.source.sha256, f"{r.precision} ({r.source.typing} graph)")


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
        options: what the user chooses (batch profile, workspace, DLA, FP32 pins, ...).
        device: CUDA device to build for.
        rebuild: build even if a valid cached engine exists.
        frame_size: (width, height): build from the bundle's frame-input graphs of that size
            (``rtdetr-build --frame-size``; input ``frames`` uint8 ``[N,H,W,3]``, batch profile on N;
            its embedded contract, with the frame spec, goes into the sidecar). None (default):
            the graphs taking the preprocessed tensor.

    An engine is reused only if its sidecar names this TensorRT version and this device and its
    cache key is the recipe's (same source hash, decisions and options) and the file has the
    recorded size; otherwise it is rebuilt. Engines for other machines are left in place (bundles
    are shared between devices).
    """
    if precision not in PRECISIONS:
        raise InputError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    options = options or EngineBuildOptions()
    version = tensorrt_version()
    ident = device_identity(device)
    r = bundle_recipe(bundle, precision, options, version, frame_size)
    checked_source(bundle, r)
    path = bundle.engines_dir / r.file_name(ident)
    if path.is_file() and not rebuild:
        reason = stale_reason(path, r, version, ident)
        if reason is None:
            log.info("using cached engine %s", path)
            return path
        log.info("rebuilding %s: %s", path.name, reason)
    contract_json = bundle.contract.to_json() if frame_size is None else None  # frames: the graph's own contract
    return build_from_recipe(r, path, device, contract_json, r.timing_cache(bundle.engines_dir, ident))


def stale_reason(path: Path, r: EngineRecipe, trt_version: str, device: DeviceIdentity) -> str | None:
    """Why the engine at ``path`` is not the one recipe ``r`` makes for this TensorRT and device (None = it is)."""
    try:
        meta = load_sidecar(path)
        if meta is None:
            return "its sidecar is missing"
        why = incompatibility(meta, trt_version, device)
        if why:
            return why
        if meta.cache_key != r.cache_key(device):
            return "it was built from another recipe (source, decisions or options)"
        check_engine_file(path, meta)
    except EngineError as exc:
        return str(exc)
    return None


class BundleEngines:
    """An engine source for :class:`~rtdetr_edge.detector.Detector`: build on first use, cache in the bundle.

    Args:
        options: how engines are built (default :class:`~rtdetr_edge.engine_recipe.EngineBuildOptions`).

    ``Detector(bundle, engines=BundleEngines())`` runs the bundle's cached engine for this GPU and
    TensorRT version, building it first (minutes on a Jetson) when it is missing or stale.
    """

    def __init__(self, options: EngineBuildOptions | None = None) -> None:
        self.options = options or EngineBuildOptions()

    def engine_for(self, bundle: Bundle, precision: str, device: int) -> Path:
        return engine_for_bundle(bundle, precision, self.options, device)

    def engine_for_frames(self, bundle: Bundle, precision: str, device: int, frame_size: tuple[int, int]) -> Path:
        """The engine of the bundle's frame-input graphs for ``frame_size`` (width, height), built on first use."""
        return engine_for_bundle(bundle, precision, self.options, device, frame_size=frame_size)
