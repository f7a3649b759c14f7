"""Engine sidecars, validity checks, cache keys and batch-profile arithmetic (no TensorRT needed).

A TensorRT engine only loads in the exact TensorRT version that built it and is tuned for one GPU,
so every engine ``X.engine`` gets a sidecar ``X.json`` saying what it was built with and for::

    {"format": "rtdetr-edge-engine", "format_version": 2,
     "tensorrt_version": "10.3.0", "gpu_name": "Orin", "compute_capability": "8.7",
     "sm_count": 16, "memory_gib": 61,
     "precision": "fp16", "int8_mode": "none", "batch": [1, 1, 8], "dla_core": null,
     "onnx_sha256": "...", "engine_bytes": 41234567, "engine_sha256": "...",
     "rtdetr_edge.contract": "{...contract JSON...}", "build_options": {...},
     "recipe": {...}, "cache_key": "...", "created": "2025-01-01T00:00:00+00:00"}

``recipe`` is what :func:`rtdetr_edge.engine_recipe.recipe` decided (source ONNX, typing, flags,
FP32 pins, TF32, DLA) and ``build_options`` the :class:`~rtdetr_edge.engine_recipe.EngineBuildOptions`
it was given: every consumer that looks for an engine recomputes the recipe from them and takes
the engine only when the cache keys agree.

The contract travels under :data:`rtdetr_edge.contract.METADATA_KEY`, exactly as in the ONNX
``metadata_props``, so a bare ``.engine`` with its sidecar is self-describing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import atomic
from .bundle import now_iso, sha256_file
from .contract import METADATA_KEY
from .errors import EngineError, InputError

SIDECAR_FORMAT = "rtdetr-edge-engine"
# 2: the device identity (SM count, memory) and the recipe joined the sidecar; version 1 sidecars
# (from before one recipe decided every engine) are refused with "rebuild"
SIDECAR_VERSION = 2
PRECISIONS = ("fp32", "fp16", "int8")
# what an engine's INT8 came from: none (fp32/fp16) or qdq (the explicit Q/DQ graph; the only
# INT8 route on every supported TensorRT)
INT8_KINDS = ("none", "qdq")


@dataclass(frozen=True)
class DeviceIdentity:
    """Which GPU an engine or a timing cache belongs to: name, compute capability, SMs, memory.

    The name alone does not tell modules apart: every Jetson Orin module reports the CUDA device
    name "Orin" (Orin Nano 4 GB: 4 SMs; Orin Nano/NX 8 GB: 8; AGX Orin 32 GB: 14; 64 GB: 16) and
    all are compute capability 8.7. TensorRT tunes tactics for the SMs and memory it sees, so an
    engine built on an AGX Orin is not one for an Orin Nano.

    Attributes:
        name: the CUDA device name.
        compute_capability: ``"8.7"``.
        sm_count: streaming multiprocessors (``multiProcessorCount``).
        memory_gib: total device memory in GiB, rounded to whole GiB (``totalGlobalMem``; on a
            Jetson the shared system memory, whose exact size moves a little with carve-outs).
    """

    name: str
    compute_capability: str
    sm_count: int
    memory_gib: int

    @classmethod
    def of(cls, props: Any) -> DeviceIdentity:
        """From :class:`rtdetr_edge.cuda.buffers.DeviceProperties` (or anything with its fields)."""
        return cls(
            str(props.name),
            str(props.compute_capability),
            int(props.sm_count),
            round(int(props.total_memory) / 2**30),
        )

    def __str__(self) -> str:
        return f"{self.name} (compute capability {self.compute_capability}, {self.sm_count} SMs, {self.memory_gib} GiB)"

    def tag(self) -> str:
        """8 hex digits naming this device in file names (timing caches)."""
        text = f"{self.name}|{self.compute_capability}|{self.sm_count}|{self.memory_gib}"
        return hashlib.sha256(text.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class BatchProfile:
    """An optimisation profile over the batch dimension: ``MIN <= OPT <= MAX``.

    TensorRT tunes kernels for ``opt`` and accepts any batch in ``[min, max]``; ``min == max``
    is a static batch (the only kind CUDA graphs and DLA like).
    """

    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (self.min, self.opt, self.max)):
            raise InputError(f"batch profile: expected integers, got {self.min!r},{self.opt!r},{self.max!r}")
        if not 1 <= self.min <= self.opt <= self.max:
            raise InputError(f"batch profile {self.min},{self.opt},{self.max}: expected 1 <= MIN <= OPT <= MAX")

    @classmethod
    def parse(cls, text: str) -> BatchProfile:
        """``"1,4,8"`` -> (1, 4, 8); ``"4"`` -> static (4, 4, 4) (trtexec's MIN,OPT,MAX habit)."""
        try:
            parts = [int(p) for p in str(text).replace(" ", "").split(",")]
        except ValueError:
            raise InputError(f"--batch {text!r}: expected N or MIN,OPT,MAX integers, e.g. 1,1,8") from None
        if len(parts) == 1:
            parts = parts * 3
        if len(parts) != 3:
            raise InputError(f"--batch {text!r}: expected N or MIN,OPT,MAX (three numbers), got {len(parts)}")
        return cls(parts[0], parts[1], parts[2])

    @classmethod
    def coerce(cls, value: object) -> BatchProfile:
        """Accept a profile, ``"1,1,8"``, ``4`` or a 1- or 3-sequence of ints."""
        if isinstance(value, BatchProfile):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value, value, value)
        if isinstance(value, (tuple, list)) and len(value) in (1, 3):
            return cls.parse(",".join(str(v) for v in value))
        raise InputError(f"batch profile {value!r}: expected 'MIN,OPT,MAX', N or (MIN, OPT, MAX)")

    @property
    def static(self) -> bool:
        return self.min == self.max

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.min, self.opt, self.max)

    def __str__(self) -> str:
        return f"{self.min},{self.opt},{self.max}"

    def clamp(self, lo: int = 1, hi: int = 0) -> BatchProfile:
        """Fit the profile inside the batch range a graph accepts (``hi`` 0 = unbounded).

        A graph exported with a static batch of 1 turns ``1,1,8`` into ``1,1,1``.
        """
        if lo < 1 or (hi and hi < lo):
            raise InputError(f"batch range {lo}..{hi}: expected 1 <= lo <= hi (hi 0 = unbounded)")
        top = hi if hi else max(self.max, lo)

        def fit(v: int) -> int:
            return min(max(v, lo), top)

        return BatchProfile(fit(self.min), fit(self.opt), fit(self.max))

    def shapes(self, sample_shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) full shapes for an input whose non-batch dims are ``sample_shape``."""
        dynamic = [i for i, d in enumerate(sample_shape) if d < 1]
        if dynamic:
            raise EngineError(
                f"input dims {sample_shape} are dynamic beyond the batch (axes {[d + 1 for d in dynamic]});"
                " only the batch may be dynamic: re-export with a fixed image size"
            )
        return ((self.min, *sample_shape), (self.opt, *sample_shape), (self.max, *sample_shape))


def batch_bounds_of(dims: tuple[int, ...]) -> tuple[int, int]:
    """(min, max) batch an ONNX/TensorRT input shape allows: dynamic (-1) -> (1, 0), static N -> (N, N)."""
    if not dims:
        raise EngineError("input has no dimensions; expected [N,3,H,W]")
    n = dims[0]
    return (n, n) if n > 0 else (1, 0)


def resolve_shape(shape: tuple[int, ...], batch: int, name: str = "tensor") -> tuple[int, ...]:
    """Replace a dynamic batch (-1 in axis 0) by ``batch``; any other dynamic axis is an error."""
    if not shape:
        return shape
    out = (batch if shape[0] < 0 else shape[0], *shape[1:])
    if any(d < 0 for d in out):
        raise EngineError(f"{name}: shape {shape} has dynamic axes besides the batch; rtdetr-edge needs fixed sizes")
    return out


def volume(shape: tuple[int, ...]) -> int:
    """Number of elements of ``shape`` (1 for a scalar)."""
    n = 1
    for d in shape:
        n *= int(d)
    return n


def version_tuple(version: str) -> tuple[int, int, int]:
    """ "10.3.0.30" -> (10, 3, 0)."""
    m = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?", str(version))
    if not m:
        raise EngineError(f"TensorRT version {version!r}: expected MAJOR.MINOR[.PATCH]")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def sm_tag(compute_capability: str) -> str:
    """ "8.7" -> "sm87" (for file names)."""
    return "sm" + compute_capability.replace(".", "")


def cache_key(identity: dict[str, Any]) -> str:
    """16 hex digits naming an engine: same identity, interchangeable engine.

    ``identity`` is what :meth:`rtdetr_edge.engine_recipe.EngineRecipe.identity` gives: the source
    ONNX's hash, the precision, TensorRT version, device identity, profile and every decision that
    changes the engine's numbers (build-speed knobs such as the workspace are left out on purpose).
    """
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def sidecar_path(engine_path: str | os.PathLike[str]) -> Path:
    """``X.engine`` -> ``X.json``."""
    return Path(engine_path).with_suffix(".json")


@dataclass
class EngineMetadata:
    """What one engine was built with and for (the sidecar's content).

    Attributes:
        tensorrt_version: TensorRT ``__version__`` that built it.
        gpu_name, compute_capability: GPU it was built on (``"8.7"``).
        sm_count, memory_gib: the rest of that GPU's :class:`DeviceIdentity`.
        precision: fp32, fp16 or int8.
        int8_mode: none or qdq.
        batch: optimisation profile.
        onnx_sha256: hash of the source ONNX.
        contract_json: the model contract JSON text (None for engines from foreign ONNX).
        engine_bytes, engine_sha256: size and hash of the engine file (truncation check).
        dla_core: DLA core the engine runs on (None = GPU).
        build_options: the :class:`~rtdetr_edge.engine_recipe.EngineBuildOptions` of the build.
        recipe: what the recipe decided (source, typing, flags, pins, TF32, DLA), for reports.
        cache_key: see :func:`cache_key`.
        created: ISO time.
        timings: what ``rtdetr-engine --precision best`` measured for this engine on its device
            (batch, iterations, p50 GPU compute and host latency in ms); empty until then.
        best: that command's choice, the same in both engines' sidecars: ``chosen`` (fp16 or int8),
            ``reason``, ``metric``, and each precision's time; the Detector's ``precision="auto"``
            takes ``chosen`` on a device whose engines carry it. Both keys are optional: sidecars of
            format version 2 without them read as before.
    """

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    sm_count: int
    memory_gib: int
    precision: str
    int8_mode: str
    batch: BatchProfile
    onnx_sha256: str
    contract_json: str | None = None
    engine_bytes: int = 0
    engine_sha256: str = ""
    dla_core: int | None = None
    build_options: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    cache_key: str = ""
    created: str = field(default_factory=now_iso)
    timings: dict[str, Any] = field(default_factory=dict)
    best: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise EngineError(f"engine metadata: precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.int8_mode not in INT8_KINDS:
            raise EngineError(f"engine metadata: int8_mode {self.int8_mode!r} is not one of {', '.join(INT8_KINDS)}")

    @property
    def device(self) -> DeviceIdentity:
        return DeviceIdentity(self.gpu_name, self.compute_capability, self.sm_count, self.memory_gib)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "format": SIDECAR_FORMAT,
            "format_version": SIDECAR_VERSION,
            "tensorrt_version": self.tensorrt_version,
            "gpu_name": self.gpu_name,
            "compute_capability": self.compute_capability,
            "sm_count": self.sm_count,
            "memory_gib": self.memory_gib,
            "precision": self.precision,
            "int8_mode": self.int8_mode,
            "batch": list(self.batch.as_tuple()),
            "dla_core": self.dla_core,
            "onnx_sha256": self.onnx_sha256,
            "engine_bytes": self.engine_bytes,
            "engine_sha256": self.engine_sha256,
            "build_options": self.build_options,
            "recipe": self.recipe,
            "cache_key": self.cache_key,
            "created": self.created,
        }
        if self.timings:
            d["timings"] = self.timings
        if self.best:
            d["best"] = self.best
        if self.contract_json is not None:
            d[METADATA_KEY] = self.contract_json
        return d

    @classmethod
    def from_dict(cls, d: Any, source: str = "engine sidecar") -> EngineMetadata:
        if not isinstance(d, dict) or d.get("format") != SIDECAR_FORMAT:
            raise EngineError(f"{source}: not an rtdetr-edge engine sidecar")
        if d.get("format_version") != SIDECAR_VERSION:
            raise EngineError(
                f"{source}: engine sidecar version {d.get('format_version')!r}; this rtdetr-edge reads version "
                f"{SIDECAR_VERSION}. Rebuild the engine (rtdetr-engine BUNDLE --force) or upgrade rtdetr-edge."
            )
        try:
            contract = d.get(METADATA_KEY)
            return cls(
                tensorrt_version=str(d["tensorrt_version"]),
                gpu_name=str(d["gpu_name"]),
                compute_capability=str(d["compute_capability"]),
                sm_count=int(d["sm_count"]),
                memory_gib=int(d["memory_gib"]),
                precision=str(d["precision"]),
                int8_mode=str(d.get("int8_mode", "none")),
                batch=BatchProfile.coerce(d["batch"]),
                onnx_sha256=str(d.get("onnx_sha256", "")),
                contract_json=str(contract) if contract is not None else None,
                engine_bytes=int(d.get("engine_bytes", 0)),
                engine_sha256=str(d.get("engine_sha256", "")),
                dla_core=None if d.get("dla_core") is None else int(d["dla_core"]),
                build_options=dict(d.get("build_options") or {}),
                recipe=dict(d.get("recipe") or {}),
                cache_key=str(d.get("cache_key", "")),
                created=str(d.get("created", "")),
                timings=dict(d.get("timings") or {}),
                best=dict(d.get("best") or {}),
            )
        except (KeyError, TypeError, ValueError, InputError) as exc:
            raise EngineError(f"{source}: invalid engine sidecar ({exc})") from exc

    def save(self, path: str | os.PathLike[str]) -> Path:
        return atomic.write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EngineMetadata:
        p = Path(path)
        try:
            d = json.loads(p.read_text())
        except OSError as exc:
            raise EngineError(f"{p}: cannot read the engine sidecar ({exc.strerror or exc})") from exc
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EngineError(f"{p}: engine sidecar is not valid JSON ({exc})") from exc
        return cls.from_dict(d, str(p))


def load_sidecar(engine_path: str | os.PathLike[str]) -> EngineMetadata | None:
    """The sidecar of ``engine_path``, or None if there is none."""
    side = sidecar_path(engine_path)
    return EngineMetadata.load(side) if side.is_file() else None


def tensorrt_mismatch(meta: EngineMetadata, trt_version: str) -> str | None:
    """Why this TensorRT cannot load the engine (None = it can): checked before any GPU is asked."""
    if meta.tensorrt_version != trt_version:
        return (
            f"it was built with TensorRT {meta.tensorrt_version} and this machine runs TensorRT {trt_version} "
            "(an engine only loads in the TensorRT version that built it)"
        )
    return None


def incompatibility(meta: EngineMetadata, trt_version: str, device: DeviceIdentity) -> str | None:
    """Why an engine cannot run here (None = it can).

    TensorRT refuses plans from another version (the whole version string, build number
    included) and kernels are compiled per compute capability; another GPU of the same compute
    capability (another name, SM count or memory size: every Jetson Orin module is an "Orin",
    see :class:`DeviceIdentity`) loads but runs tactics tuned for a different chip, so it is
    refused too.
    """
    why = tensorrt_mismatch(meta, trt_version)
    if why:
        return why
    built = meta.device
    if built.compute_capability != device.compute_capability:
        return f"it was built for a {built} and this GPU is a {device}"
    if built != device:
        return (
            f"it was built on a {built} and this GPU is a {device} (same compute capability, but TensorRT "
            "tunes kernels for the GPU's name, SMs and memory)"
        )
    return None


def check_compatible(
    meta: EngineMetadata,
    trt_version: str,
    device: DeviceIdentity | None,
    engine: str | os.PathLike[str] = "engine",
) -> None:
    """Raise :class:`EngineError` if ``meta``'s engine cannot run with this TensorRT and GPU.

    ``device`` None checks the TensorRT version only (before a GPU is asked).
    """
    why = tensorrt_mismatch(meta, trt_version) if device is None else incompatibility(meta, trt_version, device)
    if why:
        raise EngineError(
            f"{engine}: cannot use this engine here: {why}. Rebuild it on this machine from the "
            "bundle: rtdetr-engine BUNDLE "
            f"--precision {meta.precision} (or Detector(BUNDLE, engines=BundleEngines()))."
        )


def check_engine_file(
    engine_path: str | os.PathLike[str], meta: EngineMetadata | None, verify_hash: bool = False
) -> int:
    """Check an engine file exists and is as long as its sidecar says; return its size.

    A copy interrupted half-way (scp, SD card) is the common way to get a truncated engine, and
    TensorRT's own error for it is cryptic, so the size is checked first.
    """
    p = Path(engine_path)
    if not p.is_file():
        raise EngineError(f"{p}: no such engine file")
    size = p.stat().st_size
    if size == 0:
        raise EngineError(f"{p}: the engine file is empty (an interrupted copy or build?); rebuild it")
    if meta is not None and meta.engine_bytes and size != meta.engine_bytes:
        raise EngineError(
            f"{p}: the engine file is truncated or altered: {size} bytes, its sidecar says "
            f"{meta.engine_bytes}; copy it again or rebuild it"
        )
    if verify_hash and meta is not None and meta.engine_sha256 and sha256_file(p) != meta.engine_sha256:
        raise EngineError(f"{p}: sha256 does not match its sidecar; copy it again or rebuild it")
    return size
