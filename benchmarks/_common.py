"""Shared by the benchmark scripts: result tables, JSON output, cached test bundles."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
CACHE = Path(os.environ.get("RTDETR_BENCH_CACHE", REPO / "build" / "bench-cache"))


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "processor": platform.processor() or _cpu_model(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[f"{c:.3f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join(out)


def write_json(name: str, data: dict[str, Any]) -> Path:
    from rtdetr_edge import atomic

    path = RESULTS / name
    atomic.write_json(path, {"machine": machine(), **data})
    return path


def run_json(code: str, *args: str, env: dict[str, str] | None = None, timeout: float = 1800) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter (own RSS, own imports); it prints one JSON line last."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def r18_model_and_bundle() -> tuple[Path, Path]:
    """An r18vd-shaped RT-DETR (random, non-tied weights) and its fp32 bundle, built once."""
    from rtdetr_edge.build import BuildOptions, build_bundle
    from rtdetr_edge.export import testing

    folder, bundle = CACHE / "r18vd-random", CACHE / "r18vd-random-bundle"
    if not (folder / "config.json").is_file():
        testing.save_model_folder(testing.random_model(testing.r18vd_config(), seed=0), folder)
    if not (bundle / "metadata.json").is_file():
        build_bundle(folder, bundle, BuildOptions(force=True))
    return folder, bundle


REFERENCE_MODEL = REPO / "models" / "rtdetr-shapes"
# Generated data for the reference model: seeds 1 and 2 trained and selected it; these are unseen.
TEST_SEED, CALIB_SEED = 3, 7


def shapes_set(name: str, num_images: int, seed: int) -> Path:
    """A generated COCO-format set under the bench cache (made once)."""
    from rtdetr_edge.data import synth

    ann = CACHE / name / "annotations.json"
    if not ann.is_file():
        synth.generate(CACHE / name, num_images, seed)
    return ann


def reference_bundle(calib: Path, calib_size: int = 256) -> Path:
    """The shipped model built with every precision (INT8 calibrated on ``calib``), made once."""
    from rtdetr_edge.build import BuildOptions, build_bundle
    from rtdetr_edge.calib import CalibrationOptions

    bundle = CACHE / "shapes-best"
    if not (bundle / "metadata.json").is_file():
        build_bundle(
            REFERENCE_MODEL,
            bundle,
            BuildOptions(
                precision="best", calibration=CalibrationOptions(calib=str(calib), size=calib_size), force=True
            ),
        )
    return bundle


def median_ms(fn: Callable[[], object], repeat: int = 20) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeat`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)
