"""The RT-DETR family through the same pipeline (issue 16): RT-DETRv2, D-FINE, DEIMv2, LW-DETR, RF-DETR.

Table-driven over ``export.source.FAMILIES`` with each family's tiny random config
(``export.testing.tiny_family_config``, 64x64, fan-in init): export + verification at batch 1
and 4, ``rtdetr-build --precision fp16`` from a ``save_pretrained`` folder and the torch-free
Detector on its fp32 and fp16 artifacts; INT8 (slow lane) for D-FINE, DEIMv2 and LW-DETR; one
real checkpoint per family (network). The gates (unknown model type, windowed-ViT input size,
RF-DETR's frozen position embeddings, a perturbed weight) are shown to fail.
"""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rtdetr_edge.bundle import Bundle
from rtdetr_edge.errors import ExportError, ModelSourceError, VerificationError
from rtdetr_edge.export import export_onnx, testing
from rtdetr_edge.export.options import ExportOptions
from rtdetr_edge.export.source import FAMILIES, load_folder, load_model
from tests.helpers import CLI_MODULES, SAMPLES

NEW_FAMILIES = ("rt_detr_v2", "d_fine", "deimv2", "lw_detr", "rf_detr")
IMAGENET_FAMILIES = ("lw_detr", "rf_detr")  # DETR-style processors: ImageNet mean/std
# one real checkpoint per family (network lane)
HUB_IDS = {
    "rt_detr_v2": "PekingU/rtdetr_v2_r18vd",
    "d_fine": "ustc-community/dfine-small-coco",
    "deimv2": "Intellindust/DEIMv2_HGNetv2_N_COCO",
    "lw_detr": "AnnaZhang/lwdetr_small_60e_coco",
    "rf_detr": "Roboflow/rf-detr-base",
}


@pytest.fixture(scope="session")
def family_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """model_type -> a tiny random save_pretrained folder with its family's processor config (made on demand)."""
    return {}


def _folder(family_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, model_type: str) -> Path:
    if model_type not in family_dirs:
        model = testing.random_model(testing.tiny_family_config(model_type), seed=0)
        family_dirs[model_type] = testing.save_model_folder(
            model, tmp_path_factory.mktemp(model_type) / "model", image_size=(64, 64)
        )
    return family_dirs[model_type]


def _build(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    main = importlib.import_module(CLI_MODULES["rtdetr-build"]).main
    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().err


def test_family_table_names_real_transformers_classes() -> None:
    import transformers

    for model_type, family in FAMILIES.items():
        assert getattr(transformers, family.model_class).config_class.model_type == model_type
        assert testing.tiny_family_config(model_type).model_type == model_type
        assert family.hub_ids, model_type


@pytest.mark.slow  # the acceptance test below verifies at batch 1 and 4 in the default lane
@pytest.mark.parametrize("model_type", NEW_FAMILIES)
def test_tiny_family_exports_and_verifies_at_batch_1_and_4(
    model_type: str, family_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = _folder(family_dirs, tmp_path_factory, model_type)
    res = export_onnx(folder, ExportOptions(top_k=40))
    v = res.verification
    assert v is not None and v.passed and v.batch_sizes == [1, 4] and v.label_agreement == 1.0
    assert v.max_abs_score <= 1e-4 and v.max_abs_box <= 1e-4 and v.compared > 100
    assert res.contract.extra["model_type"] == model_type
    assert [o.name for o in res.model.graph.output] == ["scores", "labels", "boxes"]
    pre = res.contract.preprocessing
    assert (pre.height, pre.width) == (64, 64)
    assert pre.do_normalize is (model_type in IMAGENET_FAMILIES)
    # fan-in init: scores spread out (no ties that would make the top-k order arbitrary)
    with_torch = load_model(folder).model
    import torch

    with torch.no_grad():
        logits = with_torch(pixel_values=torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))).logits
    assert float(logits.std()) > 0.3


@pytest.mark.parametrize("model_type", NEW_FAMILIES)
def test_rtdetr_build_fp16_then_detector_detects_with_fp32_and_fp16(
    model_type: str,
    family_dirs: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 16's acceptance: `rtdetr-build --precision fp16` from a small folder, then the torch-free Detector."""
    from rtdetr_edge import Detector

    folder = _folder(family_dirs, tmp_path_factory, model_type)
    out = tmp_path / "bundle"
    argv = ["--model", str(folder), "--precision", "fp16", "--top-k", "40", "--check-images", "0", "--out", str(out)]
    code, err = _build(argv, capsys)
    assert code == 0, err
    bundle = Bundle(out, verify_hashes=True)
    meta = bundle.metadata
    assert meta["verification"]["passed"] is True and meta["verification"]["batch_sizes"] == [1, 4]
    assert meta["contract"]["extra"]["model_type"] == model_type
    assert set(meta["artifacts"]) == {"fp32", "fp16"}
    image = str(SAMPLES / "images" / "scene_0.jpg")
    found = {}
    for precision in ("fp32", "fp16"):
        with Detector(out, conf=0.0, precision=precision, backend="onnxruntime", all_labels=True) as det:
            dets = det(image)
        assert len(dets) == 40 and np.all(np.isfinite(dets.xyxy))
        found[precision] = dets
    # FP16 reproduces fp32's strongest detections (random weights: a loose, not an accuracy, check)
    top32, top16 = found["fp32"], found["fp16"]
    assert int(top32.class_ids[0]) == int(top16.class_ids[0])
    assert abs(float(top32.scores[0]) - float(top16.scores[0])) < 0.02


@pytest.mark.slow
def test_deimv2_with_its_dinov3_backbone_exports_and_verifies() -> None:
    """DEIMv2 S/M/L/X use a DINOv3 ViT: onnxsim needs its initializer deduplication off there (graph_passes.simplify)."""
    from rtdetr_edge.contract import Preprocessing

    model = testing.random_model(testing.tiny_deimv2_dinov3_config(), seed=0)
    assert type(model.model.conv_encoder).__name__ == "Deimv2DINOv3ConvEncoder"
    res = export_onnx(model, ExportOptions(top_k=40), preprocessing=Preprocessing(64, 64))
    v = res.verification
    assert v is not None and v.passed and v.batch_sizes == [1, 4] and v.label_agreement == 1.0
    assert res.report["node_counts"]["simplified"] < res.report["node_counts"]["exported"]


def test_unknown_model_type_is_one_line_naming_it(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model_type"] = "rt_detr_v9"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelSourceError, match=r"model_type 'rt_detr_v9' is not RT-DETR.*supported: rt_detr, ") as e:
        load_folder(folder)
    assert "\n" not in str(e.value) and "d_fine" in str(e.value)


def test_windowed_vit_input_size_gate(
    family_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    folder = tmp_path / "lw"
    shutil.copytree(_folder(family_dirs, tmp_path_factory, "lw_detr"), folder)
    assert load_folder(folder).preprocessing.height == 64  # as saved: loads
    cfg = json.loads((folder / "preprocessor_config.json").read_text())
    cfg["size"] = {"height": 60, "width": 64}
    (folder / "preprocessor_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelSourceError, match=r"LW-DETR \(lw_detr\) needs an input size that is a multiple of 16"):
        load_folder(folder)


def test_rf_detr_frozen_position_embeddings_equal_the_eager_ones() -> None:
    import torch

    from rtdetr_edge.export.freeze import frozen_position_embeddings

    model = testing.random_model(testing.tiny_family_config("rf_detr"), seed=0)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        eager = model(pixel_values=x)
        with frozen_position_embeddings(model, 64, 64) as frozen:
            assert frozen == 1
            inside = model(pixel_values=x)
            with pytest.raises(ExportError, match="frozen at 64x64, the model was asked for 128x128"):
                model(pixel_values=torch.rand(1, 3, 128, 128))
        after = model(pixel_values=x)
    assert torch.equal(eager.logits, inside.logits) and torch.equal(eager.pred_boxes, inside.pred_boxes)
    assert torch.equal(eager.logits, after.logits)
    assert "interpolate_pos_encoding" not in vars(model.model.backbone.backbone.embeddings)  # patch removed


def test_rf_detr_export_needs_the_frozen_embeddings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without freezing, the legacy exporter meets aten::_upsample_bicubic2d_aa: the freeze is what makes RF-DETR export."""
    import contextlib

    from rtdetr_edge.export import onnx_export

    model = testing.random_model(testing.tiny_family_config("rf_detr"), seed=0)
    monkeypatch.setattr(onnx_export, "frozen_position_embeddings", lambda *a: contextlib.nullcontext(0))
    with pytest.raises(ExportError, match="upsample_bicubic2d_aa"):
        onnx_export.export_raw(model, 64, 64)


def test_verification_fails_on_a_perturbed_weight() -> None:
    """The same gate for every family: a graph that no longer matches the model fails verification."""
    import torch

    from rtdetr_edge.export.verify import verify

    model = testing.random_model(testing.tiny_family_config("d_fine"), seed=0)
    res = export_onnx(model, ExportOptions(top_k=40))
    assert res.verification is not None and res.verification.passed
    with torch.no_grad():
        # the last decoder layer's class head 5% off: a graph exported before no longer matches
        heads = [w for name, w in model.named_parameters() if "decoder.class_embed." in name and w.dim() == 2]
        heads[-1].mul_(1.05)
    with pytest.raises(VerificationError, match="ONNX Runtime disagrees with PyTorch: FAIL") as info:
        verify(model, res.model.SerializeToString(), res.contract)
    # the message says what was allowed and why, and names the flag that allows more
    assert "the larger of --tolerance 0.0001 and 16 x the model's float32 rounding noise" in str(info.value)
    assert "pass a larger --tolerance" in str(info.value)


@pytest.mark.slow
@pytest.mark.parametrize("model_type", ["d_fine", "deimv2", "lw_detr"])
def test_int8_bundle_of_a_family(
    model_type: str,
    family_dirs: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    shapes_data: Path,
) -> None:
    """INT8 (Q/DQ) + FP16 with the family's precision rules, realised in the graphs and recorded in the plan."""
    import onnx

    from rtdetr_edge import Detector
    from rtdetr_edge.build import BuildOptions, build_bundle
    from rtdetr_edge.calib import CalibrationOptions
    from rtdetr_edge.calib.plan import PrecisionPlan, graph_precisions
    from rtdetr_edge.calib.qdq import wiring_faults

    folder = _folder(family_dirs, tmp_path_factory, model_type)
    out = build_bundle(
        folder,
        tmp_path / "b",
        BuildOptions(
            precision="best",
            check_images=4,
            export=ExportOptions(top_k=40),
            calibration=CalibrationOptions(calib=str(shapes_data), size=8, cache_dir=None),
        ),
    )
    meta = Bundle(out, verify_hashes=True).metadata
    assert {"fp32", "fp16", "int8"} <= set(meta["artifacts"])
    plan = PrecisionPlan.load(out / "calib" / "plan.json")
    int8_graph = onnx.load(str(out / meta["artifacts"]["int8"]["file"]))
    assert not wiring_faults(int8_graph)
    realised = graph_precisions(int8_graph)
    planned = {e.node: e.precision for e in plan.entries if e.node in realised}
    assert planned == {n: realised[n] for n in planned}
    assert plan.shares()["int8"] > 0.5
    reasons = {e.reason for e in plan.entries}
    if model_type in ("d_fine", "deimv2"):
        assert any(r.startswith("D-FINE distribution integral") for r in reasons)
        assert any(r.startswith("location-quality estimator") for r in reasons)
    if model_type == "deimv2":
        assert any(r.startswith("DEIMv2 RMSNorm") for r in reasons)
    if model_type == "lw_detr":
        assert any(r.startswith("two-stage encoder heads") for r in reasons)
    with Detector(out, conf=0.0, precision="int8", backend="onnxruntime", all_labels=True) as det:
        dets = det(str(SAMPLES / "images" / "scene_0.jpg"))
    assert len(dets) == 40 and np.all(np.isfinite(dets.xyxy))


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize("model_type", NEW_FAMILIES)
def test_real_checkpoint_of_each_family_builds_verified(model_type: str, tmp_path: Path) -> None:
    from rtdetr_edge import Detector
    from rtdetr_edge.build import BuildOptions, build_bundle

    out = build_bundle(HUB_IDS[model_type], tmp_path / "b", BuildOptions(check_images=0))
    meta = Bundle(out).metadata
    assert meta["verification"]["passed"] and meta["contract"]["extra"]["model_type"] == model_type
    assert len(meta["contract"]["class_names"]) >= 80
    dets = Detector(out, conf=0.3, backend="onnxruntime")(str(SAMPLES / "images" / "scene_0.jpg"))
    assert np.all(np.isfinite(dets.xyxy))
