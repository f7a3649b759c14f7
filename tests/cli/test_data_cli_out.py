"""rtdetr-data synth never writes over an existing folder without --force, nor over a non-dataset."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import Cli


def test_synth_refuses_an_existing_dataset_without_force(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    assert cli("rtdetr-data", "synth", "--out", str(out), "--num-images", "2", "-q").code == 0
    before = (out / "annotations.json").read_bytes()
    run = cli("rtdetr-data", "synth", "--out", str(out), "--num-images", "3", "--seed", "5", "-q")
    assert "already exists and is not empty; pass --force" in run.one_line_error()
    assert (out / "annotations.json").read_bytes() == before
    run = cli("rtdetr-data", "synth", "--out", str(out), "--num-images", "3", "--seed", "5", "-q", "--force")
    assert run.code == 0, run.err
    assert (out / "annotations.json").read_bytes() != before


def test_synth_force_does_not_write_into_a_folder_that_is_not_a_dataset(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    run = cli("rtdetr-data", "synth", "--out", str(tmp_path), "--num-images", "2", "-q", "--force")
    assert "is not a dataset" in run.one_line_error()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_synth_out_under_a_regular_file_is_one_line(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    run = cli("rtdetr-data", "synth", "--out", str(tmp_path / "f" / "ds"), "--num-images", "2", "-q")
    assert "is not a directory" in run.one_line_error()
