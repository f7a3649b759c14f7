"""--json and --save-outputs of rtdetr-bench/-eval/-check: checked before the work, OS errors one line."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Cli
from tests.runtime.test_full_disk_outputs import mount_small_disk

BENCH = ("--iterations", "1", "--warmup", "0", "--image-size", "64x64")


def test_json_that_is_a_folder_or_under_a_file_is_refused_before_the_work(
    cli: Cli, tiny_bundle: Path, tmp_path: Path
) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    folder, under_file = str(tmp_path / "folder"), str(tmp_path / "file" / "r.json")
    cases = [
        ("rtdetr-bench", str(tiny_bundle), *BENCH, "--json", folder),
        ("rtdetr-eval", str(tiny_bundle), "--data", "missing.json", "--json", folder),
        ("rtdetr-check", str(tiny_bundle), "--data", "missing.json", "--json", under_file),
        ("rtdetr-bench", str(tiny_bundle), *BENCH, "--json", under_file),
    ]
    for argv in cases:
        line = cli(*argv).one_line_error()
        assert line.startswith(f"error: --json {argv[-1]}: "), line
        assert "is a folder" in line or "is not a directory" in line, line
    run = cli("rtdetr-check", str(tiny_bundle), "--data", "missing.json", "--save-outputs", str(tmp_path / "file"))
    assert "--save-outputs" in run.one_line_error() and "not a directory" in run.one_line_error()


@pytest.fixture()
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "ro"
    folder.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "disk"
    mount_small_disk(folder, "64k")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_read_only_json_folder_is_one_line_before_the_work(cli: Cli, tiny_bundle: Path, read_only_disk: Path) -> None:
    line = cli("rtdetr-bench", str(tiny_bundle), *BENCH, "--json", str(read_only_disk / "b.json")).one_line_error()
    assert "Read-only file system" in line and "b.json" in line


def test_full_disk_json_is_one_line_naming_the_file(cli: Cli, tiny_bundle: Path, small_disk: Path) -> None:
    (small_disk / "fill").write_bytes(b"\0" * (64 * 1024))
    target = small_disk / "b.json"
    line = cli("rtdetr-bench", str(tiny_bundle), *BENCH, "--json", str(target)).one_line_error()
    assert line == f"error: --json {target}: cannot write (No space left on device)"
    assert sorted(p.name for p in small_disk.iterdir()) == ["fill"]
