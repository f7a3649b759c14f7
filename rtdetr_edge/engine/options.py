"""Engine build options, their command-line flags, and the version-aware build plan.

The flags follow trtexec habits (``--batch MIN,OPT,MAX``, ``--workspace`` MiB, ``--timing-cache``,
``--builder-opt-level``, ``--dla-core``). :func:`plan_build` turns options plus the TensorRT
version into what the builder must do; it is pure so every version's rules are tested on a CPU.

TensorRT versions and precision (see docs of each version's Python API):

* 8.6 (JetPack 6.0: 8.6.2; x86: 8.6.1): networks need ``NetworkDefinitionCreationFlag.EXPLICIT_BATCH``; FP16/INT8 by builder
  flags; INT8 by calibrator (cache) or ``ITensor.dynamic_range``; layer precision constraints
  with ``PREFER_PRECISION_CONSTRAINTS``. No ``STRONGLY_TYPED``.
* 10.x: explicit batch is implicit (the flag is ignored); ``STRONGLY_TYPED`` exists and is the
  route for Q/DQ graphs; calibrators and ``dynamic_range`` deprecated since 10.1, weak typing
  deprecated since 10.12, all still work.
* 11.x: strongly typed always (the flag is deprecated, "always enabled"); ``BuilderFlag.FP16``,
  ``INT8``, the precision-constraint flags, ``IBuilderConfig.int8_calibrator``,
  ``ILayer.precision``/``set_output_type`` and ``ITensor.dynamic_range`` are removed: FP16 and
  INT8 must already be in the ONNX (the bundle's ``model.fp16.onnx`` / ``model.int8.qdq.onnx``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from ..engine_format import PRECISIONS, BatchProfile, version_tuple
from ..errors import EngineError, InputError

INT8_MODES = ("auto", "implicit", "qdq")
# Default batch profile 1,1,8: kernels tuned for the single-camera case (batch 1) while a
# Detector can still send up to 8 images at once; a static 1,1,1 engine would reject partial
# or larger batches (ultralytics#12721) and 8 keeps the input buffer small enough for a Jetson
# (8 x 3 x 640 x 640 float32 = 39 MB). A static profile (--batch 1) lets TensorRT tune for one
# shape only and is what DLA needs; CUDA graphs work with either (one graph per batch size).
DEFAULT_BATCH = "1,1,8"
# Kept in FP32 when FP16/INT8 are enabled by builder flags (TensorRT < 11): ONNX op types, and
# node-name globs (anything with '/' or '*'). LayerNorm overflows in FP16 on RT-DETR's decoder
# (lyuwenyu/RT-DETR#104, NVIDIA/TensorRT#3652); Softmax/Sigmoid feed the scores; ``post/*`` is
# the in-graph postprocessing tail (sigmoid -> top-k -> boxes) that rtdetr-edge's exporter adds;
# ``frame/*`` the frame front of frame-input artifacts (its resize MatMuls round to Pillow's grey
# levels: FP16 would move them by up to 0.25, rtdetr_edge.frames).
DEFAULT_FP32_LAYERS = ("LayerNormalization", "Softmax", "Sigmoid", "post/*", "frame/*")
# TensorRT 8.5 (JetPack 5) is not supported: it parses neither opset 17's LayerNormalization nor
# the bundles' INT8 graphs, and JetPack 5's Python 3.8 is below requires-python (docs/support.md)
MIN_TENSORRT = (8, 6)


@dataclass
class EngineBuildOptions:
    """How to build a TensorRT engine (every field that changes the engine is in its cache key).

    How the engine then runs (device, CUDA graphs, memory kind) is
    :class:`rtdetr_edge.backends.options.TensorRTOptions`.

    Attributes:
        batch: optimisation profile over the batch (default 1,1,8; see ``DEFAULT_BATCH``),
            clamped to what the ONNX accepts. Accepts ``"1,1,8"``, ``4`` or ``(1, 1, 8)`` too.
        workspace_mib: builder workspace pool limit in MiB (None = TensorRT's default, the
            device's memory); too small makes tactics fail and the build report it.
        timing_cache: file to load/save the builder's timing cache (None = none; bundles use
            ``engines/timing_trt<ver>_sm<cc>.cache``); speeds up rebuilds a lot.
        builder_optimization_level: 0-5 (None = TensorRT's default 3; TensorRT >= 8.6).
        dla_core: run on this DLA core with GPU fallback (Jetson Xavier/Orin; FP16/INT8 only).
        int8_mode: ``auto`` (Q/DQ graph if the ONNX has one, else calibration cache on
            TensorRT < 11), ``implicit`` (calibration cache / ranges, TensorRT 8.6-10.x) or
            ``qdq`` (explicit Q/DQ ONNX; the only INT8 route on TensorRT 11).
        int8_dynamic_range: with implicit INT8, set ``ITensor.dynamic_range`` from the ranges
            instead of feeding a calibration cache (TensorRT 8.6-10.x).
        fp32_layers: layers kept in FP32 when FP16/INT8 come from builder flags (ONNX op types
            or node-name globs); () keeps none.
    """

    batch: BatchProfile = field(default_factory=lambda: BatchProfile.parse(DEFAULT_BATCH))
    workspace_mib: int | None = None
    timing_cache: str | None = None
    builder_optimization_level: int | None = None
    dla_core: int | None = None
    int8_mode: str = "auto"
    int8_dynamic_range: bool = False
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
        if self.int8_mode not in INT8_MODES:
            raise InputError(f"--int8-mode {self.int8_mode!r}: expected one of {', '.join(INT8_MODES)}")
        if isinstance(self.fp32_layers, str):
            self.fp32_layers = tuple(p for p in self.fp32_layers.split(",") if p)
        self.fp32_layers = tuple(self.fp32_layers)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["batch"] = list(self.batch.as_tuple())
        d["fp32_layers"] = list(self.fp32_layers)
        return d


@dataclass(frozen=True)
class BuildPlan:
    """What the builder does for one precision on one TensorRT version (see module docstring).

    Attributes:
        precision: fp32, fp16 or int8.
        int8_mode: none, implicit or qdq.
        network_flags: ``NetworkDefinitionCreationFlag`` member names.
        builder_flags: ``BuilderFlag`` member names.
        layer_constraints: pin :attr:`EngineBuildOptions.fp32_layers` to FP32 (weakly typed only).
        int8_source: "calibrator" (cache-only or user data), "dynamic_range" or None.
        strongly_typed: precisions come from the graph (always so on TensorRT 11).
        clear_flags: ``BuilderFlag`` member names to turn off.
        notes: why, for logs and the sidecar.
    """

    precision: str
    int8_mode: str
    network_flags: tuple[str, ...]
    builder_flags: tuple[str, ...]
    layer_constraints: bool
    int8_source: str | None
    strongly_typed: bool = False
    notes: tuple[str, ...] = ()
    clear_flags: tuple[str, ...] = ()


def plan_build(
    trt_version: str,
    precision: str,
    options: EngineBuildOptions,
    onnx_has_qdq: bool = False,
    onnx_has_fp16: bool = False,
    has_ranges: bool = False,
    has_calibrator: bool = False,
) -> BuildPlan:
    """Decide flags and INT8 route for ``precision`` on TensorRT ``trt_version``.

    Args:
        trt_version: the running TensorRT's ``__version__``.
        precision: fp32, fp16 or int8.
        options: engine options (``int8_mode``, ``int8_dynamic_range``, ``fp32_layers``, ``dla_core``).
        onnx_has_qdq: the ONNX holds QuantizeLinear/DequantizeLinear nodes.
        onnx_has_fp16: the ONNX already computes in float16 (``model.fp16.onnx``).
        has_ranges: INT8 ranges (``calib/ranges.json``) are available.
        has_calibrator: a calibrator over user data is supplied.

    Raises:
        EngineError: the combination cannot be built on this TensorRT, with what to do instead.
    """
    major, minor, _ = version_tuple(trt_version)
    if (major, minor) < MIN_TENSORRT:
        raise EngineError(
            f"TensorRT {trt_version} is too old: rtdetr-edge needs TensorRT >= "
            f"{'.'.join(map(str, MIN_TENSORRT))} (JetPack 6; JetPack 5's TensorRT 8.5 is not supported, "
            "see docs/support.md)"
        )
    if precision not in PRECISIONS:
        raise EngineError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if options.dla_core is not None and precision == "fp32":
        raise EngineError("DLA runs FP16 or INT8 only: use --precision fp16 or int8 with --dla-core")
    weak: list[str] = ["EXPLICIT_BATCH"] if major < 10 else []
    strong: list[str] = ["STRONGLY_TYPED"] if major == 10 else []  # 11: always strongly typed; the flag is deprecated
    fallback = ["GPU_FALLBACK"] if options.dla_core is not None else []
    keep = bool(options.fp32_layers)
    notes: list[str] = []

    if precision == "fp32":
        if onnx_has_qdq or onnx_has_fp16:
            raise EngineError("an fp32 engine needs the fp32 ONNX (model.onnx), not a Q/DQ or float16 graph")
        # TF32 is on by default on Ampere and later (Orin); off, an fp32 engine computes what
        # ONNX Runtime's fp32 does, which is what fp32 is for here (parity and reference)
        return BuildPlan(
            "fp32", "none", tuple(weak), tuple(fallback), False, None, major >= 11, ("fp32, TF32 off",), ("TF32",)
        )

    if precision == "fp16":
        if major >= 11 or (onnx_has_fp16 and major >= 10):
            if not onnx_has_fp16:
                raise EngineError(
                    f"TensorRT {trt_version} has no FP16 builder flag (removed in 11, networks are "
                    "strongly typed): FP16 must be in the ONNX. Add the bundle's model.fp16.onnx "
                    "(rtdetr-build --precision fp16 on the host) and build from it"
                )
            notes.append("strongly typed: FP16 comes from the float16 ONNX (its FP32 islands are kept)")
            return BuildPlan("fp16", "none", tuple(strong), tuple(fallback), False, None, True, tuple(notes))
        flags = ["FP16"] + (["PREFER_PRECISION_CONSTRAINTS"] if keep else []) + fallback
        notes.append("weakly typed: FP16 builder flag" + (", sensitive layers pinned to FP32" if keep else ""))
        return BuildPlan("fp16", "none", tuple(weak), tuple(flags), keep, None, False, tuple(notes))

    # int8
    mode = options.int8_mode
    if mode == "auto":
        if onnx_has_qdq:
            mode = "qdq"
        elif major >= 11:
            raise EngineError(
                f"TensorRT {trt_version} builds INT8 only from an explicitly quantized (Q/DQ) ONNX "
                "(calibrators were removed in 11); build from the bundle's model.int8.qdq.onnx"
            )
        elif has_ranges or has_calibrator:
            mode = "implicit"
        else:
            raise EngineError(
                "INT8 needs a Q/DQ ONNX (model.int8.qdq.onnx) or calibration ranges "
                "(calib/ranges.json) or a calibrator; the bundle has neither: rebuild it with "
                "rtdetr-build --precision int8 on the host"
            )
    if mode == "qdq":
        if not onnx_has_qdq:
            raise EngineError(
                "--int8-mode qdq: the ONNX has no QuantizeLinear/DequantizeLinear nodes; build from "
                "the bundle's model.int8.qdq.onnx"
            )
        if major >= 11 or (major == 10 and onnx_has_fp16):
            notes.append("explicit quantization, strongly typed: precisions come from the Q/DQ graph")
            return BuildPlan("int8", "qdq", tuple(strong), tuple(fallback), False, None, True, tuple(notes))
        if major == 10:  # an FP32-typed Q/DQ graph (bundles made before the FP16-typed artifact)
            flags = ["INT8", "FP16"] + (["PREFER_PRECISION_CONSTRAINTS"] if keep else []) + fallback
            notes.append("FP32-typed Q/DQ graph: weakly typed with INT8+FP16 flags, so its float layers may run FP16")
            return BuildPlan("int8", "qdq", tuple(weak), tuple(flags), keep, None, False, tuple(notes))
        # 8.x: Q/DQ graphs still need the INT8 flag; FP16 lets unquantized layers use half
        flags = ["INT8", "FP16"] + (["PREFER_PRECISION_CONSTRAINTS"] if keep else []) + fallback
        notes.append("explicit quantization on TensorRT 8.x: INT8+FP16 flags")
        return BuildPlan("int8", "qdq", tuple(weak), tuple(flags), keep, None, False, tuple(notes))
    # implicit
    if major >= 11:
        raise EngineError(
            f"--int8-mode implicit: TensorRT {trt_version} removed calibrators and dynamic ranges; "
            "use --int8-mode qdq with the bundle's model.int8.qdq.onnx"
        )
    if onnx_has_qdq:
        raise EngineError("--int8-mode implicit needs the fp32 ONNX; this one is already quantized (use qdq)")
    if options.int8_dynamic_range and not has_ranges:
        raise EngineError("--int8-dynamic-range needs calibration ranges (calib/ranges.json)")
    if not (has_ranges or has_calibrator):
        raise EngineError("implicit INT8 needs calibration ranges (calib/ranges.json) or a calibrator")
    source = "dynamic_range" if options.int8_dynamic_range else "calibrator"
    flags = ["INT8", "FP16"] + (["PREFER_PRECISION_CONSTRAINTS"] if keep else []) + fallback
    notes.append(f"implicit INT8 ({source}); INT8+FP16 flags" + (", sensitive layers in FP32" if keep else ""))
    if major >= 10:
        notes.append("implicit quantization is deprecated since TensorRT 10.1; qdq is the long-term route")
    return BuildPlan("int8", "implicit", tuple(weak), tuple(flags), keep, source, False, tuple(notes))


def default_timing_cache(
    directory: str | os.PathLike[str], trt_version: str, compute_capability: str, device_name: str = ""
) -> str:
    """Per TensorRT version and GPU model, since timing caches are specific to both.

    The device name is part of it: Orin Nano, NX and AGX are all sm87, and TensorRT rejects a
    cache whose device properties differ (Polygraphy then silently builds without it).
    """
    ver = ".".join(str(v) for v in version_tuple(trt_version))
    gpu = f"_{hashlib.sha256(device_name.encode()).hexdigest()[:8]}" if device_name else ""
    return os.path.join(os.fspath(directory), f"timing_trt{ver}_sm{compute_capability.replace('.', '')}{gpu}.cache")
