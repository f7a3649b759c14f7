"""What a TensorRT engine is built from and how: one pure decision for every engine (no TensorRT).

:func:`recipe` takes the graphs a bundle offers (:func:`bundle_graphs`), a precision, the TensorRT
version and the build options, and decides everything about the engine: the source ONNX (path and
recorded sha256), strongly or weakly typed, builder flags, the layers pinned to FP32, TF32, DLA,
the batch profile; :meth:`EngineRecipe.cache_key` and :meth:`EngineRecipe.timing_cache_name` add
the device. ``rtdetr-engine``, the Detector's engine lookup, ``rtdetr-check``'s TensorRT runner,
``rtdetr-triton`` (its plan and the trtexec commands of its README) all read it; nothing else
decides any of it.

============  ===========================  ===============================  ==========================
precision     TensorRT 8.6                 TensorRT 10.x                    TensorRT 11.x
============  ===========================  ===============================  ==========================
fp32          model.onnx, TF32 off         model.onnx, TF32 off             model.onnx (strongly typed)
fp16          model.onnx + FP16 flag,      model.fp16.onnx strongly typed   model.fp16.onnx
              FP32 pins (prefer)           (model.onnx + FP16 flag + pins
                                           if the bundle has no fp16 graph)
int8          model.int8.qdq.trt8.onnx     model.int8.qdq.onnx (FP16-typed  model.int8.qdq.onnx
              (FP32-typed Q/DQ) +          Q/DQ) strongly typed
              INT8+FP16 flags, FP32 pins
============  ===========================  ===============================  ==========================

INT8 is explicit Q/DQ on every line: TensorRT 10.1 deprecated implicit quantization (calibrators,
dynamic ranges) and 11.0 removed it together with the FP16/INT8 and precision-constraint builder
flags (NVIDIA, "Migrating from TensorRT 10.x to 11.x"); weak typing is deprecated since 10.12.
Frame-input graphs (``--frame-size``) follow the same rows with TF32 off: their ``frame/*`` resize
MatMuls are FP32 so that they round to Pillow's grey levels, and TF32, which TensorRT allows for
FP32 layers unless the flag is cleared, would not.

DLA (``dla_core``), from NVIDIA's "Working with DLA" (TensorRT 11.4.1 documentation): TensorRT 10.7
was the last 10.x release with DLA; DLA is back in 11.4.1 on Jetson AGX Orin with JetPack >= 7.2.2,
strongly typed only (the FP16/INT8/precision-constraint flags are gone). So on 8.6 and 10.0-10.7
a DLA engine is built weakly typed (the FP16 flag on model.onnx) through Polygraphy's ``use_dla``;
on 11.4.x strongly typed (model.fp16.onnx) with the device type, core and GPU fallback set on the
config directly; every other version refuses DLA in one line. DLA needs a static batch ("DLA does
not support dynamic dimensions"). INT8 on DLA is refused: DLA still takes INT8 only by implicit
quantization (NVIDIA/Model-Optimizer#1661), and rtdetr-edge's engines take it from Q/DQ graphs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .engine_format import (
    PRECISIONS,
    BatchProfile,
    DeviceIdentity,
    EngineMetadata,
    cache_key,
    load_sidecar,
    sm_tag,
    version_tuple,
)
from .errors import EngineError, InputError, RtdetrEdgeError

if TYPE_CHECKING:
    from .bundle import Bundle

log = logging.getLogger("rtdetr_edge")

# Default batch profile 1,1,8: kernels tuned for the single-camera case (batch 1) while a
# Detector can still send up to 8 images at once; a static 1,1,1 engine would reject partial
# or larger batches (ultralytics#12721) and 8 keeps the input buffer small enough for a Jetson
# (8 x 3 x 640 x 640 float32 = 39 MB). A static profile (--batch 1) lets TensorRT tune for one
# shape only and is what DLA needs; CUDA graphs work with either (one graph per batch size).
DEFAULT_BATCH = "1,1,8"
# Pinned to FP32 where FP16/INT8 come from builder flags (weakly typed builds): ONNX op types, and
# node-name globs (anything with '/' or '*'). The same nodes the host's FP16 writer keeps FP32 in
# model.fp16.onnx and the precision plan marks fp32 (calib.fp16.FP32_OPS and calib.precision_rules),
# so a TensorRT 8.6 engine computes what a 10.x/11 strongly typed one does: LayerNorm overflows in
# FP16 on RT-DETR's decoder (lyuwenyu/RT-DETR#104, NVIDIA/TensorRT#3652); Softmax's exp() of attention
# logits; TopK's ranking of near-equal scores; ``post/*`` is the in-graph postprocessing tail (sigmoid
# -> top-k -> boxes) that rtdetr-edge's exporter adds; ``frame/*`` the frame front of frame-input
# artifacts (its resize MatMuls round to Pillow's grey levels: FP16 would move them by up to 0.25).
# Other Sigmoids (every SiLU activation of the backbone and encoder) are FP16 in the plan and the
# typed graphs, so they are not pinned here. tests/calib/test_precision_rules.py holds this list to
# the host's (the per-family rules of calib.precision_rules are not pinned on the weak route yet).
DEFAULT_FP32_LAYERS = ("LayerNormalization", "Softmax", "TopK", "post/*", "frame/*")
# TensorRT 8.5 (JetPack 5) is not supported: it parses neither opset 17's LayerNormalization nor
# the bundles' INT8 graphs, and JetPack 5's Python 3.8 is below requires-python (docs/support.md)
MIN_TENSORRT = (8, 6)
LAST_DLA_10 = (10, 7)  # "TensorRT 10.7 was the last 10.x release that supported DLA"
FIRST_DLA_11 = (11, 4, 1)  # DLA on Jetson AGX Orin with JetPack >= 7.2.2 (TensorRT 11.4.1 release notes)
END_DLA_11 = (11, 5, 0)  # 11.5 supports no JetPack: DLA on Orin "through TensorRT 11.4.1 rather than 11.5.0"

TensorRTLine = Literal["8.6", "10", "11"]
# How a graph computes: fp32; fp16 (model.fp16.onnx: float16 with FP32 islands); int8-fp16 (Q/DQ,
# float16 outside its INT8 layers, opset 19: TensorRT >= 10); int8-fp32 (Q/DQ, float32 outside its
# INT8 layers, opset 17: TensorRT 8.6, and bundles made before the FP16-typed Q/DQ graph)
GraphTyping = Literal["fp32", "fp16", "int8-fp16", "int8-fp32"]
DlaRoute = Literal["polygraphy", "direct"]
# the BuilderFlag member names a recipe may set (rtdetr_edge.engine.builder maps each one)
BUILDER_FLAGS = ("FP16", "INT8", "PREFER_PRECISION_CONSTRAINTS", "GPU_FALLBACK")


@dataclass
class EngineBuildOptions:
    """What a user chooses about an engine; :func:`recipe` decides the rest.

    How the engine then runs (device, CUDA graphs, memory kind) is
    :class:`rtdetr_edge.backends.options.TensorRTOptions`.

    Attributes:
        batch: optimisation profile over the batch (default 1,1,8; see ``DEFAULT_BATCH``),
            clamped to what the ONNX accepts. Accepts ``"1,1,8"``, ``4`` or ``(1, 1, 8)`` too.
        workspace_mib: builder workspace pool limit in MiB (None = TensorRT's default, the
            device's memory); too small makes tactics fail and the build report it.
        timing_cache: file to load/save the builder's timing cache (None = the recipe's name in
            the bundle's ``engines/``, per TensorRT version and device); speeds up rebuilds a lot.
        builder_optimization_level: 0-5 (None = TensorRT's default 3).
        dla_core: run on this DLA core with GPU fallback (Jetson Orin; FP16/INT8 only; which
            TensorRT versions have DLA: module docstring).
        fp32_layers: layers pinned to FP32 when FP16/INT8 come from builder flags (ONNX op types
            or node-name globs); () pins none. Strongly typed builds take precision from the graph.
    """

    batch: BatchProfile = field(default_factory=lambda: BatchProfile.parse(DEFAULT_BATCH))
    workspace_mib: int | None = None
    timing_cache: str | None = None
    builder_optimization_level: int | None = None
    dla_core: int | None = None
    fp32_layers: tuple[str, ...] = DEFAULT_FP32_LAYERS

    def __post_init__(self) -> None:
        self.batch = BatchProfile.coerce(self.batch)
        if self.workspace_mib is not None and self.workspace_mib < 1:
            raise InputError(f"--workspace {self.workspace_mib}: expected a size in MiB >= 1")
        level = self.builder_optimization_level
        if level is not None and not 0 <= level <= 5:
            raise InputError(f"--builder-opt-level {level}: expected 0-5 (TensorRT's default is 3)")
        if self.dla_core is not None and self.dla_core < 0:
            raise InputError(f"--dla-core {self.dla_core}: expected a core index >= 0")
        if isinstance(self.fp32_layers, str):
            self.fp32_layers = tuple(p for p in self.fp32_layers.split(",") if p)
        self.fp32_layers = tuple(self.fp32_layers)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["batch"] = list(self.batch.as_tuple())
        d["fp32_layers"] = list(self.fp32_layers)
        return d

    @classmethod
    def from_dict(cls, d: Any, source: str = "build options") -> EngineBuildOptions:
        """The options an engine sidecar recorded (:meth:`to_dict`); unknown keys are an error."""
        if not isinstance(d, dict):
            raise EngineError(f"{source}: expected an object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise EngineError(f"{source}: unknown build options {', '.join(unknown)} (built by another rtdetr-edge?)")
        defaults = cls()
        try:
            return cls(
                batch=BatchProfile.coerce(d.get("batch", defaults.batch)),
                workspace_mib=d.get("workspace_mib"),
                timing_cache=d.get("timing_cache"),
                builder_optimization_level=d.get("builder_optimization_level"),
                dla_core=d.get("dla_core"),
                fp32_layers=tuple(d.get("fp32_layers", defaults.fp32_layers)),
            )
        except (TypeError, InputError) as exc:
            raise EngineError(f"{source}: invalid build options ({exc})") from exc


@dataclass(frozen=True)
class SourceGraph:
    """One ONNX file an engine can be built from.

    Attributes:
        file: its name as the bundle records it (relative to the bundle; a lone ONNX: its path).
        path: where it is.
        sha256: its recorded hash (the engine's cache key names it; consumers check the file
            against it before building).
        typing: how it computes (:data:`GraphTyping`).
    """

    file: str
    path: Path
    sha256: str
    typing: GraphTyping


@dataclass(frozen=True)
class GraphSet:
    """The graphs one engine may come from: a bundle's for one input kind, or a lone ONNX.

    Attributes:
        origin: the bundle or file, for messages.
        graphs: at most one per :data:`GraphTyping`.
        batch_bounds: (min, max) batch the graphs accept (max 0 = unbounded).
        frame_size: (width, height) of a frame-input graph set (``--frame-size``), None for the
            preprocessed tensor.
    """

    origin: str
    graphs: tuple[SourceGraph, ...]
    batch_bounds: tuple[int, int] = (1, 0)
    frame_size: tuple[int, int] | None = None

    def get(self, typing: GraphTyping) -> SourceGraph | None:
        return next((g for g in self.graphs if g.typing == typing), None)


def bundle_graphs(bundle: Bundle, frame_size: tuple[int, int] | None = None) -> GraphSet:
    """What ``bundle`` offers for the preprocessed tensor, or for frames of ``frame_size``.

    Reads the metadata only (no hashing): each artifact's file and recorded sha256. A bundle's
    int8 artifact is the FP16-typed Q/DQ graph with its FP32-typed TensorRT 8.x sibling
    (``trt8_file``); a bundle made before that split has one FP32-typed Q/DQ graph.
    """
    graphs: list[SourceGraph] = []
    where = f"{bundle.path}" if frame_size is None else f"{bundle.path} ({frame_size[0]}x{frame_size[1]} frames)"
    for precision, art in bundle.artifacts.items():
        entry: Any = art
        if frame_size is not None:
            entry = (art.get("frames") or {}).get(f"{frame_size[0]}x{frame_size[1]}")
            if entry is None:
                continue
        if precision == "int8" and art.get("file") == bundle.artifact("fp32").get("file"):
            continue  # an implicit-INT8-only bundle (fp32 graph + ranges): no Q/DQ graph to build from
        main: GraphTyping = "fp32" if precision == "fp32" else "fp16" if precision == "fp16" else "int8-fp32"
        if precision == "int8" and entry.get("trt8_file"):
            main = "int8-fp16"
            graphs.append(_graph(bundle, str(entry["trt8_file"]), entry.get("trt8_sha256"), "int8-fp32"))
        graphs.append(_graph(bundle, str(entry["file"]), entry.get("sha256"), main))
    contract = bundle.contract
    return GraphSet(where, tuple(graphs), (contract.min_batch, contract.max_batch), frame_size)


def _graph(bundle: Bundle, file: str, sha256: object, typing: GraphTyping) -> SourceGraph:
    return SourceGraph(file, bundle.file(file), str(sha256 or ""), typing)


def onnx_graphs(
    path: str | os.PathLike[str], sha256: str, typing: GraphTyping, batch_bounds: tuple[int, int]
) -> GraphSet:
    """A lone ONNX file (``build_engine``), typed by what it holds (``rtdetr_edge.onnx_facts``)."""
    p = Path(path)
    return GraphSet(str(p), (SourceGraph(str(p), p, sha256, typing),), batch_bounds)


def typing_of(has_qdq: bool, has_fp16: bool) -> GraphTyping:
    """A graph's :data:`GraphTyping` from its Q/DQ and float16 use."""
    if has_qdq:
        return "int8-fp16" if has_fp16 else "int8-fp32"
    return "fp16" if has_fp16 else "fp32"


def tensorrt_line(version: str) -> TensorRTLine:
    """Which rule set a TensorRT version follows (module table); older or unknown lines are refused."""
    v = version_tuple(version)
    if v[:2] < MIN_TENSORRT:
        raise EngineError(
            f"TensorRT {version} is too old: rtdetr-edge needs TensorRT >= "
            f"{'.'.join(map(str, MIN_TENSORRT))} (JetPack 6; JetPack 5's TensorRT 8.5 is not supported, "
            "see docs/support.md)"
        )
    if v[0] == 8:
        return "8.6"
    if v[0] == 10:
        return "10"
    if v[0] == 11:
        return "11"
    raise EngineError(f"TensorRT {version}: rtdetr-edge supports TensorRT 8.6, 10.x and 11.x (docs/support.md)")


@dataclass(frozen=True)
class EngineRecipe:
    """Everything about one engine but the device (see :func:`recipe`).

    Attributes:
        precision: fp32, fp16 or int8.
        tensorrt_version: the TensorRT ``__version__`` it is for; ``line`` its rule set.
        source: the ONNX it is built from.
        strongly_typed: precisions come from the graph's types (always so on TensorRT 11).
        builder_flags: ``BuilderFlag`` member names set (weakly typed precision, precision
            constraints, GPU fallback).
        fp32_pins: ONNX op types and node-name globs whose layers are pinned to FP32 (weakly typed
            FP16/INT8 only; () otherwise).
        tf32: TF32 allowed for FP32 layers (TensorRT's default is on).
        dla_core: the DLA core, None for the GPU.
        dla_route: how DLA is set: ``polygraphy`` (weakly typed: ``CreateConfig(use_dla=True)``,
            which also sets precision constraints below TensorRT 11) or ``direct`` (strongly
            typed: device type, core and GPU fallback set on the config, no precision flag).
        profile: the batch profile, clamped to what the graphs accept.
        frame_size: (width, height) for a frame-input engine, None for the preprocessed tensor.
        options: the options it was made from (workspace, optimisation level, timing cache).
        notes: why, in words, for logs and the sidecar.
    """

    precision: str
    tensorrt_version: str
    line: TensorRTLine
    source: SourceGraph
    strongly_typed: bool
    builder_flags: tuple[str, ...]
    fp32_pins: tuple[str, ...]
    tf32: bool
    dla_core: int | None
    dla_route: DlaRoute | None
    profile: BatchProfile
    frame_size: tuple[int, int] | None
    options: EngineBuildOptions
    notes: tuple[str, ...] = ()

    @property
    def int8_kind(self) -> str:
        """``qdq`` for INT8 engines (the only INT8 route), ``none`` otherwise (the sidecar's int8_mode)."""
        return "qdq" if self.precision == "int8" else "none"

    def decision(self) -> dict[str, Any]:
        """What was decided, as recorded in the engine's sidecar (``recipe``)."""
        return {
            "source": self.source.file,
            "source_sha256": self.source.sha256,
            "typing": self.source.typing,
            "tensorrt_line": self.line,
            "strongly_typed": self.strongly_typed,
            "builder_flags": list(self.builder_flags),
            "fp32_pins": list(self.fp32_pins),
            "tf32": self.tf32,
            "dla_core": self.dla_core,
            "dla_route": self.dla_route,
            "batch": list(self.profile.as_tuple()),
            "frame_size": list(self.frame_size) if self.frame_size else None,
            "notes": list(self.notes),
        }

    def identity(self, device: DeviceIdentity) -> dict[str, Any]:
        """What names the engine: every decision that changes its numbers, the TensorRT version and
        the device (build-speed knobs such as the workspace are left out on purpose)."""
        decided = {k: v for k, v in self.decision().items() if k not in ("notes", "source")}
        return {
            **decided,
            "precision": self.precision,
            "tensorrt": self.tensorrt_version,
            "device": dataclasses.asdict(device),
        }

    def cache_key(self, device: DeviceIdentity) -> str:
        """16 hex digits: same key, interchangeable engine (:func:`rtdetr_edge.engine_format.cache_key`)."""
        return cache_key(self.identity(device))

    def file_name(self, device: DeviceIdentity) -> str:
        """``fp16_b1-1-8_trt10.3.0_sm87_<key>.engine`` (``_dla0`` for DLA, ``_frames1280x720`` for frames)."""
        p = self.profile
        dla = f"_dla{self.dla_core}" if self.dla_core is not None else ""
        frames = f"_frames{self.frame_size[0]}x{self.frame_size[1]}" if self.frame_size else ""
        ver = ".".join(str(v) for v in version_tuple(self.tensorrt_version))
        tag = sm_tag(device.compute_capability)
        return f"{self.precision}_b{p.min}-{p.opt}-{p.max}{dla}{frames}_trt{ver}_{tag}_{self.cache_key(device)}.engine"

    def timing_cache_name(self, device: DeviceIdentity) -> str:
        """The timing cache's file name: per TensorRT version and device (name, SMs, memory).

        A timing cache holds tactic timings of one GPU; Polygraphy merges foreign entries into it
        when saving and loads it with ``ignore_mismatch=False``, so modules that share the name
        "Orin" must not share a file.
        """
        ver = ".".join(str(v) for v in version_tuple(self.tensorrt_version))
        return f"timing_trt{ver}_{sm_tag(device.compute_capability)}_{device.tag()}.cache"

    def timing_cache(self, directory: str | os.PathLike[str], device: DeviceIdentity) -> str:
        """The options' timing cache, else :meth:`timing_cache_name` in ``directory``."""
        return self.options.timing_cache or os.fspath(Path(directory) / self.timing_cache_name(device))


@dataclass(frozen=True)
class Route:
    """One way to build: from the graph of ``typing``, strongly typed or with weak-typing ``flags``."""

    typing: GraphTyping
    strongly_typed: bool
    flags: tuple[str, ...] = ()
    note: str = ""


_FP32 = Route("fp32", False, (), "fp32, TF32 off: computes what ONNX Runtime's fp32 does")
_FP32_STRONG = Route("fp32", True, (), "fp32, strongly typed (TensorRT 11), TF32 off")
_FP16_STRONG = Route("fp16", True, (), "strongly typed from the float16 graph (its FP32 islands kept)")
_FP16_FLAG = Route("fp32", False, ("FP16",), "weakly typed: FP16 builder flag, sensitive layers pinned to FP32")
_QDQ_STRONG = Route(
    "int8-fp16", True, (), "explicit quantization, strongly typed: INT8 where the Q/DQ graph says, FP16 elsewhere"
)
_QDQ_FLAGS = Route(
    "int8-fp32", False, ("INT8", "FP16"), "explicit quantization, FP32-typed Q/DQ graph with INT8+FP16 flags, FP32 pins"
)

# (TensorRT line, precision, "gpu" or "dla") -> the routes in order of preference: the first whose
# graph the bundle has is taken. fp32 and INT8 on DLA: refused (DLA_REFUSED). 10.x takes
# the weakly typed route only where the bundle lacks the typed graph (bundles made before it) and
# on DLA, which 10.x (<= 10.7) documents for weakly typed networks; 11 has no weak typing at all.
ROUTES: dict[tuple[TensorRTLine, str, str], tuple[Route, ...]] = {
    ("8.6", "fp32", "gpu"): (_FP32,),
    ("10", "fp32", "gpu"): (_FP32,),
    ("11", "fp32", "gpu"): (_FP32_STRONG,),
    ("8.6", "fp16", "gpu"): (_FP16_FLAG,),
    ("10", "fp16", "gpu"): (_FP16_STRONG, _FP16_FLAG),
    ("11", "fp16", "gpu"): (_FP16_STRONG,),
    ("8.6", "int8", "gpu"): (_QDQ_FLAGS,),
    ("10", "int8", "gpu"): (_QDQ_STRONG, _QDQ_FLAGS),
    ("11", "int8", "gpu"): (_QDQ_STRONG,),
    ("8.6", "fp16", "dla"): (_FP16_FLAG,),
    ("10", "fp16", "dla"): (_FP16_FLAG,),
    ("11", "fp16", "dla"): (_FP16_STRONG,),
}
# No row, refused in one line: what DLA cannot take from rtdetr-edge's graphs
DLA_REFUSED: dict[str, str] = {
    "fp32": "DLA runs FP16 or INT8 only: use --precision fp16 with --dla-core",
    # NVIDIA/Model-Optimizer#1661 (2026): "DLA still only supports IQ" (implicit quantization);
    # NVIDIA/TensorRT#2222: explicit (Q/DQ) models need converting to implicit quantization for DLA.
    # rtdetr-edge's engines take INT8 from Q/DQ graphs only, so INT8 on DLA is not one of them.
    "int8": (
        "INT8 on DLA needs implicit quantization (a calibration cache), which DLA still requires and "
        "rtdetr-edge's engines no longer use (NVIDIA/Model-Optimizer#1661); a Q/DQ graph's INT8 would run on "
        "the GPU or in FP16 there. Use --precision fp16 with --dla-core, or on TensorRT 8.6-10.7 build with "
        "the bundle's native cache: trtexec --onnx=model.onnx --int8 --fp16 --calib=calib/trt-<version>.cache "
        "--useDLACore=0 --allowGPUFallback (docs/int8.md)"
    ),
}
_REBUILD_INT8 = "rebuild its INT8 on the host: rtdetr-build --model BUNDLE --precision int8 --calib ... --out BUNDLE"
MISSING: dict[GraphTyping, str] = {
    "fp32": "no fp32 graph (model.onnx)",
    "fp16": "no float16 graph (model.fp16.onnx): add it with rtdetr-build --model BUNDLE --precision fp16 --out BUNDLE",
    "int8-fp16": "no FP16-typed Q/DQ graph (model.int8.qdq.onnx beside model.int8.qdq.trt8.onnx): " + _REBUILD_INT8,
    "int8-fp32": "no FP32-typed Q/DQ graph (model.int8.qdq.trt8.onnx): " + _REBUILD_INT8,
}


def check_dla_request(precision: str, options: EngineBuildOptions) -> None:
    """What DLA refuses whatever the TensorRT version (the precision, a dynamic batch): EngineError in one line.

    Part of :func:`recipe`; callable before TensorRT is known (``rtdetr-engine`` checks its flags first).
    """
    if options.dla_core is None:
        return
    if precision in DLA_REFUSED:
        raise EngineError(DLA_REFUSED[precision])
    if not options.batch.static:
        # "DLA does not support dynamic dimensions" (TensorRT, DLA Supported Layers and
        # Restrictions): with GPU fallback on, a dynamic profile would quietly run on the GPU
        raise EngineError(
            f"--dla-core needs a static batch (--batch N), got {options.batch}: DLA does not support dynamic "
            "dimensions and would leave every layer to the GPU"
        )


def _dla_route(line: TensorRTLine, version: str) -> DlaRoute:
    """How DLA is set on this TensorRT, or an EngineError saying why it cannot be (module docstring)."""
    v = version_tuple(version)
    if line == "8.6" or (line == "10" and v[:2] <= LAST_DLA_10):
        return "polygraphy"
    if line == "11" and FIRST_DLA_11 <= v < END_DLA_11:
        return "direct"
    if line == "10":
        raise EngineError(
            f"--dla-core: TensorRT {version} has no DLA (10.7 was the last 10.x release with DLA; "
            "JetPack 6's TensorRT 10.3 and 8.6 have it, and 11.4.1 on JetPack >= 7.2.2)"
        )
    raise EngineError(
        f"--dla-core: TensorRT {version} has no DLA on Jetson (11.0-11.4.0 have none; 11.4.1 brings it back "
        "on AGX Orin with JetPack >= 7.2.2; 11.5 supports no JetPack)"
    )


def recipe(graphs: GraphSet, precision: str, tensorrt_version: str, options: EngineBuildOptions) -> EngineRecipe:
    """Decide how the engine of ``precision`` is built from ``graphs`` on TensorRT ``tensorrt_version``.

    Pure: reads no file and imports no TensorRT. The route comes from :data:`ROUTES`; the rest
    follows from it (module docstring).

    Raises:
        EngineError: the combination cannot be built (too old a TensorRT, no DLA on this version,
            fp32 or INT8 on DLA, a dynamic batch on DLA, the graph that version needs is missing from the bundle), saying what to do.
    """
    if precision not in PRECISIONS:
        raise EngineError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    line = tensorrt_line(tensorrt_version)
    check_dla_request(precision, options)
    dla = _dla_route(line, tensorrt_version) if options.dla_core is not None else None
    routes = ROUTES.get((line, precision, "gpu" if dla is None else "dla"))
    if not routes:
        raise EngineError(f"TensorRT {tensorrt_version}: no way to build {precision} here (internal: no recipe row)")
    picked = next(((r, g) for r in routes if (g := graphs.get(r.typing)) is not None), None)
    if picked is None:
        raise EngineError(
            f"{graphs.origin}: TensorRT {tensorrt_version} builds {precision} from a graph the bundle lacks: "
            f"{MISSING[routes[0].typing]}"
        )
    chosen, source = picked
    frames = graphs.frame_size is not None
    notes = [chosen.note]
    pins = tuple(options.fp32_layers) if chosen.flags else ()
    flags = list(chosen.flags)
    if pins or dla == "polygraphy":  # Polygraphy's use_dla sets it below TensorRT 11 whatever we ask
        flags.append("PREFER_PRECISION_CONSTRAINTS")
    if dla is not None:
        flags.append("GPU_FALLBACK")
        notes.append(f"DLA core {options.dla_core} with GPU fallback ({dla})")
    # TF32 only where FP32 layers may round: weakly typed FP16/INT8 of the preprocessed tensor.
    # fp32 means fp32, a strongly typed graph's FP32 islands are FP32 by plan, and a frame front's
    # FP32 resize must round exactly as Pillow does.
    tf32 = bool(chosen.flags) and not frames
    if frames:
        notes.append("frame-input graph: TF32 off (the frame/* resize stays exact FP32)")
    return EngineRecipe(
        precision=precision,
        tensorrt_version=tensorrt_version,
        line=line,
        source=source,
        strongly_typed=chosen.strongly_typed,
        builder_flags=tuple(flags),
        fp32_pins=pins,
        tf32=tf32,
        dla_core=options.dla_core,
        dla_route=dla,
        profile=options.batch.clamp(*graphs.batch_bounds),
        frame_size=graphs.frame_size,
        options=options,
        notes=tuple(notes),
    )


def recipe_engines(
    engines_dir: str | os.PathLike[str],
    graphs: GraphSet,
    precision: str,
    accept: Callable[[EngineMetadata], bool] = lambda meta: True,
    tensorrt_version: str | None = None,
    device: DeviceIdentity | None = None,
) -> list[tuple[Path, EngineMetadata]]:
    """The engines in ``engines_dir`` that the recipe makes today for ``graphs``, newest first.

    An engine counts when its sidecar is of ``precision``, passes ``accept`` and its cache key is
    :func:`recipe`'s for ``graphs`` with the options the sidecar recorded, on ``tensorrt_version``
    and ``device`` (default: the ones its sidecar names). An engine from an older recipe, a replaced
    ONNX or other frames is passed over (with a log line saying to rebuild it). Reads the sidecars;
    :func:`recipe` itself stays pure.
    """
    found: list[tuple[str, Path, EngineMetadata]] = []
    folder = Path(engines_dir)
    for path in sorted(folder.glob("*.engine")) if folder.is_dir() else []:
        try:
            meta = load_sidecar(path)
            if meta is None or meta.precision != precision or not accept(meta):
                continue
            options = EngineBuildOptions.from_dict(meta.build_options, f"{path.with_suffix('.json')}: build_options")
            r = recipe(graphs, precision, tensorrt_version or meta.tensorrt_version, options)
            wanted = r.cache_key(device or meta.device)
        except RtdetrEdgeError as exc:
            log.debug("%s: passed over (%s)", path.name, exc)
            continue
        if meta.cache_key != wanted:
            log.info("%s: not the engine today's recipe makes for this bundle; rtdetr-engine rebuilds it", path.name)
            continue
        found.append((meta.created, path, meta))
    found.sort(key=lambda f: f[0], reverse=True)
    return [(path, meta) for _, path, meta in found]


__all__ = [
    "BUILDER_FLAGS",
    "DEFAULT_BATCH",
    "DEFAULT_FP32_LAYERS",
    "MIN_TENSORRT",
    "ROUTES",
    "EngineBuildOptions",
    "EngineRecipe",
    "GraphSet",
    "Route",
    "SourceGraph",
    "bundle_graphs",
    "check_dla_request",
    "onnx_graphs",
    "recipe",
    "recipe_engines",
    "tensorrt_line",
    "typing_of",
]
