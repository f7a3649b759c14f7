"""Frame-input artifacts in a bundle: made torch-free, recorded and hashed, TensorRT 8.6 op check,
and every precision's graph (fp32, fp16, int8 Q/DQ, int8 for TensorRT 8.x) running in ONNX Runtime
and computing what its own graph computes on the Pillow-preprocessed tensor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from rtdetr_edge.bundle import Bundle
from rtdetr_edge.contract import ModelContract
from rtdetr_edge.data.synth import render_scene
from rtdetr_edge.errors import BundleError
from rtdetr_edge.export.frames import front_op_faults, pillow_resize_reference
from tests.frames.conftest import FRAME_SIZES


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_metadata_lists_each_precision_and_size_with_hashes(frames_bundle: Path) -> None:
    b = Bundle(frames_bundle, verify_hashes=True)
    assert b.precisions == ["fp32", "fp16", "int8"]
    for precision in b.precisions:
        assert b.frame_sizes(precision) == sorted(FRAME_SIZES)
        for w, h in FRAME_SIZES:
            entry = b.artifact(precision)["frames"][f"{w}x{h}"]
            assert entry["frame"]["width"] == w and entry["sha256"] and entry["bytes"] > 0
            assert entry["file"].endswith(f".frames-{w}x{h}.onnx")
    assert b.artifact("int8")["frames"]["128x96"]["trt8_file"] == "model.int8.qdq.trt8.frames-128x96.onnx"
    meta = json.loads((frames_bundle / "metadata.json").read_text())
    assert (
        meta["default_precision"]
        == json.loads((frames_bundle / "report.json").read_text())["default_precision"]["chosen"]
    )  # adding frames kept the bundle's default precision


@pytest.mark.parametrize("precision, trt8", [("fp32", True), ("fp16", False), ("int8", False), ("int8", True)])
def test_frame_graph_runs_and_computes_its_graph_on_the_pillow_tensor(
    frames_bundle: Path, precision: str, trt8: bool
) -> None:
    b = Bundle(frames_bundle)
    frame_path = b.frame_onnx_path(precision, (128, 96), trt8=trt8 and precision == "int8")
    model = onnx.load(str(frame_path), load_external_data=False)
    assert front_op_faults(model, trt8=trt8) == []
    assert all(n.name.startswith("frame/") for n in model.graph.node[:12])
    contract = ModelContract.from_json({m.key: m.value for m in model.metadata_props}["rtdetr_edge.contract"])
    assert contract.frame is not None and contract.frame.key == "128x96" and contract.graph_input == "frames"
    frames = np.stack([render_scene(np.random.default_rng(i), 128, 96)[0] for i in range(2)])
    ours = _session(frame_path).run(None, {"frames": frames})
    base = b.trt8_onnx_path() if trt8 and precision == "int8" else b.onnx_path(precision)
    assert base is not None
    pre = b.contract.preprocessing
    tensor = np.stack(
        [pillow_resize_reference(f[..., ::-1], pre.width, pre.height).transpose(2, 0, 1) / 255.0 for f in frames]
    ).astype(np.float32)
    theirs = _session(base).run(None, {"images": tensor})
    scores, labels, boxes = ours
    np.testing.assert_allclose(scores, theirs[0], atol=2e-3)
    top = scores > 0.05  # top-k order of near-equal scores may differ; compare the clear detections
    np.testing.assert_array_equal(labels[top], theirs[1][top])
    np.testing.assert_allclose(boxes[top], theirs[2][top], atol=2e-3)


def test_tampered_frame_artifact_is_refused_on_use(frames_copy: Path) -> None:
    b = Bundle(frames_copy)
    path = frames_copy / b.artifact("fp32")["frames"]["64x48"]["file"]
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(BundleError, match=r"sha256 does not match .*fp32 frames 64x48"):
        Bundle(frames_copy).frame_onnx_path("fp32", (64, 48))
    with pytest.raises(BundleError, match=r"no fp32 frame-input artifact for 640x480 frames \(it has 128x96, 64x48\)"):
        Bundle(frames_copy).frame_onnx_path("fp32", (640, 480))


def test_missing_frame_artifact_makes_the_bundle_incomplete(frames_copy: Path) -> None:
    (frames_copy / "model.fp16.frames-64x48.onnx").unlink()
    with pytest.raises(BundleError, match=r"incomplete, missing fp16 frames 64x48"):
        Bundle(frames_copy)


@pytest.mark.parametrize(
    "precision, version, expected",
    [
        ("fp32", "8.6.2", "model.frames-128x96.onnx"),
        ("fp16", "8.6.2", "model.frames-128x96.onnx"),
        ("fp16", "10.3.0", "model.fp16.frames-128x96.onnx"),
        ("fp16", "11.4.1", "model.fp16.frames-128x96.onnx"),
        ("int8", "8.6.2", "model.int8.qdq.trt8.frames-128x96.onnx"),
        ("int8", "10.3.0", "model.int8.qdq.frames-128x96.onnx"),
    ],
)
def test_engine_builds_from_the_frame_graph_of_its_recipe(
    frames_bundle: Path, precision: str, version: str, expected: str
) -> None:
    """Which frame graph the engine recipe builds from, on a real bundle (TensorRT itself cannot run here)."""
    from rtdetr_edge.engine_recipe import EngineBuildOptions, bundle_graphs, recipe

    r = recipe(bundle_graphs(Bundle(frames_bundle), (128, 96)), precision, version, EngineBuildOptions())
    assert r.source.file == expected and r.frame_size == (128, 96)
    assert not r.tf32  # the front's FP32 resize stays exact: no TF32 on frame graphs
    assert not r.fp32_pins or "frame/*" in r.fp32_pins  # weakly typed: the front pinned to FP32


def test_int8_frame_graph_keeps_the_calibrated_scales(frames_bundle: Path) -> None:
    """The front computes the tensor calibration saw, so the INT8 frame graph reuses the ranges as they are:
    every initializer of the int8 graph (weights, Q/DQ scales and zero points) is in the frame graph unchanged."""
    from onnx import numpy_helper

    b = Bundle(frames_bundle)
    for trt8 in (False, True):
        base_path = b.trt8_onnx_path() if trt8 else b.onnx_path("int8")
        assert base_path is not None
        base = {t.name: t for t in onnx.load(str(base_path)).graph.initializer}
        frame = {t.name: t for t in onnx.load(str(b.frame_onnx_path("int8", (128, 96), trt8=trt8))).graph.initializer}
        assert base and set(base) <= set(frame)
        assert all(not n.startswith("frame/") for n in base)
        for name, t in base.items():
            np.testing.assert_array_equal(numpy_helper.to_array(frame[name]), numpy_helper.to_array(t))


def test_precisions_added_later_get_the_bundle_frame_sizes(tiny_bundle: Path, tmp_path: Path) -> None:
    from rtdetr_edge.build import BuildOptions, add_precisions

    with_frames = add_precisions(tiny_bundle, tmp_path / "f", BuildOptions(frame_sizes=((96, 80),)))
    assert Bundle(with_frames).precisions == ["fp32"]
    both = add_precisions(with_frames, tmp_path / "g", BuildOptions(precision="fp16"))
    b = Bundle(both, verify_hashes=True)
    assert b.frame_sizes("fp32") == b.frame_sizes("fp16") == [(96, 80)]
    assert b.metadata["default_precision"] == "fp16"
