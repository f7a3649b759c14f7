"""A bundle knows its calibration source from its manifest, else from the recorded build options.

Build options are recorded nested (``calibration.calib``/``calibration.images_dir``, the
CalibrationOptions fields); bundles made before that recorded them flat (``calib``/``calib_images``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rtdetr_edge.bundle import Bundle
from rtdetr_edge.contract import ModelContract, Preprocessing


def _bundle(tmp_path: Path, build_options: dict[str, Any], manifest: str | None = None) -> Bundle:
    (tmp_path / "model.onnx").write_bytes(b"x")
    if manifest is not None:
        (tmp_path / "calib").mkdir()
        (tmp_path / "calib" / "manifest.json").write_text(manifest)
    contract = ModelContract(preprocessing=Preprocessing(height=8, width=8), class_names=("a",))
    meta = {
        "contract": contract.to_dict(),
        "artifacts": {"fp32": {"file": "model.onnx"}},
        "build_options": build_options,
    }
    return Bundle.from_metadata(tmp_path, meta)


@pytest.mark.parametrize(
    "options",
    [
        {"calibration": {"calib": "data/c.json", "images_dir": "imgs"}},  # nested (BuildOptions record)
        {"calib": "data/c.json", "calib_images": "imgs"},  # flat (older bundles)
    ],
)
def test_recorded_options_name_the_source(tmp_path: Path, options: dict[str, Any]) -> None:
    b = _bundle(tmp_path, options)
    assert b.calibration() == ("data/c.json", None) and b.calib_images_dir == "imgs"


def test_the_manifest_wins(tmp_path: Path) -> None:
    b = _bundle(
        tmp_path,
        {"calibration": {"calib": "other.json"}},
        '{"source": "data/c.json", "images_dir": "imgs", "images": []}',
    )
    assert b.calibration()[0] == "data/c.json" and b.calib_images_dir == "imgs"
