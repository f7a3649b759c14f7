#!/usr/bin/env python3
"""Does the build's INT8 verdict hold across calibration seeds, and does it refuse broken INT8? (issue 27)

Builds INT8 of the reference model (``models/rtdetr-shapes``) the README's way, each calibrated on
a generated set of another seed (7, 11, 23, 57, 101, 27182; 500 images: 256 calibrate, 100 choose
the ranges, 100 report), and judges each with exactly what ``rtdetr-build`` runs at its end
(:func:`rtdetr_edge.check.check_bundle_dir` on the held-out images, then
:func:`rtdetr_edge.build.default_precision`). Then three broken copies of the INT8 Q/DQ graph of
two of those builds go through the same verdict (the copy replaces the bundle's INT8 file):

* ``act x0.05``: every activation scale x0.05 (every activation clipped);
* ``one layer x20``: the first backbone layer's activation scale x20 (that tensor on a few levels);
* ``class head noise``: the last decoder class head's weights + noise of 0.5x their std.

Also the issue's case of few report images: the same seeds' 300-image sets (44 held-out images).
Result required: INT8 kept for every good build, refused (fp16 default) for every broken one.
Builds and data are cached under ``build/bench-cache``.

    python benchmarks/int8_verdict.py [--seeds 7 11 23 57 101 27182] [--broken-seeds 7 57]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rtdetr_edge.build import BuildOptions, add_precisions, build_bundle, default_precision
from rtdetr_edge.bundle import Bundle
from rtdetr_edge.calib import CalibrationOptions
from rtdetr_edge.check import check_bundle_dir

from _common import CACHE, REFERENCE_MODEL, shapes_set, table, write_json

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.check.perturb import perturbed_class_head_copy, scaled_activation_qdq_copy

SEEDS = (7, 11, 23, 57, 101, 27182)
FIRST_LAYER = "embedder.0/activation/Relu_output_0"
BROKEN = {
    "act x0.05": lambda src, out: scaled_activation_qdq_copy(src, out, 0.05),
    "one layer x20": lambda src, out: scaled_activation_qdq_copy(src, out, 20.0, FIRST_LAYER),
    "class head noise": lambda src, out: perturbed_class_head_copy(src, out, 0.5),
}


def int8_bundle(num_images: int, seed: int) -> Path:
    """The reference model built with --precision int8 on a generated set of ``seed`` (made once)."""
    fp32 = CACHE / "shapes-fp32"
    if not (fp32 / "metadata.json").is_file():
        build_bundle(REFERENCE_MODEL, fp32, BuildOptions(force=True))
    out = CACHE / f"verdict-int8-n{num_images}-s{seed}"
    if not (out / "metadata.json").is_file():
        ann = shapes_set(f"shapes-n{num_images}-s{seed}", num_images, seed)
        opts = BuildOptions(
            precision="int8", force=True, calibration=CalibrationOptions(calib=str(ann), cache_dir=None)
        )
        add_precisions(fp32, out, opts)
    return out


def verdict(bundle: Path) -> dict[str, Any]:
    """What the build decides for the INT8 of ``bundle``: its check (held-out images) and default precision."""
    files = Bundle(bundle)
    metadata = files.metadata
    opts = BuildOptions(precision="int8", calibration=CalibrationOptions(calib="unused"))
    t = time.perf_counter()
    check = check_bundle_dir(bundle, metadata, ["int8"], num_images=opts.check_images)
    chosen, why = default_precision(opts, metadata["artifacts"], check, None, None)
    c = check.get("int8") or {}
    interval = (c.get("detections") or {}).get("intervals", {}).get("AP vs fp32 (ground truth)") or {}
    return {
        "images": check.get("images"),
        "kept_int8": chosen == "int8",
        "reason": why,
        "ap_ratio": interval.get("value"),
        "ap_ratio_ci": [interval.get("low"), interval.get("high")],
        "criteria": c.get("criteria", []),
        "fp32_noise": (check.get("data") or {}).get("fp32_noise"),
        "seconds": round(time.perf_counter() - t, 1),
    }


def broken_verdict(bundle: Path, kind: str) -> dict[str, Any]:
    """The build's verdict on a copy of ``bundle`` whose INT8 Q/DQ graph is broken by ``kind``."""
    with tempfile.TemporaryDirectory(prefix="int8-verdict-") as tmp:
        copy = Path(tmp) / bundle.name
        shutil.copytree(bundle, copy, ignore=shutil.ignore_patterns("engines"))
        int8 = copy / Bundle(bundle).artifacts["int8"]["file"]
        broken = Path(tmp) / "broken.onnx"
        BROKEN[kind](int8, broken)
        shutil.move(broken, int8)
        return verdict(copy)


def failing(row: dict[str, Any]) -> str:
    bad = [c["name"] for c in row["criteria"] if not c["passed"]]
    return ", ".join(bad) if bad else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--few-seeds", type=int, nargs="*", default=[7, 57, 27182], help="seeds of the 300-image case")
    parser.add_argument("--broken-seeds", type=int, nargs="*", default=[7, 57])
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for n, seeds in ((500, args.seeds), (300, args.few_seeds)):
        for seed in seeds:
            row = {"case": "good", "images_generated": n, "seed": seed} | verdict(int8_bundle(n, seed))
            rows.append(row)
            print(f"{n} seed {seed}: {'int8' if row['kept_int8'] else 'fp16'} ({row['seconds']} s)", flush=True)
    for seed in args.broken_seeds:
        for kind in BROKEN:
            row = {"case": kind, "images_generated": 500, "seed": seed} | broken_verdict(int8_bundle(500, seed), kind)
            rows.append(row)
            print(f"{kind} seed {seed}: {'int8' if row['kept_int8'] else 'fp16'} ({row['seconds']} s)", flush=True)

    def crit(row: dict[str, Any], name: str) -> str:
        c = next((c for c in row["criteria"] if c["name"] == name), None)
        if c is None:
            return "n/a"
        judged = c["value"] if c.get("judged") is None else c["judged"]  # an interval's bound, where there is one
        return "n/a" if judged is None else f"{judged:.3g}/{c['limit']:.3g}"

    headers = ["case", "set", "seed", "imgs", "AP ratio [95% CI]", "probs p95/lim", "boxes p95/lim", "flips lo/lim"]
    headers += ["default", "failed criteria"]
    lines = []
    for r in rows:
        ci = r["ap_ratio_ci"]
        ratio = "n/a" if r["ap_ratio"] is None else f"{r['ap_ratio']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
        lines.append(
            [
                r["case"],
                r["images_generated"],
                r["seed"],
                r["images"],
                ratio,
                crit(r, "post/probs"),
                crit(r, "pred_boxes"),
                crit(r, "label flip rate"),
                "int8" if r["kept_int8"] else "fp16",
                failing(r),
            ]
        )
    print(table(headers, lines))
    good = [r for r in rows if r["case"] == "good" and r["images_generated"] == 500]
    broken = [r for r in rows if r["case"] != "good"]
    ok = all(r["kept_int8"] for r in good) and not any(r["kept_int8"] for r in broken)
    summary = {
        "good_kept": f"{sum(r['kept_int8'] for r in good)}/{len(good)}",
        "broken_refused": f"{sum(not r['kept_int8'] for r in broken)}/{len(broken)}",
        "few_images_kept": f"{sum(r['kept_int8'] for r in rows if r['images_generated'] == 300)}/"
        f"{sum(1 for r in rows if r['images_generated'] == 300)}",
        "result_required_met": ok,
    }
    print(summary)
    path = write_json("int8_verdict.json", {"summary": summary, "rows": rows})
    print(f"wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
