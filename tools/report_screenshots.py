"""Regenerate the README's example screenshots of the HTML report (``docs/images/report-*.jpg``).

    python tools/report_screenshots.py [--work build/report-shots] [--out docs/images]

Host only. It builds the README's quick-start bundle (the shipped reference model, INT8 calibrated
on 500 generated seed-7 images: 256 calibrate, 100 choose the ranges, 100 report), unless ``--work``
already holds it, then:

* ``report-good.jpg``: that build's own ``report.html``;
* ``report-broken.jpg``: ``rtdetr-check BUNDLE --candidate int8 --candidate BROKEN --report``, where
  BROKEN is the INT8 Q/DQ graph with every activation scale x0.05
  (``tests/check/perturb.py``, the copy the tests refuse): the page opens with FAIL and its failed
  criteria.

Each page is rendered by headless Chromium (Debian's ``chromium``) and saved as a JPEG of its
first ``--height`` pixels.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.check.perturb


def screenshot(page: Path, out: Path, width: int, height: int) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise SystemExit("needs headless chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "page.png"
        subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--window-size={width},{height}", f"--screenshot={png}", page.resolve().as_uri()],
            check=True, capture_output=True, timeout=180,
        )  # fmt: skip
        image = cv2.imread(str(png))
        if image is None:
            raise SystemExit(f"chromium wrote no screenshot of {page}")
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), image, [cv2.IMWRITE_JPEG_QUALITY, 70])
    print(f"{out}: {out.stat().st_size // 1024} KB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default=str(REPO / "build" / "report-shots"))
    p.add_argument("--out", default=str(REPO / "docs" / "images"))
    p.add_argument("--width", type=int, default=1000)
    p.add_argument("--height", type=int, default=2400)
    args = p.parse_args()
    work, out = Path(args.work), Path(args.out)
    calib, bundle = work / "calib", work / "shapes"
    if not (calib / "annotations.json").is_file():
        run("rtdetr-data", "synth", "--out", str(calib), "--num-images", "500", "--seed", "7", "--force", "-q")
    if not (bundle / "report.html").is_file():
        run(
            "rtdetr-build", "--model", str(REPO / "models" / "rtdetr-shapes"), "--precision", "int8",
            "--calib", str(calib / "annotations.json"), "--out", str(bundle), "--force",
        )  # fmt: skip
    from tests.check.perturb import scaled_activation_qdq_copy

    broken = work / "int8-activations-x0.05.onnx"
    scaled_activation_qdq_copy(bundle / "model.int8.qdq.onnx", broken, 0.05)
    page = work / "broken-report.html"
    # exit code 1: the check failed, as it must
    run(
        "rtdetr-check", str(bundle), "--candidate", "int8", "--candidate", str(broken), "--report", str(page), ok=(0, 1)
    )
    screenshot(bundle / "report.html", out / "report-good.jpg", args.width, args.height)
    screenshot(page, out / "report-broken.jpg", args.width, args.height)


def run(*cmd: str, ok: tuple[int, ...] = (0,)) -> None:
    print("+", " ".join(cmd), flush=True)
    code = subprocess.run(cmd, check=False).returncode
    if code not in ok:
        raise SystemExit(f"{cmd[0]} exited with {code}")


if __name__ == "__main__":
    main()
