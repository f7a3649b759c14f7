"""--out naming an existing file, and a source folder that cannot be read, are one-line errors."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers import Cli


def test_out_that_is_an_existing_file(
    cli: Cli, tiny_bundle: Path, tiny_model_dir: Path, tmp_path: Path, scene: np.ndarray
) -> None:
    cv2.imwrite(str(tmp_path / "x.jpg"), scene)
    (tmp_path / "out").write_text("a file")
    run = cli("rtdetr-detect", str(tmp_path / "x.jpg"), "--model", str(tiny_bundle), "--out", str(tmp_path / "out"))
    assert "exists and is not a folder" in run.one_line_error()
    run = cli("rtdetr-build", "--model", str(tiny_model_dir), "--out", str(tmp_path / "out"), "--force")
    assert "--out" in run.one_line_error()
    run = cli("rtdetr-data", "synth", "--out", str(tmp_path / "out"), "--num-images", "1", "--force")
    assert "--out" in run.one_line_error()
    assert (tmp_path / "out").read_text() == "a file"


def test_a_source_folder_without_read_permission(
    cli: Cli, tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tests run as root, for whom permission bits do not apply: the folder's listing fails as it would
    locked = tmp_path / "locked"
    locked.mkdir()
    real_iterdir = Path.iterdir

    def iterdir(self: Path) -> Iterator[Path]:
        if self == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    run = cli("rtdetr-detect", str(locked), "--model", str(tiny_bundle), "--out", str(tmp_path / "o"))
    assert run.one_line_error() == f"error: {locked}: Permission denied"
