#!/usr/bin/env python3
"""Host INT8 build at real size: wall time and peak resident memory per build stage (issue 27).

An r18vd-shaped model (random weights, 80 classes, 640x640; ``export.testing.r18vd_config``) gets
``--precision int8`` added to its fp32 bundle (``add_precisions``: FP16, calibration, range
choice, quantize, plan, accuracy report, Polygraphy check) from generated COCO-format images,
in a fresh interpreter per run so the numbers are the build's own. Stages are the names the
build passes to its ``step`` callback; at each one the process's high-water mark (VmHWM) is read
and reset (``/proc/self/clear_refs`` 5), so a stage's peak is its own, not an earlier stage's.

Each run is stored under ``--label`` in ``benchmarks/results/int8_memory.json`` (other labels
kept), and the table compares every stored label per stage. "before" is the same script run
against the code before the fix (``--code`` a checkout of it, put first on the subprocess's
``PYTHONPATH``):

    git worktree add /tmp/before <commit>           # the commit before the fix
    python benchmarks/int8_memory.py --label before --code /tmp/before
    python benchmarks/int8_memory.py --label after
    python benchmarks/int8_memory.py --quick        # a small run of the same stages (label "quick")
    python benchmarks/int8_memory.py --collect-ab 2 --calib-size 32   # collection images/s, A/B

The generated set's categories are renamed ``class_0``... (the model's class names) so that the
range choice and the accuracy report run. Random weights give few or no detections: AP and the
check's verdict mean nothing here; only time and memory are measured. One r18 build at a time: it holds gigabytes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import RESULTS, r18_model_and_bundle, run_json, shapes_set, table, write_json

RESULT = "int8_memory.json"

# Runs in the fresh interpreter: builds INT8 into a copy of the fp32 bundle, recording each stage.
CHILD = r"""
import json, resource, sys, time
from pathlib import Path

args = json.loads(sys.argv[1])

def status():
    out = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) / 1024  # kB -> MiB
    return out

stages = []
current = {"stage": "setup", "t0": time.perf_counter()}

def step(name):
    now = time.perf_counter()
    mem = status()
    stages.append({"stage": current["stage"], "wall_s": round(now - current["t0"], 2),
                   "peak_mb": round(mem["VmHWM"]), "end_rss_mb": round(mem["VmRSS"])})
    with open("/proc/self/clear_refs", "w") as fh:  # VmHWM := VmRSS: the next stage's own peak
        fh.write("5")
    current.update(stage=name, t0=time.perf_counter())

import rtdetr_edge
from rtdetr_edge.build import BuildOptions, add_precisions
from rtdetr_edge.calib import CalibrationOptions

t0 = time.perf_counter()
opts = BuildOptions(
    precision="int8",
    check_images=args["check_images"],
    calibration=CalibrationOptions(calib=args["calib"], size=args["calib_size"], cache_dir=None),
)
out = add_precisions(args["bundle"], args["out"], opts, step=step)
step("end")
report = json.loads((Path(out) / "report.json").read_text())
print(json.dumps({
    "code": str(Path(rtdetr_edge.__file__).parent.parent),
    "stages": stages,
    "total_s": round(time.perf_counter() - t0, 2),
    "peak_mb": max(s["peak_mb"] for s in stages),
    "maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    "calibration": report.get("calibration", {}),
    "accuracy": {k: v.get("AP") for k, v in report.get("accuracy", {}).items() if isinstance(v, dict)},
    "check_passed": (report.get("check") or {}).get("passed"),
}))
"""


# Collection alone, one run per batch (--calib-memory-mb 0, the previous behaviour) against the
# default segments, alternating in one process so that the machine's load hits both alike.
COLLECT_AB = r"""
import gc, json, sys, time
args = json.loads(sys.argv[1])
from rtdetr_edge.bundle import Bundle
from rtdetr_edge.calib.collect import ActivationCollector
from rtdetr_edge.calib.stream import CalibrationBatches
from rtdetr_edge.data.coco import CocoDataset

def hwm_reset():
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")

def hwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return round(int(line.split()[1]) / 1024)

bundle = Bundle(args["bundle"])
files = [im.path for im in CocoDataset(args["calib"]).images][: args["images"]]
batches = list(CalibrationBatches(files, bundle.contract, 8, None))
runs, ranges = [], {}
for r in range(args["rounds"]):
    for memory_mb in (0, args["memory_mb"]):
        gc.collect()
        hwm_reset()
        t0 = time.perf_counter()
        col = ActivationCollector(bundle.onnx_path("fp32"), memory_mb=memory_mb, batch_size=8)
        t1 = time.perf_counter()
        col.collect(batches)
        t2 = time.perf_counter()
        ranges[memory_mb] = col.ranges("entropy2")
        runs.append({"memory_mb": memory_mb, "round": r, "segments": len(col.segments), "setup_s": round(t1 - t0, 2),
                     "collect_s": round(t2 - t1, 2), "images_per_s": round(col.images / (t2 - t1), 3),
                     "peak_mb": hwm_mb()})
        del col
same = ranges[0] == ranges[args["memory_mb"]]
print(json.dumps({"images": len(files), "runs": runs, "entropy2_ranges_equal": same}))
"""


@contextlib.contextmanager
def _cwd(path: str) -> Iterator[None]:
    """Run from ``path``: ``python -c`` imports from its working directory first."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def collect_ab(bundle: Path, calib: Path, images: int, rounds: int, memory_mb: int) -> dict[str, Any]:
    spec = {"bundle": str(bundle), "calib": str(calib), "images": images, "rounds": rounds, "memory_mb": memory_mb}
    with tempfile.TemporaryDirectory(prefix="int8-memory-") as work, _cwd(work):
        return run_json(COLLECT_AB, json.dumps(spec), timeout=3600)


def git_commit(code: Path) -> str:
    """The tree's commit, ``+changes`` when its tracked files differ from it."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(code), *args], capture_output=True, text=True, check=True).stdout

    try:
        return git("rev-parse", "--short", "HEAD").strip() + (
            "+changes" if git("status", "--porcelain", "-uno") else ""
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def model_classes(calib: Path) -> Path:
    """Name the generated set's categories ``class_0``... as the r18vd-shaped model's classes are,
    so that the range choice and the accuracy report run (on a random model, with AP ~0)."""
    from rtdetr_edge import atomic

    data = json.loads(calib.read_text())
    if any(not str(c["name"]).startswith("class_") for c in data["categories"]):
        for i, c in enumerate(data["categories"]):
            c["name"] = f"class_{i}"
        atomic.write_json(calib, data)
    return calib


def run_build(code: Path, bundle: Path, calib: Path, calib_size: int, check_images: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="int8-memory-") as work:
        spec = {
            "bundle": str(bundle),
            "out": str(Path(work) / "int8"),
            "calib": str(calib),
            "calib_size": calib_size,
            "check_images": check_images,
        }
        env = {"PYTHONPATH": os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        with _cwd(work):
            result = run_json(CHILD, json.dumps(spec), env=env, timeout=3600)
    result["commit"] = git_commit(code)
    seconds = result["calibration"].get("seconds", {})
    images = result["calibration"].get("images", 0)
    if seconds.get("collect"):
        result["collect_images_per_s"] = round(images / seconds["collect"], 3)
    return result


def print_tables(runs: dict[str, Any]) -> None:
    labels = list(runs)
    order: list[str] = []
    for run in runs.values():
        order += [s["stage"] for s in run["stages"] if s["stage"] not in order]
    by = {label: {s["stage"]: s for s in run["stages"]} for label, run in runs.items()}
    headers = ["stage"] + [f"{label} {what}" for label in labels for what in ("peak MB", "s")]
    rows = []
    for stage in order:
        row: list[Any] = [stage]
        for label in labels:
            s = by[label].get(stage)
            row += [s["peak_mb"], s["wall_s"]] if s else ["-", "-"]
        rows.append(row)
    totals: list[Any] = ["whole build"]
    for label in labels:
        totals += [runs[label]["peak_mb"], runs[label]["total_s"]]
    rows.append(totals)
    print(table(headers, rows))
    print()
    for label, run in runs.items():
        sec = run["calibration"].get("seconds", {})
        print(
            f"{label}: code {run['code']} ({run['commit']}), {run['images']} images, calibrate "
            f"{run['calibration'].get('images')}, check {run['check_images']}; collection "
            f"{run.get('collect_images_per_s', float('nan')):.2f} images/s (collect {sec.get('collect')} s: "
            f"inference {sec.get('inference')} s, histograms {sec.get('histograms')} s)"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--label", default=None, help="name of this run in the JSON (default: after, or quick)")
    ap.add_argument("--code", type=Path, default=Path(__file__).resolve().parent.parent, help="tree to import")
    ap.add_argument("--images", type=int, default=500, help="generated COCO-format images (500)")
    ap.add_argument("--calib-size", type=int, default=256, help="images to calibrate on (256)")
    ap.add_argument("--check-images", type=int, default=100, help="the build's --check-images (100)")
    ap.add_argument("--quick", action="store_true", help="a small run: 160 images, calibrate 32, check 20")
    ap.add_argument("--table", action="store_true", help="only print the stored runs' table")
    ap.add_argument(
        "--collect-ab",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="instead: collection alone, one run per batch vs the default segments, alternating ROUNDS times "
        "on --calib-size images (this tree)",
    )
    args = ap.parse_args()
    path = RESULTS / RESULT
    stored = json.loads(path.read_text()) if path.is_file() else {}
    runs: dict[str, Any] = stored.get("runs", {})
    ab: dict[str, Any] | None = stored.get("collect_ab")
    if args.collect_ab:
        from rtdetr_edge.calib.collect import DEFAULT_MEMORY_MB

        _, bundle = r18_model_and_bundle()
        calib = model_classes(shapes_set(f"int8-memory-{args.images}", args.images, seed=7))
        ab = collect_ab(bundle, calib, args.calib_size, args.collect_ab, DEFAULT_MEMORY_MB)
    elif not args.table:
        if args.quick:
            args.images, args.calib_size, args.check_images = 160, 32, 20
        label = args.label or ("quick" if args.quick else "after")
        _, bundle = r18_model_and_bundle()
        calib = model_classes(shapes_set(f"int8-memory-{args.images}", args.images, seed=7))
        run = run_build(args.code.resolve(), bundle, calib, args.calib_size, args.check_images)
        run.update(images=args.images, check_images=args.check_images)
        runs[label] = run
    if not args.table:
        data = {"model": "r18vd-shaped, random weights, 640x640", "runs": runs, "collect_ab": ab}
        print(f"wrote {write_json(RESULT, data)}")
    if runs:
        print("r18vd-shaped model (random weights), 640x640, --precision int8 added to its fp32 bundle")
        print_tables(runs)
    if ab:
        print(f"\ncollection alone, {ab['images']} images in batches of 8, alternating in one process (this tree):")
        rows = [
            [
                r["round"],
                r["memory_mb"] or "0 (one run per batch)",
                r["segments"],
                r["setup_s"],
                r["collect_s"],
                r["images_per_s"],
                r["peak_mb"],
            ]
            for r in ab["runs"]
        ]
        print(table(["round", "--calib-memory-mb", "segments", "setup s", "collect s", "images/s", "peak MB"], rows))
        print(f"entropy2 ranges equal: {ab['entropy2_ranges_equal']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
