"""Export options and model variants: raw outputs and opset 16, RT-DETRv2, top-k clamping, the
processor config, and the full-size R18-vd-shaped model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from rtdetr_edge.bundle import Bundle
from rtdetr_edge.export import export_onnx, testing
from rtdetr_edge.export.options import ExportOptions
from rtdetr_edge.export.verify import verification_images
from rtdetr_edge.preprocess import Preprocessor


def _run(path: Path, pixels: np.ndarray) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"images": pixels})


def test_raw_outputs_and_opset16(tiny_model_dir: Path) -> None:
    res = export_onnx(tiny_model_dir, ExportOptions(raw_outputs=True, opset=16))
    assert [o.name for o in res.model.graph.output] == ["logits", "pred_boxes"]
    assert res.contract.output_kind == "raw" and res.contract.box_format == "cxcywh_norm"
    assert res.model.opset_import[0].version == 16
    assert "LayerNormalization" not in {n.op_type for n in res.model.graph.node}
    assert res.verification is not None and res.verification.passed


@pytest.mark.slow
def test_rtdetr_v2_exports_the_same_way() -> None:
    model = testing.random_model(testing.tiny_config(v2=True), seed=1)
    res = export_onnx(model, ExportOptions(top_k=40))
    assert res.contract.extra["model_type"] == "rt_detr_v2"
    assert res.verification is not None and res.verification.passed


def test_topk_clamped_to_queries_times_classes(tiny_model_dir: Path) -> None:
    res = export_onnx(tiny_model_dir, ExportOptions(top_k=10_000, verify=False))
    assert res.contract.top_k == 30 * 5


@pytest.mark.slow
def test_contract_read_from_processor_config(tiny_model_dir: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    cfg = json.loads((folder / "preprocessor_config.json").read_text())
    cfg.update({"do_normalize": True, "size": {"height": 96, "width": 64}, "resample": 3})
    (folder / "preprocessor_config.json").write_text(json.dumps(cfg))
    res = export_onnx(folder, ExportOptions(verify=False))
    pre = res.contract.preprocessing
    assert (pre.height, pre.width, pre.resample, pre.do_normalize) == (96, 64, "bicubic", True)
    assert pre.mean == (0.485, 0.456, 0.406) and res.contract.class_names[0] == "thing0"


@pytest.mark.slow
def test_full_size_r18vd_shaped_model(tmp_path: Path) -> None:
    """The acceptance model: ResNet-18-vd backbone, 3 decoder layers, 640x640, random weights."""
    from rtdetr_edge.build import build_bundle

    folder = testing.save_model_folder(testing.random_model(testing.r18vd_config(), seed=0), tmp_path / "r18")
    out = build_bundle(folder, tmp_path / "bundle")
    meta = Bundle(out).metadata
    v = meta["verification"]
    assert v["passed"] and v["max_abs_score"] <= 1e-4 and v["max_abs_box"] <= 1e-4 and v["label_agreement"] == 1.0
    assert meta["contract"]["preprocessing"]["height"] == 640
    b = Bundle(out)
    for batch in (1, 4):
        pixels, _ = Preprocessor(b.contract.preprocessing).batch(verification_images(batch))
        scores, _, _ = _run(b.onnx_path(), pixels)
        assert scores.shape == (batch, 300)
