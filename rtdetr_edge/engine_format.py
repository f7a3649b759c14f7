"""Engine sidecars, validity checks, cache keys and batch-profile arithmetic (no TensorRT needed).

A TensorRT engine only loads in the exact TensorRT version that built it and is tuned for one GPU,
so every engine ``X.engine`` gets a sidecar ``X.json`` saying what it was built with and for::

    {"format": "rtdetr-edge-engine", "format_version": 1,
     "tensorrt_version": "10.3.0", "gpu_name": "Orin", "compute_capability": "8.7",
     "precision": "fp16", "int8_mode": "none", "batch": [1, 1, 8], "dla_core": null,
     "onnx_sha256": "...", "engine_bytes": 41234567, "engine_sha256": "...",
     "rtdetr_edge.contract": "{...contract JSON...}", "build_options": {...},
     "cache_key": "...", "created": "2025-01-01T00:00:00+00:00"}

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
SIDECAR_VERSION = 1
PRECISIONS = ("fp32", "fp16", "int8")
# what an engine's INT8 came from: none (fp32/fp16), implicit (calibration cache or
# ITensor.dynamic_range, TensorRT 8.6-10.x), qdq (explicit Q/DQ graph)
INT8_KINDS = ("none", "implicit", "qdq")


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


def cache_key(
    onnx_sha256: str,
    precision: str,
    trt_version: str,
    gpu_name: str,
    compute_capability: str,
    batch: BatchProfile,
    dla_core: int | None = None,
    int8_mode: str = "none",
    extra: dict[str, Any] | None = None,
) -> str:
    """Identity of an engine: same key, interchangeable engine (16 hex digits).

    Args:
        onnx_sha256: hash of the ONNX the engine is built from.
        precision: fp32, fp16 or int8.
        trt_version: the building TensorRT's ``__version__`` (engines only load in that version).
        gpu_name, compute_capability: the GPU the engine is tuned for.
        batch: the optimisation profile.
        dla_core: DLA core (None = GPU).
        int8_mode: none, implicit or qdq.
        extra: other choices that change the engine's numbers (layers kept in FP32, INT8 ranges'
            hash); build-speed knobs (workspace, optimisation level) are left out on purpose.
    """
    ident = {
        "onnx": onnx_sha256,
        "precision": precision,
        "tensorrt": trt_version,
        "gpu": gpu_name,
        "cc": compute_capability,
        "batch": list(batch.as_tuple()),
        "dla": dla_core,
        "int8": int8_mode,
        "extra": extra or {},
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def engine_file_name(
    precision: str,
    batch: BatchProfile,
    trt_version: str,
    compute_capability: str,
    key: str,
    dla_core: int | None = None,
) -> str:
    """A readable, unique engine name: ``fp16_b1-1-8_trt10.3.0_sm87_<key>.engine``."""
    dla = f"_dla{dla_core}" if dla_core is not None else ""
    ver = ".".join(str(v) for v in version_tuple(trt_version))
    return f"{precision}_b{batch.min}-{batch.opt}-{batch.max}{dla}_trt{ver}_{sm_tag(compute_capability)}_{key}.engine"


def sidecar_path(engine_path: str | os.PathLike[str]) -> Path:
    """``X.engine`` -> ``X.json``."""
    return Path(engine_path).with_suffix(".json")


@dataclass
class EngineMetadata:
    """What one engine was built with and for (the sidecar's content).

    Attributes:
        tensorrt_version: TensorRT ``__version__`` that built it.
        gpu_name, compute_capability: GPU it was built on (``"8.7"``).
        precision: fp32, fp16 or int8.
        int8_mode: none, implicit or qdq.
        batch: optimisation profile.
        onnx_sha256: hash of the source ONNX.
        contract_json: the model contract JSON text (None for engines from foreign ONNX).
        engine_bytes, engine_sha256: size and hash of the engine file (truncation check).
        dla_core: DLA core the engine runs on (None = GPU).
        build_options: options and decisions of the build (for reports).
        cache_key: see :func:`cache_key`.
        created: ISO time.
    """

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    int8_mode: str
    batch: BatchProfile
    onnx_sha256: str
    contract_json: str | None = None
    engine_bytes: int = 0
    engine_sha256: str = ""
    dla_core: int | None = None
    build_options: dict[str, Any] = field(default_factory=dict)
    cache_key: str = ""
    created: str = field(default_factory=now_iso)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise EngineError(f"engine metadata: precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.int8_mode not in INT8_KINDS:
            raise EngineError(f"engine metadata: int8_mode {self.int8_mode!r} is not one of {', '.join(INT8_KINDS)}")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "format": SIDECAR_FORMAT,
            "format_version": SIDECAR_VERSION,
            "tensorrt_version": self.tensorrt_version,
            "gpu_name": self.gpu_name,
            "compute_capability": self.compute_capability,
            "precision": self.precision,
            "int8_mode": self.int8_mode,
            "batch": list(self.batch.as_tuple()),
            "dla_core": self.dla_core,
            "onnx_sha256": self.onnx_sha256,
            "engine_bytes": self.engine_bytes,
            "engine_sha256": self.engine_sha256,
            "build_options": self.build_options,
            "cache_key": self.cache_key,
            "created": self.created,
        }
        if self.contract_json is not None:
            d[METADATA_KEY] = self.contract_json
        return d

    @classmethod
    def from_dict(cls, d: Any, source: str = "engine sidecar") -> EngineMetadata:
        if not isinstance(d, dict) or d.get("format") != SIDECAR_FORMAT:
            raise EngineError(f"{source}: not an rtdetr-edge engine sidecar")
        if d.get("format_version") != SIDECAR_VERSION:
            raise EngineError(
                f"{source}: unknown engine sidecar version {d.get('format_version')!r}; this rtdetr-edge "
                f"reads version {SIDECAR_VERSION}. Rebuild the engine or upgrade rtdetr-edge."
            )
        try:
            contract = d.get(METADATA_KEY)
            return cls(
                tensorrt_version=str(d["tensorrt_version"]),
                gpu_name=str(d["gpu_name"]),
                compute_capability=str(d["compute_capability"]),
                precision=str(d["precision"]),
                int8_mode=str(d.get("int8_mode", "none")),
                batch=BatchProfile.coerce(d["batch"]),
                onnx_sha256=str(d.get("onnx_sha256", "")),
                contract_json=str(contract) if contract is not None else None,
                engine_bytes=int(d.get("engine_bytes", 0)),
                engine_sha256=str(d.get("engine_sha256", "")),
                dla_core=None if d.get("dla_core") is None else int(d["dla_core"]),
                build_options=dict(d.get("build_options") or {}),
                cache_key=str(d.get("cache_key", "")),
                created=str(d.get("created", "")),
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


def incompatibility(meta: EngineMetadata, trt_version: str, gpu_name: str, compute_capability: str) -> str | None:
    """Why an engine cannot run here (None = it can).

    TensorRT refuses plans from another version (the whole version string, build number
    included) and kernels are compiled per compute capability; another GPU model with the same
    compute capability loads but runs tactics tuned for a different chip, so it is refused too.
    """
    if meta.tensorrt_version != trt_version:
        return (
            f"it was built with TensorRT {meta.tensorrt_version} and this machine runs TensorRT {trt_version} "
            "(an engine only loads in the TensorRT version that built it)"
        )
    if meta.compute_capability != compute_capability:
        return (
            f"it was built for a {meta.gpu_name} (compute capability {meta.compute_capability}) and this GPU is "
            f"a {gpu_name} (compute capability {compute_capability})"
        )
    if meta.gpu_name != gpu_name:
        return (
            f"it was built on a {meta.gpu_name} and this GPU is a {gpu_name} (same compute capability "
            f"{compute_capability}, but TensorRT tunes kernels per GPU model)"
        )
    return None


def check_compatible(
    meta: EngineMetadata,
    trt_version: str,
    gpu_name: str,
    compute_capability: str,
    engine: str | os.PathLike[str] = "engine",
) -> None:
    """Raise :class:`EngineError` if ``meta``'s engine cannot run with this TensorRT and GPU."""
    why = incompatibility(meta, trt_version, gpu_name, compute_capability)
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
