"""One --out policy for bundles: never an input, --force replaces only bundles, no silent races."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rtdetr_edge import atomic
from rtdetr_edge.build import check_out
from rtdetr_edge.errors import InputError
from tests.helpers import Cli


@pytest.fixture()
def model_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    m = tmp_path / "work" / "m"
    shutil.copytree(tiny_model_dir, m)
    return m


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _fake_bundle(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text(json.dumps({"format": "rtdetr-edge-bundle", "format_version": 1}))
    return folder


def test_force_never_deletes_the_model_being_built(cli: Cli, model_copy: Path) -> None:
    before = _tree(model_copy)
    for out, what in [
        (model_copy, "is the input"),
        (model_copy.parent, "contains the input"),
        (model_copy / "sub", "is inside the input"),
    ]:
        run = cli("rtdetr-build", "--model", str(model_copy), "--out", str(out), "--force")
        assert what in run.one_line_error(), out
    assert _tree(model_copy) == before


def test_out_dot_containing_the_model_is_refused(cli: Cli, model_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(model_copy.parent)
    run = cli("rtdetr-build", "--model", "m", "--out", ".", "--force")
    assert "--out .: contains the input m" in run.one_line_error()
    assert (model_copy / "config.json").is_file()


def test_out_holding_the_calibration_source_is_refused(cli: Cli, model_copy: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "annotations.json").write_text("{}")
    run = cli(
        "rtdetr-build", "--model", str(model_copy), "--precision", "int8", "--calib",
        str(data / "annotations.json"), "--out", str(data), "--force",
    )  # fmt: skip
    assert "contains the input" in run.one_line_error()
    assert (data / "annotations.json").read_text() == "{}"


def test_force_replaces_only_a_bundle_or_an_empty_folder(cli: Cli, model_copy: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    run = cli("rtdetr-build", "--model", str(model_copy), "--out", str(mine), "--force")
    assert "is not an rtdetr-edge bundle" in run.one_line_error()
    assert (mine / "thesis.tex").read_text() == "years of work"
    with pytest.raises(InputError, match="is not an rtdetr-edge bundle"), atomic.replacing_dir(mine, overwrite=True):
        pass
    assert _tree(mine) == ["thesis.tex"]
    assert check_out(_fake_bundle(tmp_path / "old_bundle"), force=True) == tmp_path / "old_bundle"
    (tmp_path / "empty").mkdir()
    assert check_out(tmp_path / "empty", force=False) == tmp_path / "empty"


def test_out_that_appeared_during_the_build_is_not_replaced(tmp_path: Path) -> None:
    target = tmp_path / "bundle"
    with pytest.raises(InputError, match="appeared while this ran"), atomic.replacing_dir(target) as tmp:
        (tmp / "model.onnx").write_text("ours")
        _fake_bundle(target)  # another rtdetr-build finished first
        (target / "model.onnx").write_text("theirs")
    assert (target / "model.onnx").read_text() == "theirs"
    assert _tree(tmp_path) == ["bundle", "bundle/metadata.json", "bundle/model.onnx"]


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_stale_partial_folders_of_dead_processes_are_removed_by_the_next_build(tmp_path: Path) -> None:
    stale = tmp_path / f".bundle.{_dead_pid()}.abc123.partial"
    (stale / "calib").mkdir(parents=True)
    live = tmp_path / f".bundle.{os.getppid()}.def456.partial"  # a running process: left alone
    live.mkdir()
    other = tmp_path / ".other.1.x.partial"
    other.mkdir()
    with atomic.replacing_dir(tmp_path / "bundle") as tmp:
        (tmp / "metadata.json").write_text("{}")
    assert not stale.exists()
    assert live.is_dir() and other.is_dir()
    assert (tmp_path / "bundle" / "metadata.json").is_file()


def test_a_full_disk_during_a_build_is_one_line_and_leaves_nothing(
    cli: Cli, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from tests.runtime.test_full_disk_outputs import mount_small_disk

    disk = tmp_path / "disk"
    mount_small_disk(disk, "64k")
    try:
        run = cli("rtdetr-build", "--model", str(tiny_model_dir), "--out", str(disk / "b"), "--no-verify")
        line = run.one_line_error()
        assert "No space left on device" in line, line
        assert sorted(p.name for p in disk.iterdir()) == []
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
