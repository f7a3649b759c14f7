"""Latency and throughput of a Detector, stage by stage, like trtexec reports them.

Warm-up runs first (engine tactics, allocator, caches), then ``iterations`` timed runs of one
batch. Host latency is the wall time of a whole Detector call; each stage (preprocess, infer,
postprocess) is timed separately; backends that can time the device (TensorRT with CUDA events)
add ``gpu_compute``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
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
