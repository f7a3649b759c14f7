"""The images rtdetr-check feeds: our preprocessing, and by default the held-out part of the calibration source."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("polygraphy")
pytest.importorskip("faster_coco_eval")

from rtdetr_edge.bundle import Bundle
from rtdetr_edge.check.data import CheckDataLoader, resolve_images
from rtdetr_edge.errors import RtdetrEdgeError


def test_data_loader_feeds_our_preprocessing(tiny_bundle: Path, shapes_data: Path) -> None:
    from rtdetr_edge.bundle import Bundle
    from rtdetr_edge.data.synth import render_scene
    from rtdetr_edge.images import list_images, read_image
    from rtdetr_edge.preprocess import Preprocessor

    files = Bundle(tiny_bundle)
    pre = Preprocessor(Bundle(tiny_bundle).contract.preprocessing)
    folder = resolve_images(str(shapes_data.parent / "images"), files, num_images=3)
    loader = CheckDataLoader(folder, files.contract)
    feeds = list(loader)
    paths = list_images(shapes_data.parent / "images")[:3]
    expected, sizes = pre.batch([read_image(p) for p in paths])
    assert len(feeds) == 3 and all(list(f) == ["images"] and f["images"].dtype == np.float32 for f in feeds)
    np.testing.assert_array_equal(np.concatenate([f["images"] for f in feeds]), expected)
    assert loader.sizes == sizes and loader.names == [p.name for p in paths]
    synthetic = CheckDataLoader(resolve_images("synthetic", files, num_images=2), files.contract)
    scenes = [img for _, img in synthetic.images()]
    rng = np.random.default_rng(20240607)
    expected_scenes = [render_scene(rng, 640, 480)[0], render_scene(rng, 1280, 720)[0]]
    assert all(np.array_equal(a, b) for a, b in zip(scenes, expected_scenes)) and len(scenes) == 2
    np.testing.assert_array_equal(next(iter(synthetic))["images"], pre.batch(scenes[:1])[0])


def test_default_data_is_the_held_out_calibration_source(best_bundle: Path, shapes_data: Path) -> None:
    files = Bundle(best_bundle)
    manifest = json.loads((best_bundle / "calib" / "manifest.json").read_text())
    calibrated = {e["file"] for e in manifest["images"]}
    default = resolve_images(None, files)
    assert default.kind == "coco" and len(default) == 4 and default.excluded_calibration == 8
    assert not calibrated & {p.name for p in default.paths}
    assert "calibration source" in default.description
    folder = resolve_images(str(shapes_data.parent / "images"), files)  # the same images, named by their folder
    assert [p.name for p in folder.paths] == sorted(p.name for p in default.paths)
    only_calib = shapes_data.parent / "only_calibration.json"  # a json listing nothing but calibration images
    coco = json.loads(shapes_data.read_text())
    coco["images"] = [im for im in coco["images"] if im["file_name"] in calibrated]
    only_calib.write_text(json.dumps(coco))
    with pytest.raises(RtdetrEdgeError, match="no images left to check"):
        resolve_images(str(only_calib), files)
