"""A build interrupted part-way (an exception or Ctrl-C) leaves no bundle directory behind."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.slow
def test_interrupted_build_leaves_nothing(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception (or Ctrl-C) during the build leaves no directory that looks complete."""
    from rtdetr_edge import bundle as bundle_mod
    from rtdetr_edge.build import build_bundle

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bundle_mod, "sha256_file", boom)
    with pytest.raises(KeyboardInterrupt):
        build_bundle(tiny_model_dir, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
