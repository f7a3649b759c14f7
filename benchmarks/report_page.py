#!/usr/bin/env python3
"""What the HTML report page (``BUNDLE/report.html``) adds to a build's time.

The README's first build (the shipped reference model, ``--precision int8``, calibrated on the
500 generated seed-7 images) runs twice in this process: with the page (as shipped) and, as the
baseline in the same run, with the page step replaced by a no-op. Target: the page adds < 10 % of
the build's time. The build also records the page's own time in ``report.json``
(``report_page_s``), printed next to its total.

    python benchmarks/report_page.py [--rounds 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from unittest import mock

from rtdetr_edge import build
from rtdetr_edge.build import BuildOptions, build_bundle
from rtdetr_edge.calib import CalibrationOptions

from _common import CACHE, REFERENCE_MODEL, shapes_set, table, write_json

TARGET = 0.10


def one_build(out: Path, calib: Path, page: bool) -> dict[str, float]:
    no_page = mock.patch.object(build, "_write_report_page", lambda *args: None)
    with no_page if not page else contextlib.nullcontext():
        t0 = time.perf_counter()
        build_bundle(
            REFERENCE_MODEL,
            out,
            BuildOptions(precision="int8", force=True, calibration=CalibrationOptions(calib=str(calib))),
        )
        wall = time.perf_counter() - t0
    report = json.loads((out / "report.json").read_text())
    return {"wall_s": round(wall, 2), "total_s": report["total_s"], "report_page_s": report.get("report_page_s", 0.0)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=1, help="builds of each kind, alternating (default 1)")
    args = p.parse_args()
    calib = shapes_set("calib-seed7-500", 500, 7)
    runs: dict[str, list[dict[str, float]]] = {"without page": [], "with page": []}
    for _ in range(args.rounds):
        runs["without page"].append(one_build(CACHE / "report-page-off", calib, page=False))
        runs["with page"].append(one_build(CACHE / "report-page-on", calib, page=True))
    mean = {k: sum(r["wall_s"] for r in v) / len(v) for k, v in runs.items()}
    page_s = sum(r["report_page_s"] for r in runs["with page"]) / args.rounds
    share = page_s / mean["with page"]
    rows = [[k, mean[k], sum(r["report_page_s"] for r in v) / len(v)] for k, v in runs.items()]
    print(table(["build", "wall s", "report page s"], rows))
    print(
        f"page: {page_s:.2f} s = {100 * share:.1f}% of the build with it (target < {100 * TARGET:g}%); "
        f"wall difference {mean['with page'] - mean['without page']:+.1f} s (noise of a shared CPU included)"
    )
    path = write_json(
        "report_page.json",
        {"runs": runs, "page_share": round(share, 4), "target": TARGET, "passed": share < TARGET},
    )
    print(f"wrote {path}")
    return 0 if share < TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
