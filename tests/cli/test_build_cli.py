"""rtdetr-build from the command line: success, and one-line errors that leave nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_cli


def _one_line_error(proc) -> str:  # type: ignore[no-untyped-def]
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_build_cli_succeeds_and_shows_progress(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    proc = run_cli("rtdetr-build", "--model", str(tiny_model_dir), "--precision", "fp32", "--out", str(out),
                   "--top-k", "20")
    assert proc.returncode == 0, proc.stderr
    assert "[1] load" in proc.stderr and "verification PASS" in proc.stderr
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["contract"]["top_k"] == 20
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary directories left behind"


def test_help_has_examples() -> None:
    proc = run_cli("rtdetr-build", "--help")
    assert proc.returncode == 0 and "examples:" in proc.stdout and "--precision" in proc.stdout


def test_unknown_hub_id_offline(tmp_path: Path) -> None:
    proc = run_cli("rtdetr-build", "--model", "no-such-org/no-such-model-xyz", "--out", str(tmp_path / "o"),
                   env={"HF_HUB_OFFLINE": "1"})
    assert "no-such-org/no-such-model-xyz" in _one_line_error(proc)
    assert not (tmp_path / "o").exists()


def test_folder_without_config(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = run_cli("rtdetr-build", "--model", str(tmp_path / "empty"), "--out", str(tmp_path / "o"))
    assert "no config.json" in _one_line_error(proc)
    assert not (tmp_path / "o").exists()


def test_config_that_is_not_rtdetr(tmp_path: Path) -> None:
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    proc = run_cli("rtdetr-build", "--model", str(folder), "--out", str(tmp_path / "o"))
    assert "'bert' is not RT-DETR" in _one_line_error(proc)


def test_pickled_weights_are_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    proc = run_cli("rtdetr-build", "--model", str(folder), "--out", str(tmp_path / "o"))
    assert "pickled weights are not loaded" in _one_line_error(proc)


def test_existing_out_needs_force(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    proc = run_cli("rtdetr-build", "--model", str(tiny_model_dir), "--out", str(out))
    assert "--force" in _one_line_error(proc)
    assert (out / "keep.txt").read_text() == "precious"


@pytest.mark.parametrize("kind", ["under_a_file", "read_only_fs"])
def test_unwritable_out(tiny_model_dir: Path, tmp_path: Path, kind: str) -> None:
    if kind == "under_a_file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "bundle"
    else:
        out = Path("/proc/rtdetr-edge-test/bundle")
    proc = run_cli("rtdetr-build", "--model", str(tiny_model_dir), "--out", str(out))
    assert "--out" in _one_line_error(proc)


def test_interrupted_build_leaves_nothing(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception (or Ctrl-C) during the build leaves no directory that looks complete."""
    from rtdetr_edge import bundle as bundle_mod
    from rtdetr_edge.build import build

    def boom(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(bundle_mod, "sha256_file", boom)
    with pytest.raises(KeyboardInterrupt):
        build(tiny_model_dir, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
