"""``rtdetr-check --report``: one-line errors before any work; our error naming the extra without matplotlib."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.helpers import Cli


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("folder", "is a folder; name a file"),
        ("under_a_file", "--report"),
    ],
)
def test_an_unusable_report_path_is_one_line(
    tiny_bundle: Path, tmp_path: Path, cli: Cli, where: str, expected: str
) -> None:
    (tmp_path / "a_file").write_text("x")
    path = tmp_path if where == "folder" else tmp_path / "a_file" / "report.html"
    line = cli("rtdetr-check", str(tiny_bundle), "--report", str(path)).one_line_error()
    assert expected in line and str(path) in line


def test_without_matplotlib_the_error_names_the_extra(
    tiny_bundle: Path, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    line = cli("rtdetr-check", str(tiny_bundle), "--report", str(tmp_path / "r.html")).one_line_error()
    assert "matplotlib" in line and "rtdetr-edge[check]" in line
    assert not (tmp_path / "r.html").exists()


def test_report_of_a_passing_check(tiny_bundle: Path, tmp_path: Path, cli: Cli) -> None:
    out = tmp_path / "ok.html"
    r = cli(
        "rtdetr-check",
        str(tiny_bundle),
        "--candidate",
        "fp32",
        "--data",
        "synthetic",
        "--num-images",
        "3",
        "--report",
        str(out),
    )
    assert r.code == 0, r.err
    html = out.read_text()
    assert ">PASS<" in html and "No image where the two differ." in html
