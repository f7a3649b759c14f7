"""The self-test's checks: each a function of the :class:`Session`, returning its numbers.

A check raises :class:`Skipped` when it cannot run here (with why), :class:`CheckFailed` (or any
error) when what it checks is wrong. ``cpu`` checks need nothing beyond the runtime install;
``cuda`` checks need a CUDA device; ``tensorrt`` checks need TensorRT as well.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .. import trt_cache
from .._optional import available
from ..bundle import Bundle, sha256_file
from ..cuda import buffers
from ..engine_format import BatchProfile, version_tuple
from ..errors import RtdetrEdgeError
from .compare import OUTPUTS, agreement

Needs = Literal["cpu", "cuda", "tensorrt"]
ENGINE_BATCH = BatchProfile(1, 2, 4)  # the 4 reference images, and batch switches 1 <-> 2
# CUDA graphs per batch size: the first call of a size is a plain enqueue, the second captures and
# launches, later ones replay (BatchRunner). 1,2,1,2,1,2 makes 2 captures (calls 3-4) and 4 launches,
# two of them replays of a graph after the other batch size ran in between (calls 5-6)
GRAPH_BATCHES = (1, 2, 1, 2, 1, 2)
GRAPH_COUNTS = {"captures": 2, "launches": 4}
# TensorRT versions the CPU checks take the recipe for when none is installed: JetPack 6.0, 6.1/6.2,
# 7.2, and 11.4.1 (JetPack >= 7.2.2)
PLANNED_VERSIONS = ("8.6.2", "10.3.0", "10.16.1", "11.4.1")


class Skipped(Exception):
    """The check cannot run on this machine; the message says why."""


class CheckFailed(Exception):
    """What the check looks at is wrong; the message says what."""


@dataclass
class Session:
    """What the checks share: the working copy of the bundle, the recordings, the machine."""

    bundle: Bundle
    reference: dict[str, np.ndarray]
    required: dict[str, dict[str, float]]
    device: int
    trt_version: str | None
    cuda: buffers.CudaStatus
    gpu: buffers.DeviceProperties | None
    engines: dict[str, Path] = field(default_factory=dict)
    engine_errors: dict[str, str] = field(default_factory=dict)
    build_seconds: dict[str, float] = field(default_factory=dict)

    def outputs(self, key: str, batch: slice = slice(None)) -> dict[str, np.ndarray]:
        return {name: self.reference[f"{key}/{name}"][batch] for name in OUTPUTS}

    @property
    def images(self) -> np.ndarray:
        return self.reference["images"]

    @property
    def major(self) -> int:
        return version_tuple(self.trt_version)[0] if self.trt_version else 0


@dataclass(frozen=True)
class Check:
    name: str
    needs: Needs
    what: str
    run: Callable[[Session], dict[str, Any]]


# --- helpers -----------------------------------------------------------------------------------


def _within(name: str, candidate: dict[str, np.ndarray], session: Session, precision: str) -> dict[str, Any]:
    """Agreement with the recorded fp32 outputs; raises CheckFailed below what ``precision`` needs."""
    need = session.required[precision]
    n = candidate["scores"].shape[0]
    got = agreement(session.outputs("fp32", slice(0, n)), candidate, need["box_tol"])
    numbers: dict[str, Any] = {**got.numbers(), "required": need}
    if got.matched < need["matched"] or got.score_diff > need["max_score_diff"]:
        raise CheckFailed(
            f"{name}: {got.matched:.2f} of the top-10 detections match ONNX Runtime's fp32 recording "
            f"(needs {need['matched']}), largest score difference {got.score_diff:.4f} (allowed "
            f"{need['max_score_diff']})"
        )
    return numbers


def _engine(session: Session, key: str, precision: str, **options: Any) -> Path:
    """The engine for ``key`` (built once per session); a failed build is remembered."""
    if key in session.engines:
        return session.engines[key]
    if key in session.engine_errors:
        raise Skipped(f"the {key} engine did not build ({session.engine_errors[key]})")
    from ..engine import EngineBuildOptions, engine_for_bundle

    opts = EngineBuildOptions(batch=options.pop("batch", ENGINE_BATCH), **options)
    t0 = time.perf_counter()
    try:
        path = engine_for_bundle(session.bundle, precision, opts, session.device, rebuild=True)
    except Exception as exc:
        session.engine_errors[key] = str(exc).splitlines()[0]
        raise
    session.build_seconds[key] = round(time.perf_counter() - t0, 2)
    session.engines[key] = path
    return path


def _backend(path: Path, session: Session, **options: Any) -> Any:
    from ..backends.options import TensorRTOptions
    from ..backends.tensorrt import TensorRTBackend

    return TensorRTBackend(path, TensorRTOptions(device=session.device, **options))


def _run(backend: Any, images: np.ndarray) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = backend.run({"images": images})
    return out


def _engine_check(key: str, precision: str, **options: Any) -> Callable[[Session], dict[str, Any]]:
    def check(session: Session) -> dict[str, Any]:
        path = _engine(session, key, precision, **options)
        backend = _backend(path, session)
        try:
            out = _run(backend, session.images)
            gpu_ms = backend.last_gpu_ms
        finally:
            backend.close()
        numbers = _within(key, out, session, precision)
        return {
            "build_s": session.build_seconds.get(key),
            "engine_mb": round(path.stat().st_size / 1e6, 2),
            "gpu_ms_batch4": gpu_ms,
            **numbers,
        }

    return check


# --- CPU checks --------------------------------------------------------------------------------


def check_bundle(session: Session) -> dict[str, Any]:
    bundle = Bundle(session.bundle.path, verify_hashes=True)
    int8 = bundle.artifact("int8")
    trt8 = int8.get("trt8_file")
    if trt8 and sha256_file(bundle.path / trt8) != int8.get("trt8_sha256"):
        raise CheckFailed(f"{trt8}: sha256 does not match metadata")
    missing = [
        k
        for k in ("images", *(f"{p}/{o}" for p in ("fp32", "fp16", "int8") for o in OUTPUTS))
        if k not in session.reference
    ]
    if missing:
        raise CheckFailed(f"reference.npz lacks {', '.join(missing)}")
    files = [p for p in bundle.path.rglob("*") if p.is_file()]
    return {
        "precisions": bundle.precisions,
        "files": len(files),
        "mb": round(sum(p.stat().st_size for p in files) / 1e6, 2),
        "images": list(session.images.shape),
    }


def check_onnxruntime(session: Session) -> dict[str, Any]:
    if not available("onnxruntime"):
        raise Skipped("onnxruntime is not installed (pip install onnxruntime); the TensorRT checks do not need it")
    from ..backends.onnxruntime import OnnxRuntimeBackend
    from ..backends.options import OnnxRuntimeOptions

    numbers: dict[str, Any] = {}
    files = {"fp32": "fp32", "fp16": "fp16", "int8": "int8"}
    for key, precision in files.items():
        backend = OnnxRuntimeBackend(session.bundle.onnx_path(precision), OnnxRuntimeOptions(threads=2))
        try:
            out = backend.run({"images": session.images})
        finally:
            backend.close()
        # the same runtime on the same file: as close as fp32 gets, whatever the precision
        need = session.required["fp32"]
        got = agreement(session.outputs(key), out, need["box_tol"])
        if got.matched < need["matched"] or got.score_diff > need["max_score_diff"]:
            raise CheckFailed(f"{key}: ONNX Runtime no longer reproduces the recording ({got.numbers()})")
        numbers[key] = got.numbers()
    return numbers


def check_cache_format(session: Session) -> dict[str, Any]:
    from ..ranges import CalibrationRanges

    table = CalibrationRanges.load(session.bundle.path / "calib" / "ranges.json").ranges
    versions = [session.trt_version] if session.trt_version and session.major < 11 else ["8.6.2", "10.3.0"]
    numbers: dict[str, Any] = {"tensors": len(table)}
    for version in versions:
        text = trt_cache.write_cache(table, version)
        code, algo, back = trt_cache.read_cache(text)
        if code != trt_cache.version_code(version) or algo != trt_cache.ENTROPY2 or set(back) != set(table):
            raise CheckFailed(f"the TensorRT {version} cache does not read back (header {code} {algo})")
        worst = max(abs(back[k] - table[k]) / max(table[k], 1e-12) for k in table)
        if worst > 1e-6:
            raise CheckFailed(f"TensorRT {version} cache: ranges change by up to {worst:.2e} (relative) on the way")
        shipped = session.bundle.path / "calib" / f"trt-{'.'.join(map(str, version_tuple(version)))}.cache"
        same = shipped.read_text() == text if shipped.is_file() else None
        if same is False:
            raise CheckFailed(f"{shipped.name} differs from the cache written for TensorRT {version} now")
        numbers[version] = {"header": text.splitlines()[0], "matches_shipped_cache": same}
    return numbers


def check_recipes(session: Session) -> dict[str, Any]:
    """The engine recipe of every precision (and INT8 on DLA) for this TensorRT, or the planned ones."""
    from ..engine.cache import bundle_recipe, checked_source
    from ..engine_recipe import EngineBuildOptions

    versions = [session.trt_version] if session.trt_version else list(PLANNED_VERSIONS)
    bundle = session.bundle
    numbers: dict[str, Any] = {}
    for version in versions:
        routes: dict[str, Any] = {}
        for route, precision, options in (
            ("fp32", "fp32", EngineBuildOptions()),
            ("fp16", "fp16", EngineBuildOptions()),
            ("int8", "int8", EngineBuildOptions()),
            ("fp16 on DLA", "fp16", EngineBuildOptions(batch=BatchProfile(1, 1, 1), dla_core=0)),
            ("int8 on DLA", "int8", EngineBuildOptions(batch=BatchProfile(1, 1, 1), dla_core=0)),
        ):
            try:
                r = bundle_recipe(bundle, precision, options, version)
            except RtdetrEdgeError as exc:
                if options.dla_core is None:
                    raise
                routes[route] = {"refused": describe_error(exc)}
                continue
            checked_source(bundle, r)  # the file the recipe names is the bundle's, unaltered
            routes[route] = {
                "onnx": r.source.file,
                "strongly_typed": r.strongly_typed,
                "builder_flags": list(r.builder_flags),
                "tf32": r.tf32,
            }
        numbers[version] = routes
    return numbers


# --- CUDA checks -------------------------------------------------------------------------------


def _round_trip(session: Session, source: str, data: np.ndarray) -> None:
    """``data`` into a ``source`` buffer, a device copy into a pinned one, back to the host: equal?

    For a mapped source the upload is a no-op: the GPU reads what the host wrote, in place.
    """
    with buffers.on_device(session.device):
        stream = buffers.Stream()
        try:
            with (
                buffers.HostDeviceBuffer(data.shape, data.dtype, source) as src,
                buffers.HostDeviceBuffer(data.shape, data.dtype, "pinned") as dst,
            ):
                src.host[...] = data
                src.to_device(stream)
                buffers.copy_device(dst.device_ptr, src.device_ptr, src.nbytes, stream)
                dst.to_host(stream)
                stream.synchronize()
                if not np.array_equal(dst.host, data):
                    raise CheckFailed(f"bytes differ after {source} host -> device -> device -> host")
        finally:
            stream.close()


def check_pinned(session: Session) -> dict[str, Any]:
    data = np.random.default_rng(0).standard_normal((4, 3, 64, 64)).astype(np.float32)
    _round_trip(session, "pinned", data)
    return {"bytes": int(data.nbytes), "bindings": buffers.driver().name}


def check_mapped(session: Session) -> dict[str, Any]:
    if session.gpu is None or not session.gpu.can_map_host_memory:
        raise Skipped("this GPU cannot map host memory (canMapHostMemory is 0)")
    data = np.random.default_rng(1).integers(0, 255, (2, 3, 32, 32)).astype(np.float32)
    _round_trip(session, "mapped", data)
    return {"bytes": int(data.nbytes), "integrated": session.gpu.integrated}


def check_pycuda(session: Session) -> dict[str, Any]:
    """The pycuda fallback (used where cuda-python is missing): copies from two threads, no context left,
    then TensorRT's fp32 engine run with pycuda's buffers, stream and events (when TensorRT is here)."""
    if not available("pycuda.driver"):
        raise Skipped("pycuda is not installed (the runtime uses cuda-python; pycuda is only its fallback)")
    from .._optional import require

    drv = buffers._PyCuda(require("pycuda.driver"))
    data = np.arange(4096, dtype=np.float32)
    results: dict[str, Any] = {}

    def round_trip(where: str) -> None:
        try:
            drv.set_device(session.device)
            n = int(data.nbytes)
            src, src_owner = drv.host_alloc(n, mapped=False)
            dst, dst_owner = drv.host_alloc(n, mapped=False)
            dev, dev_owner = drv.malloc(n)
            stream, _ = drv.stream_create()
            np.copyto(src_owner[:n].view(np.float32), data)
            drv.htod(dev, src, src_owner, n, stream)
            drv.dtoh(dst, dst_owner, dev, n, stream)
            drv.stream_sync(stream)
            same = bool(np.array_equal(dst_owner[:n].view(np.float32), data))
            drv.free(dev, dev_owner)
            drv.host_free(src, src_owner)
            drv.host_free(dst, dst_owner)
            results[where] = same and drv.drv.Context.get_current() is None  # nothing left pushed
        except Exception as exc:  # noqa: BLE001 - reported by the check
            results[where] = describe_error(exc)

    worker = threading.Thread(target=round_trip, args=("thread",))
    worker.start()
    worker.join()
    other = threading.Thread(target=round_trip, args=("another thread",))
    other.start()
    other.join()
    bad = {k: v for k, v in results.items() if v is not True}
    if bad:
        raise CheckFailed(f"pycuda round trip failed or left a context current: {bad}")
    return {"threads": len(results), "bytes": int(data.nbytes), "tensorrt": _tensorrt_on(drv, session)}


def _tensorrt_on(drv: Any, session: Session) -> Any:
    """The fp32 engine run with ``drv`` as the runtime's CUDA bindings (buffers, stream, events)."""
    if session.trt_version is None:
        return "not run: TensorRT is not installed (pycuda copies only)"
    path = _engine(session, "engine_fp32", "fp32")  # built as every engine is; only the run is on drv
    with buffers.bindings(drv):
        backend = _backend(path, session)
        try:
            out = _run(backend, session.images)
            used = buffers.driver().name
        finally:
            backend.close()
    return {"bindings": used, "gpu_ms_batch4": backend.last_gpu_ms, **_within("pycuda", out, session, "fp32")}


# --- TensorRT checks ---------------------------------------------------------------------------


def check_mapped_vs_pinned(session: Session) -> dict[str, Any]:
    if session.gpu is None or not session.gpu.can_map_host_memory:
        raise Skipped("this GPU cannot map host memory (canMapHostMemory is 0)")
    path = _engine(session, "engine_fp32", "fp32")
    mapped, pinned = _backend(path, session, memory="mapped"), _backend(path, session, memory="pinned")
    try:
        outs = []
        for backend in (mapped, pinned):
            buf = backend.input_buffer(4)
            np.copyto(buf, session.images)
            outs.append(backend.infer(4))
        spec = mapped.inputs[0].name
        zero_copy = (
            mapped.input_buffer(4).ctypes.data == mapped._buffers[spec].host_ptr and mapped.describe()["zero_copy"]
        )
        if not zero_copy:
            raise CheckFailed("the mapped backend's input buffer is not the mapped allocation")
        for name in OUTPUTS:
            if not np.allclose(outs[0][name], outs[1][name], rtol=1e-5, atol=1e-5):
                raise CheckFailed(f"{name} differs between mapped and pinned memory")
        return {"mapped_gpu_ms": mapped.last_gpu_ms, "pinned_gpu_ms": pinned.last_gpu_ms}
    finally:
        mapped.close()
        pinned.close()


def check_graph_replay(session: Session) -> dict[str, Any]:
    if buffers.driver().name != "cuda-python":
        raise Skipped(f"CUDA graphs need cuda-python (running on {buffers.driver().name})")
    path = _engine(session, "engine_fp32", "fp32")
    graph, plain = _backend(path, session, cuda_graph=True), _backend(path, session)
    try:
        for batch in GRAPH_BATCHES:
            images = session.images[:batch]
            got, want = _run(graph, images), _run(plain, images)
            for name in OUTPUTS:
                if not np.allclose(got[name], want[name], rtol=1e-5, atol=1e-5):
                    raise CheckFailed(f"batch {batch}: the graph's {name} differ from a plain enqueue's")
        info = graph.describe()
        counts = {"captures": info["cuda_graph_captures"], "launches": info["cuda_graph_launches"]}
        if counts != GRAPH_COUNTS:
            raise CheckFailed(
                f"expected {GRAPH_COUNTS['captures']} graphs captured and {GRAPH_COUNTS['launches']} launches over "
                f"batches {','.join(map(str, GRAPH_BATCHES))}, got {counts['captures']} and {counts['launches']} "
                "(see the log for capture failures)"
            )
        return {
            "batches": list(GRAPH_BATCHES),
            **counts,
            "replays_after_a_switch": counts["launches"] - counts["captures"],
            "contexts": info["execution_contexts"],
            "graph_gpu_ms": graph.last_gpu_ms,
            "plain_gpu_ms": plain.last_gpu_ms,
        }
    finally:
        graph.close()
        plain.close()


def check_clones(session: Session) -> dict[str, Any]:
    path = _engine(session, "engine_fp32", "fp32")
    base = _backend(path, session)
    clones = [base.clone() for _ in range(2)]
    errors: list[str] = []
    done: list[int] = []

    def work(backend: Any) -> None:
        try:
            for batch in GRAPH_BATCHES:
                _within("clone", _run(backend, session.images[:batch]), session, "fp32")
                done.append(batch)
        except Exception as exc:  # noqa: BLE001 - reported by the check
            errors.append(f"{type(exc).__name__}: {exc}")

    try:
        threads = [threading.Thread(target=work, args=(b,)) for b in (base, *clones)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise CheckFailed(f"a clone failed in its thread: {errors[0]}")
        return {"threads": len(threads), "runs": len(done), "engine_copies": base.describe()["engine_copies"]}
    finally:
        for backend in (*clones, base):
            backend.close()


def check_timing_cache(session: Session) -> dict[str, Any]:
    """The FP16 build writes a timing cache; a rebuild reads it: on TensorRT >= 10 the rebuild runs
    with ERROR_ON_TIMING_CACHE_MISS, so one tactic timed outside the cache fails it. TensorRT 8.6
    has no such flag: there only the file and the two build times are reported."""
    from ..engine.builder import build_serialized_engine
    from ..engine.cache import bundle_recipe, inspect_onnx
    from ..engine_recipe import EngineBuildOptions

    first = _engine(session, "engine_fp16", "fp16")
    caches = sorted(first.parent.glob("timing_*.cache"))
    if not caches or caches[0].stat().st_size == 0:
        raise CheckFailed(f"no timing cache was written next to {first.name}")
    cache = caches[0]
    numbers: dict[str, Any] = {
        "cache": cache.name,
        "cache_bytes": cache.stat().st_size,
        "first_build_s": session.build_seconds.get("engine_fp16"),
    }
    if session.major < 10:
        numbers["reads_cache"] = f"not provable on TensorRT {session.trt_version} (no ERROR_ON_TIMING_CACHE_MISS)"
        session.engines.pop("timing_rebuild", None)
        _engine(session, "timing_rebuild", "fp16")
        numbers["rebuild_s"] = session.build_seconds.get("timing_rebuild")
        return numbers
    r = bundle_recipe(session.bundle, "fp16", EngineBuildOptions(batch=ENGINE_BATCH), str(session.trt_version))
    facts = inspect_onnx(r.source.path, r.fp32_pins, r.source.sha256 or None)
    t0 = time.perf_counter()
    try:
        with buffers.on_device(session.device):
            build_serialized_engine(r, facts.hints, str(cache), cache_hits_only=True)
    except RtdetrEdgeError as exc:
        raise CheckFailed(describe_error(exc)) from None
    numbers["rebuild_s"] = round(time.perf_counter() - t0, 2)
    numbers["reads_cache"] = "every tactic of the rebuild came from the cache (ERROR_ON_TIMING_CACHE_MISS)"
    return numbers


def check_dla(session: Session) -> dict[str, Any]:
    from ..backends.trt_runtime import dla_cores
    from ..engine.cache import bundle_recipe
    from ..engine_recipe import EngineBuildOptions

    cores = dla_cores()
    if cores == 0:
        raise Skipped("this device has no DLA cores")
    numbers: dict[str, Any] = {"dla_cores": cores}
    options = EngineBuildOptions(batch=BatchProfile(1, 1, 1), dla_core=0)
    try:  # the recipe says whether this TensorRT has DLA (10.8-11.4.0 have none)
        bundle_recipe(session.bundle, "fp16", options, str(session.trt_version))
    except RtdetrEdgeError as exc:
        raise Skipped(describe_error(exc)) from None
    path = _engine(session, "dla_fp16", "fp16", dla_core=0, batch=BatchProfile(1, 1, 1))
    backend = _backend(path, session)
    try:
        out = _run(backend, session.images[:1])
    finally:
        backend.close()
    numbers["fp16"] = {"build_s": session.build_seconds.get("dla_fp16"), **_within("dla", out, session, "fp16")}
    try:  # INT8 on DLA: refused by the recipe on every line (implicit quantization only); the refusal is reported
        bundle_recipe(session.bundle, "int8", options, str(session.trt_version))
    except RtdetrEdgeError as exc:
        numbers["int8"] = {"refused": describe_error(exc)}
    else:
        raise CheckFailed("the recipe builds INT8 on DLA, which DLA does not take from a Q/DQ graph")
    return numbers


CHECKS: tuple[Check, ...] = (
    Check("bundle", "cpu", "the shipped bundle and recordings are complete and unaltered", check_bundle),
    Check("onnxruntime_reference", "cpu", "ONNX Runtime reproduces the recorded outputs", check_onnxruntime),
    Check("tensorrt_cache_format", "cpu", "INT8 caches written for the TensorRT versions", check_cache_format),
    Check("engine_recipes", "cpu", "every precision has an engine recipe from the bundle's own graphs", check_recipes),
    Check("cuda_pinned_round_trip", "cuda", "pinned host <-> device copies", check_pinned),
    Check("cuda_mapped_round_trip", "cuda", "the GPU reads mapped (zero-copy) host memory", check_mapped),
    Check(
        "pycuda_contexts",
        "cuda",
        "the pycuda fallback on two threads, no context left, and the fp32 engine run on it",
        check_pycuda,
    ),
    Check(
        "engine_fp32", "tensorrt", "fp32 engine builds and matches the recording", _engine_check("engine_fp32", "fp32")
    ),
    Check(
        "engine_fp16", "tensorrt", "FP16 engine builds and matches the recording", _engine_check("engine_fp16", "fp16")
    ),
    Check(
        "engine_int8",
        "tensorrt",
        "INT8 (Q/DQ) engine builds and matches the recording",
        _engine_check("engine_int8", "int8"),
    ),
    Check("mapped_vs_pinned", "tensorrt", "mapped and pinned buffers give the same outputs", check_mapped_vs_pinned),
    Check("cuda_graph_replay", "tensorrt", "CUDA graphs replay correctly over batches 1,2,1,2,1,2", check_graph_replay),
    Check("clone_threads", "tensorrt", "clones run in parallel threads", check_clones),
    Check("timing_cache_reuse", "tensorrt", "a rebuild reads the timing cache", check_timing_cache),
    Check("dla", "tensorrt", "FP16 on DLA core 0 with GPU fallback (INT8 on DLA refused by the recipe)", check_dla),
)


def describe_error(exc: BaseException) -> str:
    """One line for the report: our errors as they are, anything else with its type."""
    if isinstance(exc, (CheckFailed, Skipped, RtdetrEdgeError)):
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


__all__ = ["CHECKS", "Check", "CheckFailed", "Session", "Skipped", "describe_error"]
