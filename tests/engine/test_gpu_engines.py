"""TensorRT engines on a real GPU (``gpu``-marked, skipped without TensorRT and CUDA): builds, caching,
parity with ONNX Runtime, zero-copy buffers, CUDA graph replay, parser and truncation errors.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from rtdetr_edge.backends import trt_logging
from rtdetr_edge.backends.options import TensorRTOptions
from rtdetr_edge.bundle import Bundle
from rtdetr_edge.engine import BundleEngines, calibrators
from rtdetr_edge.engine.options import EngineBuildOptions
from rtdetr_edge.engine_format import (
    BatchProfile,
    load_sidecar,
    sidecar_path,
    version_tuple,
)
from rtdetr_edge.errors import EngineError
from tests.helpers import REPO


def _major() -> int:
    return version_tuple(trt_logging.tensorrt_version())[0]


def _need_tensorrt() -> None:
    if not trt_logging.tensorrt_usable():
        pytest.skip("needs TensorRT and a CUDA GPU")


def _matched(a: Any, b: Any, iou_min: float = 0.9) -> float:
    """Fraction of ``a``'s detections with a same-label box in ``b`` at IoU >= iou_min (sets, not order)."""
    if len(a) == 0:
        return 1.0 if len(b) == 0 else 0.0
    hits = 0
    for box, label in zip(a.xyxy, a.class_ids):
        same = b.xyxy[b.class_ids == label]
        if len(same) == 0:
            continue
        x0 = np.maximum(box[0], same[:, 0])
        y0 = np.maximum(box[1], same[:, 1])
        x1 = np.minimum(box[2], same[:, 2])
        y1 = np.minimum(box[3], same[:, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        area = lambda r: (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])  # noqa: E731
        iou = inter / (area(box) + area(same) - inter + 1e-9)
        hits += int(iou.max() >= iou_min)
    return hits / len(a)


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engines")


@pytest.mark.gpu
def test_gpu_cuda_check_script_passes() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "cuda_buffers_check.py"), "--require-gpu"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL" not in proc.stdout


@pytest.mark.gpu
def test_gpu_fp16_engine_from_bundle_is_cached_and_rebuilt_for_other_versions(tiny_bundle: Path) -> None:
    _need_tensorrt()
    from rtdetr_edge.engine import engine_for_bundle

    bundle = Bundle(tiny_bundle)
    if _major() >= 11 and "fp16" not in bundle.precisions:
        pytest.skip("TensorRT 11 builds fp16 from model.fp16.onnx, which this bundle lacks")
    path = engine_for_bundle(bundle, "fp16", EngineBuildOptions(batch=BatchProfile(1, 2, 4)))
    meta = load_sidecar(path)
    assert meta is not None and meta.precision == "fp16" and meta.batch.as_tuple() == (1, 2, 4)
    assert meta.contract_json == bundle.contract.to_json() and path.parent == bundle.engines_dir
    stamp = path.stat().st_mtime_ns
    assert (
        engine_for_bundle(bundle, "fp16", EngineBuildOptions(batch=BatchProfile(1, 2, 4))) == path
        and path.stat().st_mtime_ns == stamp
    )
    side = sidecar_path(path)
    d = json.loads(side.read_text())
    d["tensorrt_version"] = "8.6.0.0"  # pretend another TensorRT built it
    side.write_text(json.dumps(d))
    from rtdetr_edge.backends.tensorrt import TensorRTBackend

    with pytest.raises(EngineError, match=r"built with TensorRT 8\.6\.0\.0"):
        TensorRTBackend(path)
    assert (
        engine_for_bundle(bundle, "fp16", EngineBuildOptions(batch=BatchProfile(1, 2, 4))) == path
        and path.stat().st_mtime_ns != stamp
    )
    assert load_sidecar(path).tensorrt_version == trt_logging.tensorrt_version()  # type: ignore[union-attr]


@pytest.mark.gpu
def test_gpu_int8_engine(tiny_bundle: Path, engine_dir: Path) -> None:
    """INT8 from the bundle's artifact where it has one, else calibrated on the device from data."""
    _need_tensorrt()
    from rtdetr_edge.engine import build_engine, engine_for_bundle
    from rtdetr_edge.preprocess import Preprocessor

    bundle = Bundle(tiny_bundle)
    if "int8" in bundle.precisions:
        path = engine_for_bundle(bundle, "int8")
        assert load_sidecar(path).precision == "int8"  # type: ignore[union-attr]
        return
    if _major() >= 11:
        pytest.skip("TensorRT 11 needs the bundle's Q/DQ ONNX, which this bundle lacks")
    from rtdetr_edge.data.synth import render_scene

    pre = Preprocessor(bundle.contract.preprocessing)
    rng = np.random.default_rng(1)

    def batches() -> Any:
        for _ in range(4):
            imgs = [render_scene(rng, 320, 240)[0] for _ in range(2)]
            buf = np.empty(
                (2, 3, bundle.contract.preprocessing.height, bundle.contract.preprocessing.width), np.float32
            )
            pre(imgs, out=buf)
            yield {bundle.contract.input_name: buf}

    cache = engine_dir / "calib.cache"
    calib = calibrators.make_calibrator(batches(), cache)
    out = build_engine(
        bundle.onnx_path("fp32"),
        engine_dir / "int8.engine",
        "int8",
        EngineBuildOptions(int8_mode="implicit", batch=BatchProfile(1, 1, 2)),
        calibrator=calib,
    )
    assert load_sidecar(out).int8_mode == "implicit"  # type: ignore[union-attr]
    assert cache.read_text(errors="replace").startswith("TRT-")
    # second build reads the cache (no data left in the iterable: it must not ask for batches)
    again = build_engine(
        bundle.onnx_path("fp32"),
        engine_dir / "int8b.engine",
        "int8",
        EngineBuildOptions(int8_mode="implicit", batch=BatchProfile(1, 1, 2)),
        calibrator=calibrators.make_calibrator(
            iter([{bundle.contract.input_name: np.zeros((2, 3, 64, 64), np.float32)}]), cache
        ),
    )
    assert again.is_file()


@pytest.mark.gpu
@pytest.mark.parametrize("precision, min_match", [("fp32", 1.0), ("fp16", 0.9)])
def test_gpu_detector_parity_with_onnxruntime(
    reference_bundle: Path, scene: np.ndarray, precision: str, min_match: float
) -> None:
    _need_tensorrt()
    from rtdetr_edge import Detector

    if precision == "fp16" and _major() >= 11 and "fp16" not in Bundle(reference_bundle).precisions:
        pytest.skip("TensorRT 11 fp16 needs model.fp16.onnx")
    with (
        Detector(reference_bundle, backend="onnxruntime", conf=0.4) as ort,
        Detector(
            reference_bundle, backend="tensorrt", precision=precision, conf=0.4, engines=BundleEngines()
        ) as trt_det,
    ):
        a, b = ort(scene), trt_det(scene)
        assert trt_det.backend.name == "tensorrt" and len(a) > 0
        assert _matched(a, b) >= min_match and _matched(b, a) >= min_match
        if precision == "fp32":
            assert abs(len(a) - len(b)) <= 1
            batch_a, batch_b = ort([scene, scene[:, ::-1].copy()]), trt_det([scene, scene[:, ::-1].copy()])
            assert all(_matched(x, y) >= 0.95 for x, y in zip(batch_a, batch_b))


@pytest.mark.gpu
def test_gpu_engine_file_is_self_describing_and_zero_copy(reference_bundle: Path, scene: np.ndarray) -> None:
    _need_tensorrt()
    from rtdetr_edge import Detector
    from rtdetr_edge.backends.tensorrt import TensorRTBackend
    from rtdetr_edge.engine import engine_for_bundle

    engine = engine_for_bundle(Bundle(reference_bundle), "fp32")
    with Detector(engine, conf=0.4) as det:  # contract from the sidecar
        assert det.class_names == Bundle(reference_bundle).contract.class_names and len(det(scene)) > 0
    mapped, pinned = (
        TensorRTBackend(engine, TensorRTOptions(memory="mapped")),
        TensorRTBackend(engine, TensorRTOptions(memory="pinned")),
    )
    try:
        for be in (mapped, pinned):
            buf = be.input_buffer(2)
            buf[...] = np.random.default_rng(0).random(buf.shape, np.float32)
        # zero copy: the array preprocessing fills is the mapped allocation the GPU reads
        mbuf = mapped._buffers[mapped.inputs[0].name]
        assert mbuf.zero_copy and mapped.input_buffer(2).ctypes.data == mbuf.host_ptr
        np.copyto(pinned.input_buffer(2), mapped.input_buffer(2))
        out_m, out_p = mapped.infer(2), pinned.infer(2)
        for name in out_m:
            np.testing.assert_allclose(out_m[name], out_p[name], rtol=1e-5, atol=1e-5)
        assert mapped.last_gpu_ms is not None and mapped.last_gpu_ms > 0
        assert mapped.describe()["zero_copy"] is True
    finally:
        mapped.close()
        pinned.close()


@pytest.mark.gpu
def test_gpu_cuda_graph_replay_matches(reference_bundle: Path) -> None:
    _need_tensorrt()
    from rtdetr_edge.backends.tensorrt import TensorRTBackend
    from rtdetr_edge.engine import engine_for_bundle

    engine = engine_for_bundle(Bundle(reference_bundle), "fp32")
    rng = np.random.default_rng(3)
    g, plain = TensorRTBackend(engine, TensorRTOptions(cuda_graph=True)), TensorRTBackend(engine)
    try:
        for batch in (1, 2, 1):
            data = rng.random((batch, *g.inputs[0].shape[1:]), np.float32)
            for be in (g, plain):
                np.copyto(be.input_buffer(batch), data)
            out_g, out_p = g.infer(batch), plain.infer(batch)
            for name in out_g:
                np.testing.assert_allclose(out_g[name], out_p[name], rtol=1e-5, atol=1e-5)
        assert g.describe()["cuda_graphs_captured"] == 2  # one per batch size, replayed on reuse
    finally:
        g.close()
        plain.close()


@pytest.mark.gpu
def test_gpu_unparsable_and_truncated_engines_are_explained(tmp_path: Path, tiny_bundle: Path) -> None:
    _need_tensorrt()
    from rtdetr_edge.backends.tensorrt import TensorRTBackend
    from rtdetr_edge.engine import build_engine

    # an op TensorRT's parser does not know: the message names the node
    bad = helper.make_model(
        helper.make_graph(
            [helper.make_node("NoSuchOp", ["images"], ["y"], name="/model/odd_node", domain="custom.domain")],
            "g",
            [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
        ),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("custom.domain", 1)],
    )
    onnx.save(bad, str(tmp_path / "bad.onnx"))
    with pytest.raises(EngineError, match="/model/odd_node"):
        build_engine(tmp_path / "bad.onnx", tmp_path / "bad.engine", "fp32")
    # a truncated engine without a sidecar reaches TensorRT, whose failure is explained
    good = build_engine(
        Bundle(tiny_bundle).onnx_path("fp32"),
        tmp_path / "t.engine",
        "fp32",
        EngineBuildOptions(batch=BatchProfile(1, 1, 1)),
    )
    data = good.read_bytes()
    cut = tmp_path / "cut.engine"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(EngineError, match="truncated or corrupt"):
        TensorRTBackend(cut)
    # with the good engine's sidecar next to it, the size check catches it before TensorRT does
    meta = load_sidecar(good)
    assert meta is not None
    meta.save(sidecar_path(cut))
    with pytest.raises(EngineError, match="truncated or altered"):
        TensorRTBackend(cut)
