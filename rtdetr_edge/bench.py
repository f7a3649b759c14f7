"""Latency and throughput of a Detector, stage by stage, like trtexec reports them.

Warm-up runs first (engine tactics, allocator, caches), then ``iterations`` timed runs of one
batch. Host latency is the wall time of a whole Detector call; each stage (preprocess, infer,
postprocess) is timed separately; backends that can time the device (TensorRT with CUDA events)
add ``gpu_compute``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data.synth import render_scene
from .detector import Detector
from .images import read_image


def percentiles(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, np.float64)
    if a.size == 0:
        return {}
    return {
        "mean": float(a.mean()),
        "min": float(a.min()),
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
    }


@dataclass
class BenchResult:
    model: str
    batch: int
    iterations: int
    image_size: tuple[int, int]
    backend: dict[str, Any]
    latency_ms: dict[str, float]
    stages_ms: dict[str, dict[str, float]]
    throughput_ips: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "batch": self.batch,
            "iterations": self.iterations,
            "image_size": list(self.image_size),
            "backend": self.backend,
            "latency_ms": self.latency_ms,
            "stages_ms": self.stages_ms,
            "throughput_ips": self.throughput_ips,
            **self.extra,
        }

    def table(self) -> str:
        rows = [("host latency", self.latency_ms)] + [(k, v) for k, v in self.stages_ms.items()]
        lines = [
            f"{self.model}  backend={self.backend.get('backend')}  batch={self.batch}  "
            f"iterations={self.iterations}  image={self.image_size[0]}x{self.image_size[1]}",
            f"{'stage':<14}{'mean':>9}{'p50':>9}{'p90':>9}{'p99':>9}  (ms per batch)",
        ]
        for name, s in rows:
            lines.append(f"{name:<14}{s['mean']:>9.2f}{s['p50']:>9.2f}{s['p90']:>9.2f}{s['p99']:>9.2f}")
        lines.append(f"throughput    {self.throughput_ips:.1f} images/s")
        return "\n".join(lines)


def benchmark(
    model: str | os.PathLike[str] | Detector,
    batch: int = 1,
    iterations: int = 50,
    warmup: int = 10,
    image: str | os.PathLike[str] | np.ndarray | None = None,
    image_size: tuple[int, int] = (1280, 720),
) -> BenchResult:
    """Time a Detector on one image repeated ``batch`` times.

    Args:
        model: an open :class:`Detector`, or a bundle / .onnx / .engine path (opened with defaults).
        batch: images per call.
        iterations: timed calls (default 50).
        warmup: untimed calls first (default 10).
        image: a path or BGR array; default a synthetic scene of ``image_size``.
        image_size: (width, height) of the synthetic scene (default 1280x720).
    """
    det = model if isinstance(model, Detector) else Detector(model, max_batch=batch)
    if image is None:
        frame = render_scene(np.random.default_rng(0), *image_size)[0]
    elif isinstance(image, np.ndarray):
        frame = image
    else:
        frame = read_image(image)
    frames = [frame] * batch
    for _ in range(warmup):
        det.detect_batch(frames)
    host: list[float] = []
    stages: dict[str, list[float]] = {"preprocess": [], "infer": [], "postprocess": []}
    gpu: list[float] = []
    t_all = time.perf_counter()
    for _ in range(iterations):
        t0 = time.perf_counter()
        det.detect_batch(frames)
        host.append((time.perf_counter() - t0) * 1e3)
        t = det.last_times
        stages["preprocess"].append(t.preprocess)
        stages["infer"].append(t.infer)
        stages["postprocess"].append(t.postprocess)
        gpu_ms = getattr(det.backend, "last_gpu_ms", None)
        if gpu_ms is not None:
            gpu.append(float(gpu_ms))
    wall = time.perf_counter() - t_all
    stage_stats = {k: percentiles(v) for k, v in stages.items()}
    if gpu:
        stage_stats["gpu_compute"] = percentiles(gpu)
    name = str(det.model_path)
    result = BenchResult(
        name,
        batch,
        iterations,
        (frame.shape[1], frame.shape[0]),
        det.describe(),
        percentiles(host),
        stage_stats,
        batch * iterations / wall,
    )
    if not isinstance(model, Detector):
        det.close()
    return result


# --- rtdetr-engine --precision best --------------------------------------------------------------

# INT8 becomes a device's default only this much faster than FP16 (and only when the host's INT8
# check passed): DETR INT8 engines are often no faster than FP16 (roboflow/rf-detr#955, #1024;
# NVIDIA/TensorRT#4554), and a default that costs accuracy must buy real speed
INT8_MIN_SPEEDUP = 0.10

# Timer: (engine file, batch) -> {"gpu_compute_ms": p50 or None, "host_latency_ms": p50, ...}
Timer = Callable[[Path, int], dict[str, Any]]


@dataclass(frozen=True)
class BestPrecision:
    """What ``rtdetr-engine BUNDLE --precision best`` built, measured and chose on this device."""

    chosen: str
    reason: str
    metric: str  # "gpu_compute_ms" (CUDA events) or "host_latency_ms" when the backend has no events
    batch: int
    engines: dict[str, Path]
    timings: dict[str, dict[str, Any]]

    def table(self) -> str:
        lines = [f"{'precision':<10}{'batch':>6}{'GPU ms p50':>12}{'host ms p50':>13}  engine"]
        for precision, t in self.timings.items():
            gpu = t.get("gpu_compute_ms")
            lines.append(
                f"{precision:<10}{t['batch']:>6}{'-' if gpu is None else f'{gpu:.2f}':>12}"
                f"{t['host_latency_ms']:>13.2f}  {self.engines[precision].name}"
            )
        lines.append(f"default on this device: {self.chosen} ({self.reason})")
        return "\n".join(lines)


def host_int8_check(bundle: Any) -> str | None:
    """None when the bundle's host INT8 check passed (``report.json``: ``check.int8.passed``), else why not."""
    import json

    report = bundle.path / "report.json"
    try:
        check = (json.loads(report.read_text()).get("check") or {}).get("int8")
    except (OSError, ValueError) as exc:
        return f"the bundle's report.json cannot be read ({exc})"
    if not isinstance(check, dict):
        return "the host INT8 check did not run (rtdetr-build --check-images)"
    if check.get("passed") is not True:
        failures = [str(f) for f in check.get("failures", [])]
        return "the host INT8 check failed" + (f": {'; '.join(failures)}" if failures else "")
    return None


def choose_precision(int8_check: str | None, fp16_ms: float, int8_ms: float) -> tuple[str, str]:
    """(fp16 or int8, why): INT8 only when its host check passed and it is >= 10 % faster than FP16."""
    gain = 1.0 - int8_ms / fp16_ms if fp16_ms > 0 else 0.0
    speed = f"INT8 {int8_ms:.2f} ms vs FP16 {fp16_ms:.2f} ms ({100 * gain:+.1f} %)"
    if int8_check is not None:
        return "fp16", f"{int8_check}; {speed}"
    if not int8_ms <= (1.0 - INT8_MIN_SPEEDUP) * fp16_ms:  # (not gain < 0.1: 1 - 9/10 is 0.0999...)
        return "fp16", f"{speed}: INT8 is not at least {100 * INT8_MIN_SPEEDUP:.0f} % faster"
    return "int8", f"{speed}, and the host INT8 check passed"


def time_engine(path: Path, batch: int, device: int = 0, iterations: int = 50, warmup: int = 10) -> dict[str, Any]:
    """One engine timed as ``rtdetr-bench`` does: :func:`benchmark` of a TensorRT Detector at ``batch``."""
    from .backends.options import TensorRTOptions

    det = Detector(path, backend="tensorrt", tensorrt=TensorRTOptions(device=device), max_batch=batch)
    try:
        r = benchmark(det, batch=batch, iterations=iterations, warmup=warmup)
    finally:
        det.close()
    gpu = r.stages_ms.get("gpu_compute", {}).get("p50")
    return {
        "batch": batch,
        "iterations": iterations,
        "gpu_compute_ms": None if gpu is None else round(gpu, 4),
        "host_latency_ms": round(r.latency_ms["p50"], 4),
    }


def best_precision(
    bundle: Any,
    options: Any = None,
    device: int = 0,
    rebuild: bool = False,
    timer: Timer | None = None,
) -> BestPrecision:
    """Build the FP16 and INT8 engines from the recipe, time both at the profile's opt batch, choose.

    INT8 becomes the default only when the bundle's host INT8 check passed and INT8 is at least
    10 % faster than FP16 (:func:`choose_precision`); the timings and the choice are written into
    both engines' sidecars, where ``Detector(bundle)`` (``precision="auto"``) finds the choice.

    Args:
        bundle: an open :class:`~rtdetr_edge.bundle.Bundle` with fp16 and int8 artifacts.
        options: :class:`~rtdetr_edge.engine_recipe.EngineBuildOptions` for both engines.
        device: CUDA device.
        rebuild: rebuild engines even if valid ones are cached.
        timer: ``(engine, batch) -> timings`` (default :func:`time_engine`; tests inject numbers).
    """
    from dataclasses import replace

    from .engine import engine_for_bundle
    from .engine_format import load_sidecar, sidecar_path
    from .errors import EngineError, InputError

    missing = [p for p in ("fp16", "int8") if p not in bundle.precisions]
    if missing:
        raise InputError(
            f"--precision best compares FP16 and INT8 engines, and {bundle.path} has no {' or '.join(missing)} "
            f"graph (it has {', '.join(bundle.precisions)}); build one precision with --precision"
        )
    engines = {p: engine_for_bundle(bundle, p, options, device, rebuild) for p in ("fp16", "int8")}
    metas = {p: load_sidecar(path) for p, path in engines.items()}
    fp16_meta = metas["fp16"]
    if fp16_meta is None:
        raise EngineError(f"internal: {engines['fp16']} was built without its sidecar")
    batch = fp16_meta.batch.opt  # the profile's opt batch: what TensorRT tuned the kernels for
    measure = timer or (lambda path, n: time_engine(path, n, device))
    timings = {p: measure(path, batch) for p, path in engines.items()}
    metric = "gpu_compute_ms" if all(t.get("gpu_compute_ms") for t in timings.values()) else "host_latency_ms"
    chosen, reason = choose_precision(
        host_int8_check(bundle), float(timings["fp16"][metric]), float(timings["int8"][metric])
    )
    best = {"chosen": chosen, "reason": reason, "metric": metric, **{p: t[metric] for p, t in timings.items()}}
    for p, path in engines.items():
        meta = metas[p]
        if meta is not None:
            replace(meta, timings=timings[p], best=best).save(sidecar_path(path))
    return BestPrecision(chosen, reason, metric, batch, engines, timings)
