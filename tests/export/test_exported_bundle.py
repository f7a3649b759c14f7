"""The exported bundle: verified against PyTorch, self-describing, dynamic batch with batch-independent rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from rtdetr_edge.bundle import Bundle
from rtdetr_edge.contract import METADATA_KEY, ModelContract
from rtdetr_edge.export.verify import verification_images
from rtdetr_edge.matching import match_topk
from rtdetr_edge.preprocess import Preprocessor


def _run(path: Path, pixels: np.ndarray) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"images": pixels})


def test_tiny_bundle_is_verified_and_self_describing(tiny_bundle: Path) -> None:
    b = Bundle(tiny_bundle, verify_hashes=True)
    meta = b.metadata
    assert meta["verification"]["passed"] is True
    assert meta["verification"]["max_abs_score"] <= 1e-4 and meta["verification"]["max_abs_box"] <= 1e-4
    assert meta["verification"]["label_agreement"] == 1.0
    assert meta["source"]["kind"] == "folder"
    assert {"torch", "transformers", "onnx", "onnxruntime"} <= set(meta["versions"])
    model = onnx.load(str(b.onnx_path()))
    props = {p.key: p.value for p in model.metadata_props}
    assert ModelContract.from_json(props[METADATA_KEY]) == b.contract
    assert [o.name for o in model.graph.output] == ["scores", "labels", "boxes"]
    assert model.graph.output[1].type.tensor_type.elem_type == onnx.TensorProto.INT32
    report = json.loads((tiny_bundle / "report.json").read_text())
    assert report["export"]["node_counts"]["simplified"] < report["export"]["node_counts"]["exported"]


@pytest.mark.parametrize("batch", [1, 4])
def test_onnx_runs_at_batch_1_and_4(tiny_bundle: Path, batch: int) -> None:
    b = Bundle(tiny_bundle)
    pixels, _ = Preprocessor(b.contract.preprocessing).batch(verification_images(batch))
    scores, labels, boxes = _run(b.onnx_path(), pixels)
    assert scores.shape == (batch, b.contract.top_k) and labels.shape == scores.shape
    assert boxes.shape == (batch, b.contract.top_k, 4)
    assert np.all(np.diff(scores, axis=1) <= 0), "top-k must be sorted"
    assert labels.min() >= 0 and labels.max() < b.contract.num_classes


def test_batched_rows_equal_single_runs(tiny_bundle: Path) -> None:
    b = Bundle(tiny_bundle)
    pixels, _ = Preprocessor(b.contract.preprocessing).batch(verification_images(3))
    batched = _run(b.onnx_path(), pixels)
    for i in range(3):
        single = _run(b.onnx_path(), pixels[i : i + 1])
        m = match_topk(tuple(o[0] for o in single), tuple(o[i] for o in batched))
        assert m.label_agreement == 1.0 and m.max_abs_score < 1e-5
