"""The build checks on its held-out report images (up to --check-images, 100) and says how many."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("polygraphy")


def test_build_reports_how_many_images_its_check_used(best_bundle: Path) -> None:
    from rtdetr_edge.cli.build import bundle_summary

    check = json.loads((best_bundle / "report.json").read_text())["check"]
    assert check["images"] == 4 == check["data"]["images"]  # --check-images 4 of the 12 (8 calibrate)
    assert "fp32_noise" in check["data"]  # INT8's limits were measured against fp32's own noise
    lines = bundle_summary(best_bundle).splitlines()
    assert "  checked on 4 held-out images (fewer than 100: a wide interval; give --calib more images)" in lines
