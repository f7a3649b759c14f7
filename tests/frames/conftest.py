"""A bundle with frame-input artifacts, added torch-free to the session's fp32 + fp16 + int8 bundle."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

# 64x48 upscales to the tiny model's 64x64 (the host path is Pillow-exact there: INTER_LINEAR_EXACT);
# 128x96 downscales (antialiased: the host path differs from Pillow there, the front does not)
FRAME_SIZES = ((64, 48), (128, 96))


@pytest.fixture(scope="session")
def frames_bundle(best_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rtdetr_edge.build import BuildOptions, add_precisions

    out = tmp_path_factory.mktemp("frames") / "bundle"
    return add_precisions(best_bundle, out, BuildOptions(frame_sizes=FRAME_SIZES))


@pytest.fixture()
def frames_copy(frames_bundle: Path, tmp_path: Path) -> Path:
    """A copy to break."""
    return Path(shutil.copytree(frames_bundle, tmp_path / "copy"))
