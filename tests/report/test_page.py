"""The report page's content, from its HTML: verdict first, every failed criterion in words,
nothing loaded from anywhere (data: URIs, a CSP), escaped, well nested; the build writes it."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest

from rtdetr_edge.build import REPORT_PAGE, BuildOptions, add_precisions
from rtdetr_edge.check import CheckOptions, run_checks
from rtdetr_edge.check.criteria import Criterion
from rtdetr_edge.report import CSP, build_page, inputs_from_bundle, render
from rtdetr_edge.report.page import criterion_row
from tests.report.browser import PageFacts, external_urls


@pytest.fixture(scope="module")
def broken_page(best_bundle: Path, broken_int8: Path) -> tuple[str, list]:
    reports = run_checks(best_bundle, ["fp16", str(broken_int8)], CheckOptions(data="synthetic", num_images=6))
    return render(build_page(inputs_from_bundle(best_bundle, reports))), reports


def test_the_verdict_comes_first_and_names_every_failed_criterion(broken_page: tuple[str, list]) -> None:
    html, reports = broken_page
    facts = PageFacts(html)
    assert not facts.errors, facts.errors
    text = "\n".join(facts.text)
    broken = reports[1]
    assert reports[0].passed and not broken.passed and broken.failures
    verdict = text.index("Verdict")
    assert text[verdict:].split("\n")[1] == "FAIL"  # the overall badge, right after the heading
    # each candidate's badge and name, in order, before anything else of the page
    first_rows = text.index("every criterion")
    head = text[verdict:first_rows]
    assert (
        head.index("PASS")
        < head.index("fp16")
        < head.index("FAIL", head.index("fp16"))
        < head.index(broken.candidate.label)
    )
    for words in broken.failures:
        assert words in head, words  # said in the verdict box, in the check's own words
    for c in broken.criteria():
        assert c.words in text
    assert text.index("Verdict") < text.index("Accuracy per precision") < text.index("Precision plan")


def test_the_page_loads_nothing_from_anywhere(broken_page: tuple[str, list]) -> None:
    html, _ = broken_page
    facts = PageFacts(html)
    assert facts.csp == [CSP] and "default-src 'none'" in CSP
    assert external_urls(html) == []
    assert facts.urls and all(u.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for u in facts.urls)
    assert not {"script", "link", "iframe", "object", "embed", "base"} & set(facts.tags)
    assert "@import" not in html and "url(" not in html
    assert facts.tags.index("meta") < facts.tags.index("title")  # the CSP applies before anything else


def test_a_planted_url_is_found() -> None:
    """The URL check of the test above can fail."""
    assert external_urls('<p><img src="http://example.com/x.png"><a href="//cdn/x">x</a><img src="data:,"></p>') == [
        "http://example.com/x.png",
        "//cdn/x",
    ]
    assert PageFacts("<div><p>x</div>").errors


def test_the_disagreement_images_are_the_worst_and_drawn_side_by_side(broken_page: tuple[str, list]) -> None:
    html, reports = broken_page
    text = "\n".join(PageFacts(html).text)
    broken = reports[1]
    assert f"{broken.candidate.label}: " in text and "images with a missed, extra or flipped detection" in text
    assert html.count("data:image/jpeg;base64,") >= 2 and html.count('class="pairs"') >= 1
    for words in ("missed: the reference has it", "extra: the candidate has it", "label flip"):
        assert words in text  # the legend


def test_every_criterion_field_is_shown_and_escaped() -> None:
    """A Criterion with a field added later (e.g. a bootstrap interval) is shown by name; text is escaped."""

    @dataclasses.dataclass(frozen=True)
    class Later(Criterion):
        ci_low: float | None = None
        quantile: str | None = None

    row = criterion_row(Later("detections", "AP", 0.5, 0.97, ">=", False, "AP 0.5 < 0.97 <b>", ci_low=0.41))
    assert row.more == (("ci_low", "0.41"),) and row.limit == ">= 0.97" and not row.passed
    from rtdetr_edge.report.page import Page

    page = Page(
        title="<script>alert(1)</script>",
        created="now",
        verdict="FAIL",
        candidates=(),
        check_skipped="<img src=x>",
        default_precision="fp16",
        accuracy_uri=None,
        accuracy_rows=(),
        accuracy_note="",
        class_uri=None,
        class_note="",
        truth_class_uri=None,
        truth_class_note="",
        plan=None,
        sensitivity=(),
        sensitivity_note="",
        image_sets=(),
        versions=(),
    )
    html = render(page)
    assert "<script>" not in html and "&lt;script&gt;" in html and "<img src=x>" not in html


def test_the_build_writes_the_page_and_times_it(best_bundle: Path) -> None:
    page = best_bundle / REPORT_PAGE
    html = page.read_text()
    facts = PageFacts(html)
    assert not facts.errors and facts.csp == [CSP] and external_urls(html) == []
    assert (
        f"<title>rtdetr-edge report: {best_bundle.name}</title>" in html
    )  # the bundle's folder, not the build's temp one
    report = json.loads((best_bundle / "report.json").read_text())
    assert report["report_page_s"] > 0
    for words in report["check"]["int8"]["failures"]:
        assert words in "\n".join(facts.text)
    assert "Layers kept out of INT8" in html and "What was measured on which images" in html


def test_add_precisions_writes_the_page_and_without_matplotlib_warns_once(
    tiny_bundle: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = add_precisions(tiny_bundle, tmp_path / "fp16", BuildOptions(precision="fp16"))
    assert (out / REPORT_PAGE).is_file()
    assert "<title>rtdetr-edge report: fp16</title>" in (out / REPORT_PAGE).read_text()
    assert PageFacts((out / REPORT_PAGE).read_text()).csp == [CSP]

    import rtdetr_edge._optional as optional

    real = optional.available
    monkeypatch.setattr(optional, "available", lambda m: m != "matplotlib" and real(m))
    with caplog.at_level(logging.WARNING, logger="rtdetr_edge"):
        out = add_precisions(tiny_bundle, tmp_path / "nomatplotlib", BuildOptions(precision="fp16"))
    assert not (out / REPORT_PAGE).exists()
    warned = [r.getMessage() for r in caplog.records if REPORT_PAGE in r.getMessage()]
    assert warned == ['report.html not written: matplotlib missing (pip install "rtdetr-edge[check]")']


def test_per_class_ground_truth_chart_shows_the_classes_where_a_candidate_differs_most() -> None:
    from rtdetr_edge.report.page import SHOWN_CLASSES, class_accuracy

    names = [f"c{i}" for i in range(12)]
    fp32 = dict.fromkeys(names, 0.5)
    int8 = {n: 0.5 - (0.02 * i if i % 3 == 0 else 0.0) for i, n in enumerate(names)}  # c9, c6, c3 differ most
    build = {"accuracy": {"fp32": {"AP": 0.5, "per_class": fp32}, "int8": {"AP": 0.49, "per_class": int8}}}
    shown = class_accuracy(build)
    assert list(shown["int8"])[:3] == ["c9", "c6", "c3"] and len(shown["fp32"]) == SHOWN_CLASSES
    assert class_accuracy({"accuracy": {"fp32": {"AP": 0.5, "per_class": fp32}}}) == {}  # nothing to compare
