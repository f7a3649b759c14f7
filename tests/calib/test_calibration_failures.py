"""Calibration that cannot finish: missing or corrupt images, too few of them, Ctrl-C."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rtdetr_edge.calib import CalibrationOptions
from rtdetr_edge.errors import CalibrationError


def test_missing_and_corrupt_calibration_images(
    tiny_bundle: Path, shapes_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from rtdetr_edge.build import BuildOptions, add_precisions

    data = tmp_path / "data"
    shutil.copytree(shapes_data.parent, data)
    images = sorted((data / "images").iterdir())
    images[0].unlink()  # missing: warned and skipped
    images[1].write_bytes(images[2].read_bytes()[:300])  # corrupt: warned and skipped
    out = add_precisions(
        tiny_bundle,
        tmp_path / "b",
        BuildOptions(
            precision="int8",
            check_images=0,
            calibration=CalibrationOptions(calib=str(data / "annotations.json"), size=10, cache_dir=None),
        ),
    )
    assert "1 of 12 listed images are missing" in caplog.text
    report = json.loads((out / "report.json").read_text())
    assert report["calibration"]["images"] + report["calibration"]["skipped"] == 10
    for img in images[2:9]:
        img.unlink()
    with pytest.raises(CalibrationError, match="only 4 images available, fewer than --calib-size 10"):
        add_precisions(
            tiny_bundle,
            tmp_path / "c",
            BuildOptions(
                precision="int8",
                calibration=CalibrationOptions(calib=str(data / "annotations.json"), size=10, cache_dir=None),
            ),
        )
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    "stage, left_in_tmp, cached_batches",
    [
        # the batch preprocessed before Ctrl-C stays cached, but the cache is never marked complete
        ("collecting activations", ["cache"], ["batch_00000.npy"]),
        ("reading images", [], []),
    ],
)
def test_ctrl_c_during_calibration_leaves_nothing(
    tiny_bundle: Path,
    shapes_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stage: str,
    left_in_tmp: list[str],
    cached_batches: list[str],
) -> None:
    from rtdetr_edge.build import BuildOptions, add_precisions
    from rtdetr_edge.calib import collect, stream

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    if stage == "collecting activations":
        monkeypatch.setattr(collect.ActivationCollector, "_infer", interrupted)
    else:
        monkeypatch.setattr(stream, "read_image", interrupted)
    with pytest.raises(KeyboardInterrupt):
        add_precisions(
            tiny_bundle,
            tmp_path / "out",
            BuildOptions(
                precision="int8",
                calibration=CalibrationOptions(calib=str(shapes_data), size=4, cache_dir=str(tmp_path / "cache")),
            ),
        )
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == left_in_tmp
    assert sorted(p.name for p in tmp_path.rglob("*.npy")) == cached_batches
    assert not list(tmp_path.rglob("complete.json"))
