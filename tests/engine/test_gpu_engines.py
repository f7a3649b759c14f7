"""TensorRT engines on a real GPU (``gpu``-marked; skipped without a CUDA device), beyond the
self-test's checks (tests/selftest/test_selftest_gpu.py): engine caching and rebuilds, the
recipe's INT8 engine on each TensorRT line, the Detector on TensorRT, parser and truncation errors.

Everything here uses the self-test bundle shipped in the package (no torch, no export), so a
Jetson or T4 with only the runtime installed runs it: ``python -m pytest -m gpu``. Never run by
us: no development machine has a GPU.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from rtdetr_edge import selftest
from rtdetr_edge._optional import available
from rtdetr_edge.backends import trt_logging
from rtdetr_edge.bundle import Bundle
from rtdetr_edge.engine import BundleEngines
from rtdetr_edge.engine_format import BatchProfile, load_sidecar, sidecar_path
from rtdetr_edge.engine_recipe import EngineBuildOptions, tensorrt_line
from rtdetr_edge.errors import EngineError
from tests.helpers import REPO


def _need_tensorrt() -> None:
    if not trt_logging.tensorrt_usable():
        pytest.skip("needs TensorRT and a CUDA GPU")


@pytest.fixture()
def bundle(tmp_path: Path) -> Bundle:
    """A writable copy of the self-test bundle (engines are cached inside it)."""
    shutil.copytree(selftest.DATA / "bundle", tmp_path / "bundle")
    return Bundle(tmp_path / "bundle")


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    with np.load(selftest.DATA / "reference.npz") as npz:
        return np.asarray(npz["images"])


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
def test_gpu_engine_is_cached_and_rebuilt_for_another_tensorrt(bundle: Bundle) -> None:
    _need_tensorrt()
    from rtdetr_edge.backends.tensorrt import TensorRTBackend
    from rtdetr_edge.engine import engine_for_bundle

    options = EngineBuildOptions(batch=BatchProfile(1, 2, 4))
    path = engine_for_bundle(bundle, "fp16", options)
    meta = load_sidecar(path)
    assert meta is not None and meta.precision == "fp16" and meta.batch.as_tuple() == (1, 2, 4)
    assert meta.contract_json == bundle.contract.to_json() and path.parent == bundle.engines_dir
    stamp = path.stat().st_mtime_ns
    assert engine_for_bundle(bundle, "fp16", options) == path and path.stat().st_mtime_ns == stamp
    side = sidecar_path(path)
    d = json.loads(side.read_text())
    d["tensorrt_version"] = "8.6.0.0"  # pretend another TensorRT built it
    side.write_text(json.dumps(d))
    with pytest.raises(EngineError, match=r"built with TensorRT 8\.6\.0\.0"):
        TensorRTBackend(path)
    assert engine_for_bundle(bundle, "fp16", options) == path and path.stat().st_mtime_ns != stamp
    assert load_sidecar(path).tensorrt_version == trt_logging.tensorrt_version()  # type: ignore[union-attr]


@pytest.mark.gpu
def test_gpu_int8_engine_follows_the_recipe(bundle: Bundle) -> None:
    """INT8 from the Q/DQ graph the recipe names for this TensorRT line; its sidecar records the decision."""
    _need_tensorrt()
    from rtdetr_edge.engine import engine_for_bundle

    path = engine_for_bundle(bundle, "int8", EngineBuildOptions(batch=BatchProfile(1, 1, 4)))
    meta = load_sidecar(path)
    assert meta is not None and meta.int8_mode == "qdq"
    line = tensorrt_line(trt_logging.tensorrt_version())
    want = "model.int8.qdq.trt8.onnx" if line == "8.6" else "model.int8.qdq.onnx"
    assert meta.recipe["source"] == want and meta.recipe["strongly_typed"] == (line != "8.6")


@pytest.mark.gpu
def test_gpu_detector_on_tensorrt(bundle: Bundle) -> None:
    _need_tensorrt()
    from rtdetr_edge import Detector
    from rtdetr_edge.data.synth import render_scene

    scene = render_scene(np.random.default_rng(5), 96, 80)[0]
    with Detector(bundle.path, backend="tensorrt", precision="fp32", conf=0.0, engines=BundleEngines()) as det:
        dets = det(scene)
        assert det.backend.name == "tensorrt" and len(dets) > 0
        assert set(dets.labels) <= set(bundle.contract.class_names)
        batch = det([scene, scene[:, ::-1].copy()])
        assert len(batch) == 2
    if available("onnxruntime"):
        with Detector(bundle.path, backend="onnxruntime", conf=0.0) as ort:
            ref = ort(scene)
        top = np.argsort(-ref.scores)[:10]
        got = np.argsort(-dets.scores)[:20]
        assert np.isin(ref.class_ids[top], dets.class_ids[got]).all()


@pytest.mark.gpu
def test_gpu_unparsable_and_truncated_engines_are_explained(tmp_path: Path, bundle: Bundle) -> None:
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
        bundle.onnx_path("fp32"), tmp_path / "t.engine", "fp32", EngineBuildOptions(batch=BatchProfile(1, 1, 1))
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
