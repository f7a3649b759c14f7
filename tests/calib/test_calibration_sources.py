"""Calibration sources and subsets (COCO json, image folders) and the preprocessed batch stream."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rtdetr_edge.bundle import Bundle
from rtdetr_edge.calib.stream import CalibrationBatches
from rtdetr_edge.calib.subset import select_subset
from rtdetr_edge.data.sources import open_source
from rtdetr_edge.errors import CalibrationError, InputError


def test_subset_is_stratified_deterministic_and_excludable(shapes_data: Path) -> None:
    src = open_source(str(shapes_data), "--calib")
    a, b = select_subset(src, 6, seed=3), select_subset(src, 6, seed=3)
    assert a.ids == b.ids and a.manifest()["sha256"] == b.manifest()["sha256"]
    assert select_subset(src, 6, seed=4).manifest()["sha256"] != a.manifest()["sha256"]
    cov = a.coverage
    assert cov["categories_covered"] == cov["categories_in_source"] and cov["stratified"]
    rest = select_subset(src, 6, seed=3, exclude_ids=set(a.ids))
    assert not set(rest.ids) & set(a.ids)
    with pytest.raises(CalibrationError, match="fewer than --calib-size 100"):
        select_subset(src, 100)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nothing/here", "not an existing folder of images, a COCO .json file, or coco_val/coco_train"),
        ("coco_test", "not an existing folder of images, a COCO .json file, or coco_val/coco_train"),
    ],
)
def test_calib_spec_naming_nothing(spec: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        open_source(spec, "--calib")


def test_folder_source_and_empty_folder(shapes_data: Path, tmp_path: Path) -> None:
    src = open_source(str(shapes_data.parent / "images"), "--calib")
    assert len(src) == 12 and src.dataset is None
    assert not select_subset(src, 5).coverage["stratified"]
    with pytest.raises(InputError, match="the folder has no images"):
        open_source(str(tmp_path), "--calib")


def test_batch_stream_uses_runtime_preprocessing_and_caches(
    tiny_bundle: Path, shapes_data: Path, tmp_path: Path
) -> None:
    from rtdetr_edge.images import read_image
    from rtdetr_edge.preprocess import Preprocessor

    contract = Bundle(tiny_bundle).contract
    images = sorted((shapes_data.parent / "images").iterdir())[:5]
    first = CalibrationBatches(images, contract, batch_size=2, cache_dir=tmp_path, manifest_sha256="m")
    batches = [b["images"] for b in first]
    assert [b.shape[0] for b in batches] == [2, 2, 1] and not first.skipped
    expected, _ = Preprocessor(contract.preprocessing).batch([read_image(p) for p in images[:2]])
    assert np.array_equal(batches[0], expected)
    again = CalibrationBatches(images, contract, batch_size=2, cache_dir=tmp_path, manifest_sha256="m")
    assert again.cached
    assert all(np.array_equal(x["images"], y) for x, y in zip(again, batches))
    other = CalibrationBatches(images, contract, batch_size=3, cache_dir=tmp_path, manifest_sha256="m")
    assert not other.cached  # batch size is part of the key


def test_batch_cache_keeps_under_its_size_limit(tiny_bundle: Path, shapes_data: Path, tmp_path: Path) -> None:
    """The cache grew by one subset per build, without bound (issue 24, item 11): now the least
    recently used entries go once a new one is complete, never the one just used."""
    contract = Bundle(tiny_bundle).contract
    images = sorted((shapes_data.parent / "images").iterdir())[:4]

    def run(sha: str, limit: int) -> CalibrationBatches:
        batches = CalibrationBatches(images, contract, 2, tmp_path, sha, cache_max_bytes=limit)
        list(batches)
        return batches

    one = run("a", 1 << 30)
    assert one.cache is not None
    size = sum(f.stat().st_size for f in one.cache.iterdir())
    run("b", 1 << 30)
    run("a", 1 << 30)  # a cache hit: "a" is now the most recently used
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2
    newest = run("c", 2 * size + size // 2)  # room for two entries: "b", the least recently used, goes
    left = {p for p in tmp_path.iterdir() if p.is_dir()}
    assert left == {one.cache, newest.cache}
    run("d", 1)  # a limit below one entry keeps only the entry just made
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1
