"""Malformed COCO annotations and calibration cache entries (issue 15, items 12 and 5)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from rtdetr_edge import Detector
from rtdetr_edge.bundle import Bundle
from rtdetr_edge.calib.stream import CalibrationBatches
from rtdetr_edge.data.coco import CocoDataset
from rtdetr_edge.data.sources import open_source
from rtdetr_edge.errors import InputError
from rtdetr_edge.evaluate.runner import evaluate


def _annotations(shapes_data: Path, tmp_path: Path, bbox: Any) -> Path:
    data = json.loads(shapes_data.read_text())
    data["annotations"][1]["bbox"] = bbox
    out = tmp_path / "annotations.json"
    out.write_text(json.dumps(data))
    return out


@pytest.mark.parametrize(
    "bbox", [[1, 2, 3], [1, 2, 3, 4, 5], "1,2,3,4", None, [1, 2, "3", 4], [1, 2, float("nan"), 4], [0, 0, -5, 4]]
)
def test_bad_coco_bbox_is_one_line_naming_the_file(shapes_data: Path, tmp_path: Path, bbox: Any) -> None:
    ann = _annotations(shapes_data, tmp_path, bbox)
    images = shapes_data.parent / "images"
    pattern = r"annotations\.json: annotations\[1\] \(id .*\): bbox (must be|width and height)"
    with pytest.raises(InputError, match=pattern):
        CocoDataset(ann, images)
    with pytest.raises(InputError, match=pattern):  # --calib
        open_source(str(ann), "--calib", images)


def test_bad_coco_bbox_in_eval_data(tiny_bundle: Path, shapes_data: Path, tmp_path: Path) -> None:
    ann = _annotations(shapes_data, tmp_path, [1, 2, 3])
    pattern = r"annotations\.json: annotations\[1\] .*bbox must be 4 finite numbers"
    with Detector(tiny_bundle) as det, pytest.raises(InputError, match=pattern):  # what rtdetr-eval --data runs
        evaluate(det, ann, shapes_data.parent / "images", progress=False)


def test_annotation_without_ids(shapes_data: Path, tmp_path: Path) -> None:
    data = json.loads(shapes_data.read_text())
    data["annotations"][0]["category_id"] = "circle"
    ann = tmp_path / "annotations.json"
    ann.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"annotations\[0\] .*category_id must be an integer, got 'circle'"):
        CocoDataset(ann)


def _images(folder: Path, colours: list[int]) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i, c in enumerate(colours):
        p = folder / f"im_{i}.png"
        cv2.imwrite(str(p), np.full((32, 48, 3), c, np.uint8))
        paths.append(p)
    return paths


@pytest.mark.parametrize("damage", ["truncated_batch", "garbage_batch", "missing_batch", "broken_marker"])
def test_unreadable_cache_entry_is_discarded_and_rebuilt(
    tiny_bundle: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    contract = Bundle(tiny_bundle).contract
    images = _images(tmp_path / "data", [10, 20, 30])
    cache = tmp_path / "cache"
    first = [b["images"] for b in CalibrationBatches(images, contract, 2, cache, "m")]
    again = CalibrationBatches(images, contract, 2, cache, "m")
    assert again.cached and again.cache is not None
    batch = again.cache / "batch_00001.npy"
    if damage == "truncated_batch":
        batch.write_bytes(batch.read_bytes()[:-100])
    elif damage == "garbage_batch":
        batch.write_bytes(b"not numpy")
    elif damage == "missing_batch":
        batch.unlink()
    else:
        (again.cache / "complete.json").write_text("[")
    bad = "complete.json" if damage == "broken_marker" else "batch_00001.npy"
    with caplog.at_level(logging.WARNING, logger="rtdetr_edge"):
        rebuilt = [b["images"] for b in again]
    assert f"{bad} is unreadable" in caplog.text and "preprocessing again" in caplog.text
    assert len(rebuilt) == len(first) and all(np.array_equal(x, y) for x, y in zip(rebuilt, first))
    third = CalibrationBatches(images, contract, 2, cache, "m")
    assert third.cached and all(np.array_equal(x["images"], y) for x, y in zip(third, first))  # healthy again


def test_same_relative_paths_in_other_folders_do_not_share_batches(
    tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contract = Bundle(tiny_bundle).contract
    cache = tmp_path / "cache"
    _images(tmp_path / "site_a" / "calib", [0, 0])
    _images(tmp_path / "site_b" / "calib", [255, 255])
    relative = [Path("calib/im_0.png"), Path("calib/im_1.png")]
    seen = []
    for site in ("site_a", "site_b"):
        monkeypatch.chdir(tmp_path / site)
        # the same --calib string, file names, seed and batch size: the same manifest hash
        batches = CalibrationBatches(relative, contract, 2, cache, "same-manifest")
        assert not batches.cached, f"{site} would reuse the other folder's batches"
        made = [b["images"] for b in batches]  # all of them: the entry is complete
        seen.append(made[0])
    assert not np.array_equal(seen[0], seen[1])


def test_a_file_changed_in_place_is_not_served_from_the_cache(tiny_bundle: Path, tmp_path: Path) -> None:
    contract = Bundle(tiny_bundle).contract
    images = _images(tmp_path / "data", [0, 0])
    cache = tmp_path / "cache"
    list(CalibrationBatches(images, contract, 2, cache, "m"))
    cv2.imwrite(str(images[0]), np.full((32, 48, 3), 200, np.uint8))
    st = images[0].stat()
    os.utime(images[0], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert not CalibrationBatches(images, contract, 2, cache, "m").cached
    shutil.rmtree(cache)
