"""rtdetr-build from the command line, in-process: success, and one-line errors that leave nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import Cli


@pytest.mark.slow
def test_build_cli_succeeds_and_shows_progress(cli: Cli, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    run = cli("rtdetr-build", "--model", str(tiny_model_dir), "--precision", "fp32", "--out", str(out), "--top-k", "20")
    assert run.code == 0, run.err
    assert "[1] load" in run.err and "verification PASS" in run.err
    # the export and its verification show progress like the other long steps (issue 24, item 11)
    assert "exporting (torch.onnx): " in run.err and " elapsed" in run.err
    assert "verifying: 100%" in run.err and "7/7" in run.err  # PyTorch twice, ONNX Runtime 4 + 1
    # it ends with a short summary: each precision, the default and why, where things are
    lines = run.out.strip().splitlines()
    assert lines[0] == f"summary of {out}:" and lines[1].split() == ["fp32", "model.onnx"]
    assert lines[-2] == "default precision: fp32 (requested)"
    assert lines[-1].startswith(f"details: {out / 'report.json'}; next: rtdetr-detect IMAGES --model {out}")
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["contract"]["top_k"] == 20
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary directories left behind"


def test_help_shows_examples_and_flags(cli: Cli) -> None:
    run = cli("rtdetr-build", "--help")
    assert run.code == 0 and "examples:" in run.out and "--precision" in run.out


def test_unknown_hub_id_offline_is_a_one_line_error(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read once, at import
    run = cli("rtdetr-build", "--model", "no-such-org/no-such-model-xyz", "--out", str(tmp_path / "o"))
    assert "no-such-org/no-such-model-xyz" in run.one_line_error()
    assert not (tmp_path / "o").exists()


def test_folder_without_config_is_a_one_line_error(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    run = cli("rtdetr-build", "--model", str(tmp_path / "empty"), "--out", str(tmp_path / "o"))
    assert "no config.json" in run.one_line_error()
    assert not (tmp_path / "o").exists()


def test_config_that_is_not_rtdetr_is_a_one_line_error(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    run = cli("rtdetr-build", "--model", str(folder), "--out", str(tmp_path / "o"))
    assert "'bert' is not RT-DETR" in run.one_line_error()


def test_pickled_weights_are_refused(cli: Cli, tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    run = cli("rtdetr-build", "--model", str(folder), "--out", str(tmp_path / "o"))
    assert "pickled weights are not loaded" in run.one_line_error()


def test_existing_out_needs_force(cli: Cli, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    run = cli("rtdetr-build", "--model", str(tiny_model_dir), "--out", str(out))
    assert "--force" in run.one_line_error()
    assert (out / "keep.txt").read_text() == "precious"


@pytest.mark.parametrize("kind", ["under_a_file", "read_only_fs"])
def test_unwritable_out_is_a_one_line_error(cli: Cli, tiny_model_dir: Path, tmp_path: Path, kind: str) -> None:
    if kind == "under_a_file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "bundle"
    else:
        out = Path("/proc/rtdetr-edge-test/bundle")
    run = cli("rtdetr-build", "--model", str(tiny_model_dir), "--out", str(out))
    assert "--out" in run.one_line_error()
