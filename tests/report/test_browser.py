"""The report in a real browser (headless Chromium): it renders, it loads nothing from the network,
and a broken INT8 copy's page says FAIL first, naming the failed criteria."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers import Cli
from tests.report.browser import PageFacts, dump_dom, page_requests, screenshot


def not_blank(png: Path) -> tuple[float, int]:
    """(pixel standard deviation, distinct colours) of a screenshot."""
    image = cv2.imread(str(png))
    assert image is not None, png
    colours = np.unique(image.reshape(-1, 3)[::7], axis=0)
    return float(image.std()), len(colours)


def test_the_quick_start_like_report_renders_and_loads_nothing(best_bundle: Path, tmp_path: Path) -> None:
    page = best_bundle / "report.html"  # written by the fp32 + fp16 + int8 build
    std, colours = not_blank(screenshot(page, tmp_path / "shot.png"))
    assert std > 20 and colours > 200, (std, colours)
    assert page_requests(page, tmp_path / "net.json") == []


def test_a_blank_page_and_a_network_load_are_caught(best_bundle: Path, tmp_path: Path) -> None:
    """The two checks above can fail: an empty page is blank; a planted image URL is a request,
    unless the page's Content-Security-Policy blocks it (which is why the page has one)."""
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><head><title>x</title></head><body></body></html>")
    std, colours = not_blank(screenshot(blank, tmp_path / "blank.png"))
    assert std < 1 and colours < 3
    html = (best_bundle / "report.html").read_text()
    planted = '<img alt="x" src="http://127.0.0.1:9/planted.png">'
    without_csp = tmp_path / "no_csp.html"
    without_csp.write_text(
        re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html).replace("<body>", "<body>" + planted)
    )
    assert page_requests(without_csp, tmp_path / "net1.json") == ["http://127.0.0.1:9/planted.png"]
    with_csp = tmp_path / "csp.html"
    with_csp.write_text(html.replace("<body>", "<body>" + planted))
    assert page_requests(with_csp, tmp_path / "net2.json") == []


def test_the_broken_int8_page_says_fail_first_and_names_the_criteria(
    best_bundle: Path, broken_int8: Path, tmp_path: Path, cli: Cli
) -> None:
    report, as_json = tmp_path / "check.html", tmp_path / "check.json"
    r = cli(
        "rtdetr-check",
        str(best_bundle),
        "--candidate",
        str(broken_int8),
        "--data",
        "synthetic",
        "--num-images",
        "6",
        "--report",
        str(report),
        "--json",
        str(as_json),
    )
    assert r.code == 1 and f"report: {report}" in r.out, r.err
    failures = json.loads(as_json.read_text())["checks"][0]["failures"]
    assert failures
    dom = dump_dom(report)
    text = "\n".join(PageFacts(dom).text)
    verdict = text[text.index("Verdict") :]
    badges = [w for w in verdict.split("\n") if w in ("PASS", "FAIL")]
    assert badges[:2] == ["FAIL", "FAIL"], badges  # the page's verdict, then the candidate's
    box = verdict[: verdict.index("every criterion")]
    for words in failures:
        assert words in box, words


@pytest.fixture(scope="module")
def quick_start_bundle(reference_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's first build: the shipped model, INT8 calibrated on the 500 generated seed-7 images."""
    from rtdetr_edge.build import BuildOptions, add_precisions
    from rtdetr_edge.calib import CalibrationOptions
    from rtdetr_edge.data import synth

    calib = synth.generate(tmp_path_factory.mktemp("qs_calib"), 500, seed=7)
    return add_precisions(
        reference_bundle,
        tmp_path_factory.mktemp("qs") / "shapes",
        BuildOptions(precision="int8", calibration=CalibrationOptions(calib=str(calib), cache_dir=None)),
    )


@pytest.mark.slow
def test_the_quick_start_report_renders_passes_and_loads_nothing(quick_start_bundle: Path, tmp_path: Path) -> None:
    page = quick_start_bundle / "report.html"
    std, colours = not_blank(screenshot(page, tmp_path / "shot.png"))
    assert std > 20 and colours > 200, (std, colours)
    assert page_requests(page, tmp_path / "net.json") == []
    text = "\n".join(PageFacts(dump_dom(page)).text)
    head = text[text.index("Verdict") : text.index("every criterion")].split("\n")
    assert head[1] == "PASS" and "FAIL" not in head, head  # int8 passed its check, as the README says
