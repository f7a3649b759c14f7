"""``rtdetr-check --report`` / ``--json`` never write into the bundle, nor both to one file; a damaged
``report.json`` is one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import Cli


@pytest.mark.parametrize("flag", ["--report", "--json"])
@pytest.mark.parametrize("target", ["metadata.json", "report.json", "new.html"])
def test_results_never_go_into_the_bundle(cli: Cli, best_bundle: Path, tmp_path: Path, flag: str, target: str) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(best_bundle, bundle)
    before = {p.name: p.read_bytes() for p in bundle.iterdir() if p.is_file()}
    line = cli("rtdetr-check", str(bundle), flag, str(bundle / target)).one_line_error()
    assert f"{flag} {bundle / target}: is inside the input {bundle}" in line
    assert {p.name: p.read_bytes() for p in bundle.iterdir() if p.is_file()} == before


def test_report_and_json_must_be_two_files(cli: Cli, best_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "same.out"
    line = cli("rtdetr-check", str(best_bundle), "--json", str(out), "--report", str(out)).one_line_error()
    assert "the same file as --json" in line and not out.exists()


def test_a_damaged_build_report_is_one_line(cli: Cli, best_bundle: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(best_bundle, bundle)
    (bundle / "report.json").write_text("{not json")
    run = cli(
        "rtdetr-check", str(bundle), "--candidate", "fp16", "--data", "synthetic", "--num-images", "2",
        "--report", str(tmp_path / "r.html"),
    )  # fmt: skip
    assert f"{bundle / 'report.json'}: unreadable build report" in run.one_line_error()
    assert not (tmp_path / "r.html").exists()
