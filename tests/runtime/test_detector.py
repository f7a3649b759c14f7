"""Detector: artifact selection, every input form, batching, per-call options, bundle errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from rtdetr_edge import Detector
from rtdetr_edge.errors import BundleError, InputError


def test_bundle_onnx_and_inputs_agree(tiny_bundle: Path, scene: np.ndarray, tmp_path: Path) -> None:
    with Detector(tiny_bundle, conf=0.0, max_det=10) as det:
        ref = det(scene)
        assert len(ref) == 10 and ref.image_size == (640, 480)
        path = tmp_path / "scene.png"
        cv2.imwrite(str(path), scene)
        assert np.allclose(det(str(path)).xyxy, ref.xyxy)
        assert np.allclose(det(scene[..., ::-1].copy(), rgb=True).xyxy, ref.xyxy)
        batch = det([scene, path, scene])
        assert len(batch) == 3 and all(np.allclose(b.xyxy, ref.xyxy, atol=1e-3) for b in batch)
        assert det.last_times.images == 3 and det.last_times.infer > 0
    with Detector(tiny_bundle / "model.onnx", conf=0.0, max_det=10) as det:
        assert np.allclose(det(scene).xyxy, ref.xyxy)


def test_large_lists_are_split_into_batches(tiny_bundle: Path, scene: np.ndarray) -> None:
    det = Detector(tiny_bundle, conf=0.0, max_det=3, max_batch=2)
    out = det([scene] * 5)
    assert len(out) == 5 and det.last_times.images == 5
    assert det(np.stack([scene, scene])).__len__() == 2  # a 4-D array is a list of images


def test_per_call_overrides(tiny_bundle: Path, scene: np.ndarray) -> None:
    det = Detector(tiny_bundle, conf=0.0)
    assert len(det(scene, max_det=2)) == 2
    assert len(det(scene, conf=1.0)) == 0
    assert set(det(scene, classes=[1], max_det=50).class_ids.tolist()) <= {1}


def _broken(bundle: Path, tmp_path: Path, how: str) -> Path:
    b = tmp_path / how
    shutil.copytree(bundle, b)
    meta = json.loads((b / "metadata.json").read_text())
    if how == "missing_onnx":
        (b / "model.onnx").unlink()
    elif how == "unknown_version":
        meta["format_version"] = 99
    elif how == "contract_version":
        meta["contract"]["version"] = 42
    elif how == "no_metadata":
        (b / "metadata.json").unlink()
        return b
    (b / "metadata.json").write_text(json.dumps(meta))
    return b


@pytest.mark.parametrize(
    "how, message",
    [
        ("missing_onnx", "bundle is incomplete, missing fp32: model.onnx"),
        ("unknown_version", "unknown bundle format version 99"),
        ("contract_version", "unknown model contract version 42"),
        ("no_metadata", "metadata.json is missing"),
    ],
)
def test_broken_bundles_are_refused_with_the_reason(tiny_bundle: Path, tmp_path: Path, how: str, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        Detector(_broken(tiny_bundle, tmp_path, how))


def test_missing_unknown_and_foreign_model_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such bundle"):
        Detector(tmp_path / "nothing")
    (tmp_path / "weights.pt").write_bytes(b"x")
    with pytest.raises(InputError, match=r"unknown model file type '\.pt'"):
        Detector(tmp_path / "weights.pt")
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["out"])],
        "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    onnx.save(helper.make_model(g), str(tmp_path / "foreign.onnx"))
    with pytest.raises(BundleError, match="carries no rtdetr-edge model contract"):
        Detector(tmp_path / "foreign.onnx")
