"""TensorRT engines: everything that needs no GPU runs here; ``gpu`` tests run on a Jetson/T4.

CPU: batch-profile arithmetic, sidecar metadata and validation, cache keys, version/GPU refusal
messages, the memory kind per device, build plans per TensorRT version, calibration caches for
the running version (fake ``tensorrt`` module), option parsing, missing-TensorRT errors,
truncated engines, ONNX inspection, the CUDA check script's skip path.

GPU (``@pytest.mark.gpu``, and skipped without real TensorRT): fp16/int8 builds from a bundle,
cached reuse and rebuild for another version, Detector parity TensorRT vs ONNX Runtime, zero-copy
buffers, CUDA graph replay, parser errors with node names, truncated engines in TensorRT itself.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from rtdetr_edge.bundle import Bundle, write_bundle
from rtdetr_edge.contract import METADATA_KEY, ModelContract, Preprocessing
from rtdetr_edge.cuda.buffers import choose_memory_kind
from rtdetr_edge.engine import trt_api
from rtdetr_edge.engine.cache import int8_source, inspect_onnx
from rtdetr_edge.engine.metadata import (
    BatchProfile,
    EngineMetadata,
    cache_key,
    check_compatible,
    check_engine_file,
    engine_file_name,
    incompatibility,
    load_sidecar,
    resolve_shape,
    sidecar_path,
    version_tuple,
    volume,
)
from rtdetr_edge.engine.options import DEFAULT_FP32_LAYERS, EngineOptions, add_engine_arguments, plan_build
from rtdetr_edge.errors import CalibrationError, EngineError, InputError, MissingDependencyError

REPO = Path(__file__).resolve().parents[2]
CONTRACT = ModelContract(Preprocessing(64, 64), ("circle", "square"))


# --- fixtures and helpers ---------------------------------------------------------------------

@pytest.fixture()
def fake_trt(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A stand-in ``tensorrt`` module: a version string and the names load_tensorrt looks for."""
    mod = types.ModuleType("tensorrt")
    mod.__version__ = "10.3.0.30"  # type: ignore[attr-defined]
    mod.Builder = object  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorrt", mod)
    return mod


@pytest.fixture()
def no_trt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import raises ImportError


def _meta(**kw: Any) -> EngineMetadata:
    base: dict[str, Any] = dict(tensorrt_version="10.3.0.30", gpu_name="Orin", compute_capability="8.7",
                                precision="fp16", int8_mode="none", batch=BatchProfile(1, 1, 8), onnx_sha256="ab" * 32,
                                contract_json=CONTRACT.to_json())
    base.update(kw)
    return EngineMetadata(**base)


def _engine_with_sidecar(tmp_path: Path, size: int = 256, **meta: Any) -> Path:
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0" * size)
    _meta(engine_bytes=size, **meta).save(sidecar_path(engine))
    return engine


def _tiny_onnx(path: Path, qdq: bool = False, fp16: bool = False) -> Path:
    """images[N,3,8,8] -> post/sigmoid -> Softmax -> (Q/DQ) -> (Cast fp16 -> Cast fp32) -> scores."""
    nodes = [helper.make_node("Sigmoid", ["images"], ["post/probs"], name="post/sigmoid"),
             helper.make_node("Softmax", ["post/probs"], ["sm_out"], name="/dec/Softmax", axis=1)]
    inits = []
    last = "sm_out"
    if qdq:
        inits += [helper.make_tensor("s", TensorProto.FLOAT, [], [0.01]),
                  helper.make_tensor("z", TensorProto.INT8, [], [0])]
        nodes += [helper.make_node("QuantizeLinear", [last, "s", "z"], ["q"], name="q"),
                  helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"], name="dq")]
        last = "dq"
    if fp16:
        nodes += [helper.make_node("Cast", [last], ["h"], name="to_half", to=TensorProto.FLOAT16),
                  helper.make_node("Cast", ["h"], ["f"], name="to_float", to=TensorProto.FLOAT)]
        last = "f"
    nodes.append(helper.make_node("Identity", [last], ["scores"], name="out"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, {METADATA_KEY: CONTRACT.to_json()})
    onnx.save(model, str(path))
    return path


def _fake_bundle(tmp_path: Path, qdq: bool = True, ranges: bool = True) -> Bundle:
    files: dict[str, Any] = {"model.onnx": b"fp32"}
    int8: dict[str, Any] = {"file": "model.int8.qdq.onnx" if qdq else "model.onnx", "precision": "int8"}
    if qdq:
        files["model.int8.qdq.onnx"] = b"qdq"
    if ranges:
        files["calib/ranges.json"] = json.dumps({"format": "rtdetr-edge-int8-ranges", "version": 1,
                                                 "ranges": {"images": 1.0}}).encode()
        int8["ranges"] = "calib/ranges.json"
    meta = {"contract": CONTRACT.to_dict(), "artifacts": {"fp32": {"file": "model.onnx"}, "int8": int8}}
    return Bundle(write_bundle(tmp_path / "bundle", meta, files))


# --- batch profiles and shapes ----------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("1,1,8", (1, 1, 8)), ("4", (4, 4, 4)), (" 1, 2, 16", (1, 2, 16)), ("2,2,2", (2, 2, 2)),
    ("8,1,1", "MIN <= OPT <= MAX"), ("0,1,1", "MIN <= OPT"), ("1,2", "three numbers"), ("a,b,c", "integers"),
    ("", "integers"),
])
def test_batch_profile_parse(text: str, expected: Any) -> None:
    if isinstance(expected, tuple):
        assert BatchProfile.parse(text).as_tuple() == expected
    else:
        with pytest.raises(InputError, match=expected):
            BatchProfile.parse(text)


@pytest.mark.parametrize("value, expected", [
    (BatchProfile(1, 2, 4), (1, 2, 4)), ("1,1,8", (1, 1, 8)), (3, (3, 3, 3)), ((1, 4, 8), (1, 4, 8)), ([2], (2, 2, 2)),
])
def test_batch_profile_coerce(value: Any, expected: tuple[int, int, int]) -> None:
    assert BatchProfile.coerce(value).as_tuple() == expected


def test_batch_profile_coerce_rejects_other_types() -> None:
    with pytest.raises(InputError):
        BatchProfile.coerce(1.5)
    with pytest.raises(InputError):
        BatchProfile.coerce(True)


@pytest.mark.parametrize("profile, bounds, expected", [
    ((1, 1, 8), (1, 0), (1, 1, 8)),     # dynamic graph, unbounded contract
    ((1, 1, 8), (1, 1), (1, 1, 1)),     # static batch-1 graph
    ((1, 4, 8), (1, 4), (1, 4, 4)),     # contract max 4
    ((1, 1, 8), (2, 0), (2, 2, 8)),     # contract min 2
    ((1, 1, 1), (4, 4), (4, 4, 4)),     # static batch-4 graph
])
def test_batch_profile_clamp(profile: tuple[int, int, int], bounds: tuple[int, int],
                             expected: tuple[int, int, int]) -> None:
    assert BatchProfile(*profile).clamp(*bounds).as_tuple() == expected


def test_profile_shapes_and_dynamic_error() -> None:
    lo, opt, hi = BatchProfile(1, 2, 4).shapes((3, 64, 64))
    assert (lo, opt, hi) == ((1, 3, 64, 64), (2, 3, 64, 64), (4, 3, 64, 64))
    assert BatchProfile(1, 1, 8).static is False and BatchProfile(2, 2, 2).static
    with pytest.raises(EngineError, match="only the batch may be dynamic"):
        BatchProfile(1, 1, 2).shapes((3, -1, 64))


def test_resolve_shape_and_volume() -> None:
    assert resolve_shape((-1, 300, 4), 3) == (3, 300, 4)
    assert resolve_shape((2, 300), 5) == (2, 300)
    with pytest.raises(EngineError, match="dynamic axes"):
        resolve_shape((-1, -1), 2, "boxes")
    assert volume((2, 3, 4)) == 24 and volume(()) == 1


# --- cache keys, names, sidecars ---------------------------------------------------------------

KEY_ARGS: dict[str, Any] = dict(onnx_sha256="a" * 64, precision="fp16", trt_version="10.3.0.30", gpu_name="Orin",
                                compute_capability="8.7", batch=BatchProfile(1, 1, 8), dla_core=None,
                                int8_mode="none", extra=None)


@pytest.mark.parametrize("field, other", [
    ("onnx_sha256", "b" * 64), ("precision", "int8"), ("trt_version", "10.3.0.31"), ("gpu_name", "Xavier"),
    ("compute_capability", "7.2"), ("batch", BatchProfile(1, 1, 4)), ("dla_core", 0), ("int8_mode", "qdq"),
    ("extra", {"fp32_layers": ["Softmax"]}),
])
def test_cache_key_changes_with_every_field(field: str, other: Any) -> None:
    base = cache_key(**KEY_ARGS)
    assert base == cache_key(**KEY_ARGS) and len(base) == 16
    assert cache_key(**{**KEY_ARGS, field: other}) != base


def test_engine_file_name() -> None:
    name = engine_file_name("fp16", BatchProfile(1, 1, 8), "10.3.0.30", "8.7", "0123456789abcdef")
    assert name == "fp16_b1-1-8_trt10.3.0_sm87_0123456789abcdef.engine"
    assert "_dla1_" in engine_file_name("int8", BatchProfile(1, 1, 1), "8.6.1.6", "7.2", "k", dla_core=1)


def test_sidecar_round_trip_carries_the_contract(tmp_path: Path) -> None:
    engine = _engine_with_sidecar(tmp_path, 100, precision="int8", int8_mode="qdq", dla_core=0)
    d = json.loads(sidecar_path(engine).read_text())
    assert d[METADATA_KEY] == CONTRACT.to_json() and d["batch"] == [1, 1, 8] and d["format"] == "rtdetr-edge-engine"
    meta = load_sidecar(engine)
    assert meta is not None and meta.precision == "int8" and meta.int8_mode == "qdq" and meta.dla_core == 0
    assert ModelContract.from_json(meta.contract_json or "").class_names == ("circle", "square")
    assert load_sidecar(tmp_path / "none.engine") is None


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"format": "other"}', "not an rtdetr-edge engine sidecar"),
    ('{"format": "rtdetr-edge-engine", "format_version": 9}', "unknown engine sidecar version 9"),
    ('{"format": "rtdetr-edge-engine", "format_version": 1}', "invalid engine sidecar"),
])
def test_bad_sidecars(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "x.json").write_text(content)
    with pytest.raises(EngineError, match=message):
        load_sidecar(tmp_path / "x.engine")


def test_metadata_rejects_unknown_precision() -> None:
    with pytest.raises(EngineError, match="precision"):
        _meta(precision="int4")


# --- version / GPU refusal --------------------------------------------------------------------

@pytest.mark.parametrize("running, message", [
    (("10.3.0.30", "Orin", "8.7"), None),
    (("8.6.2.3", "Orin", "8.7"), "built with TensorRT 10.3.0.30 and this machine runs TensorRT 8.6.2.3"),
    (("10.3.0.31", "Orin", "8.7"), "only loads in the TensorRT version that built it"),
    (("10.3.0.30", "Tesla T4", "7.5"), "compute capability 8.7) and this GPU is a Tesla T4 (compute capability 7.5)"),
    (("10.3.0.30", "NVIDIA A10", "8.7"), "built on a Orin and this GPU is a NVIDIA A10"),
])
def test_incompatibility_messages(running: tuple[str, str, str], message: str | None) -> None:
    why = incompatibility(_meta(), *running)
    if message is None:
        assert why is None
        check_compatible(_meta(), *running)
    else:
        assert why is not None and message in why
        with pytest.raises(EngineError, match="Rebuild it on this machine"):
            check_compatible(_meta(), *running, engine="m.engine")


def test_truncated_empty_missing_and_altered_engine_files(tmp_path: Path) -> None:
    engine = _engine_with_sidecar(tmp_path, 256)
    meta = load_sidecar(engine)
    assert check_engine_file(engine, meta) == 256
    engine.write_bytes(b"\0" * 100)
    with pytest.raises(EngineError, match="truncated or altered: 100 bytes, its sidecar says 256"):
        check_engine_file(engine, meta)
    engine.write_bytes(b"")
    with pytest.raises(EngineError, match="empty"):
        check_engine_file(engine, meta)
    with pytest.raises(EngineError, match="no such engine file"):
        check_engine_file(tmp_path / "gone.engine", None)
    engine.write_bytes(b"\1" * 256)
    assert meta is not None
    meta.engine_sha256 = "0" * 64
    with pytest.raises(EngineError, match="sha256"):
        check_engine_file(engine, meta, verify_hash=True)


# --- memory kinds -----------------------------------------------------------------------------

@pytest.mark.parametrize("integrated, can_map, requested, expected", [
    (True, True, "auto", "mapped"),      # Jetson: zero-copy
    (True, False, "auto", "pinned"),
    (False, True, "auto", "pinned"),     # T4: mapped memory would cross PCIe in every kernel
    (False, False, "auto", "pinned"),
    (False, True, "mapped", "mapped"),
    (True, True, "pinned", "pinned"),
    (False, False, "mapped", "cannot map host memory"),
    (True, True, "unified", "expected one of"),
])
def test_choose_memory_kind(integrated: bool, can_map: bool, requested: str, expected: str) -> None:
    if expected in ("mapped", "pinned"):
        assert choose_memory_kind(integrated, can_map, requested) == expected
    else:
        with pytest.raises((EngineError, InputError), match=expected):
            choose_memory_kind(integrated, can_map, requested)


def test_no_gpu_means_zero_devices_and_a_clear_error() -> None:
    from rtdetr_edge.cuda import buffers

    if buffers.device_count() > 0:
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(EngineError, match="CUDA device 0 is not available"):
        buffers.device_properties(0)


# --- options and CLI flags --------------------------------------------------------------------

def test_engine_options_defaults_and_validation() -> None:
    o = EngineOptions()
    assert o.batch.as_tuple() == (1, 1, 8) and o.int8_mode == "auto" and o.fp32_layers == DEFAULT_FP32_LAYERS
    assert EngineOptions(batch="1,4,16").batch.as_tuple() == (1, 4, 16)  # type: ignore[arg-type]
    assert EngineOptions(fp32_layers="Softmax,post/*").fp32_layers == ("Softmax", "post/*")  # type: ignore[arg-type]
    bads: list[dict[str, Any]] = [dict(workspace_mib=0), dict(builder_optimization_level=6), dict(dla_core=-1),
                                  dict(int8_mode="ptq"), dict(device=-1), dict(batch="4,2,1")]
    for bad in bads:
        with pytest.raises(InputError):
            EngineOptions(**bad)
    assert EngineOptions().to_dict()["batch"] == [1, 1, 8]
    custom = EngineOptions(batch=BatchProfile(1, 2, 4), workspace_mib=256, dla_core=1, fp32_layers=("Softmax",))
    assert EngineOptions(**custom.to_dict()) == custom  # the dict form travels through build options / JSON


def test_engine_arguments_follow_trtexec_habits() -> None:
    p = argparse.ArgumentParser()
    add_engine_arguments(p)
    args = p.parse_args(["--batch", "1,4,8", "--workspace", "512", "--timing-cache", "t.cache", "--builder-opt-level",
                         "5", "--dla-core", "0", "--int8-mode", "qdq", "--fp32-layers", "none", "--cuda-graph"])
    o = EngineOptions.from_args(args)
    assert (o.batch.as_tuple(), o.workspace_mib, o.timing_cache, o.builder_optimization_level, o.dla_core,
            o.int8_mode, o.fp32_layers, o.cuda_graph) == ((1, 4, 8), 512, "t.cache", 5, 0, "qdq", (), True)
    assert EngineOptions.from_args(p.parse_args([])) == EngineOptions()
    assert EngineOptions.from_args(p.parse_args(["--batch", "2"])).batch.as_tuple() == (2, 2, 2)
    for bad in (["--batch", "8,1,1"], ["--builder-opt-level", "9"], ["--int8-mode", "minmax"]):
        with pytest.raises(SystemExit):
            p.parse_args(bad)
    # rtdetr-detect/bench keep their own --batch (images per call)
    q = argparse.ArgumentParser()
    q.add_argument("--batch", type=int, default=1)
    add_engine_arguments(q, batch_flag="--engine-batch")
    args = q.parse_args(["--batch", "4", "--engine-batch", "1,4,8"])
    assert args.batch == 4 and EngineOptions.from_args(args).batch.as_tuple() == (1, 4, 8)


# --- build plans per TensorRT version ---------------------------------------------------------

def _plan(version: str, precision: str, qdq: bool = False, fp16: bool = False, ranges: bool = False,
          calibrator: bool = False, **opts: Any) -> Any:
    return plan_build(version, precision, EngineOptions(**opts), onnx_has_qdq=qdq, onnx_has_fp16=fp16,
                      has_ranges=ranges, has_calibrator=calibrator)


@pytest.mark.parametrize("version, precision, kw, mode, net, flags, constraints, source, strong", [
    ("8.6.1.6", "fp32", {}, "none", ("EXPLICIT_BATCH",), (), False, None, False),
    ("10.3.0.30", "fp32", {}, "none", (), (), False, None, False),
    ("11.1.0.106", "fp32", {}, "none", (), (), False, None, True),
    ("8.5.2", "fp16", {}, "none", ("EXPLICIT_BATCH",), ("FP16", "PREFER_PRECISION_CONSTRAINTS"), True, None, False),
    ("10.3.0", "fp16", {}, "none", (), ("FP16", "PREFER_PRECISION_CONSTRAINTS"), True, None, False),
    ("10.3.0", "fp16", {"fp32_layers": ()}, "none", (), ("FP16",), False, None, False),
    ("10.3.0", "fp16", {"fp16": True}, "none", ("STRONGLY_TYPED",), (), False, None, True),
    ("11.1.0", "fp16", {"fp16": True}, "none", (), (), False, None, True),
    ("10.3.0", "fp16", {"dla_core": 0}, "none", (), ("FP16", "PREFER_PRECISION_CONSTRAINTS", "GPU_FALLBACK"), True,
     None, False),
    ("10.3.0", "int8", {"qdq": True}, "qdq", ("STRONGLY_TYPED",), (), False, None, True),
    ("11.4.1", "int8", {"qdq": True}, "qdq", (), (), False, None, True),
    ("8.6.1", "int8", {"qdq": True}, "qdq", ("EXPLICIT_BATCH",), ("INT8", "FP16", "PREFER_PRECISION_CONSTRAINTS"), True,
     None, False),
    ("8.6.1", "int8", {"ranges": True}, "implicit", ("EXPLICIT_BATCH",),
     ("INT8", "FP16", "PREFER_PRECISION_CONSTRAINTS"), True, "calibrator", False),
    ("10.3.0", "int8", {"ranges": True}, "implicit", (), ("INT8", "FP16", "PREFER_PRECISION_CONSTRAINTS"), True,
     "calibrator", False),
    ("10.3.0", "int8", {"ranges": True, "int8_dynamic_range": True}, "implicit", (),
     ("INT8", "FP16", "PREFER_PRECISION_CONSTRAINTS"), True, "dynamic_range", False),
    ("10.3.0", "int8", {"calibrator": True, "int8_mode": "implicit"}, "implicit", (),
     ("INT8", "FP16", "PREFER_PRECISION_CONSTRAINTS"), True, "calibrator", False),
])
def test_plan_build(version: str, precision: str, kw: dict[str, Any], mode: str, net: tuple[str, ...],
                    flags: tuple[str, ...], constraints: bool, source: str | None, strong: bool) -> None:
    plan = _plan(version, precision, **kw)
    assert (plan.int8_mode, plan.network_flags, plan.builder_flags, plan.layer_constraints, plan.int8_source,
            plan.strongly_typed) == (mode, net, flags, constraints, source, strong)


def test_fp32_plan_turns_tf32_off() -> None:
    assert _plan("10.3.0", "fp32").clear_flags == ("TF32",)


@pytest.mark.parametrize("version, precision, kw, message", [
    ("8.4.3", "fp32", {}, "too old"),
    ("10.3.0", "bf16", {}, "expected one of"),
    ("10.3.0", "fp32", {"dla_core": 0}, "DLA runs FP16 or INT8 only"),
    ("10.3.0", "fp32", {"qdq": True}, "fp32 engine needs the fp32 ONNX"),
    ("11.1.0", "fp16", {}, "model.fp16.onnx"),
    ("11.1.0", "int8", {"ranges": True}, "only from an explicitly quantized"),
    ("11.1.0", "int8", {"ranges": True, "int8_mode": "implicit"}, "removed calibrators"),
    ("10.3.0", "int8", {}, "neither"),
    ("10.3.0", "int8", {"int8_mode": "qdq", "ranges": True}, "no QuantizeLinear"),
    ("10.3.0", "int8", {"int8_mode": "implicit", "qdq": True}, "already quantized"),
    ("10.3.0", "int8", {"int8_mode": "implicit"}, "needs calibration ranges"),
    ("10.3.0", "int8", {"int8_mode": "implicit", "calibrator": True, "int8_dynamic_range": True},
     "--int8-dynamic-range needs calibration ranges"),
])
def test_plan_build_refusals(version: str, precision: str, kw: dict[str, Any], message: str) -> None:
    with pytest.raises(EngineError, match=message):
        _plan(version, precision, **kw)


# --- INT8 sources in a bundle -----------------------------------------------------------------

@pytest.mark.parametrize("qdq, ranges, major, mode, expected", [
    (True, True, 10, "auto", ("model.int8.qdq.onnx", False, "qdq")),
    (True, True, 8, "auto", ("model.onnx", True, "implicit")),
    (True, False, 8, "auto", ("model.int8.qdq.onnx", False, "qdq")),
    (False, True, 10, "auto", ("model.onnx", True, "implicit")),
    (True, True, 10, "implicit", ("model.onnx", True, "implicit")),
    (False, True, 10, "qdq", "no Q/DQ ONNX"),
    (True, False, 10, "implicit", "needs calib/ranges.json"),
])
def test_int8_source_in_bundle(tmp_path: Path, qdq: bool, ranges: bool, major: int, mode: str, expected: Any) -> None:
    bundle = _fake_bundle(tmp_path, qdq=qdq, ranges=ranges)
    if isinstance(expected, str):
        with pytest.raises(EngineError, match=expected):
            int8_source(bundle, major, mode)
        return
    onnx_path, ranges_path, resolved = int8_source(bundle, major, mode)
    assert (onnx_path.name, ranges_path is not None, resolved) == expected


def test_int8_needs_an_int8_artifact(tmp_path: Path) -> None:
    bundle = Bundle(write_bundle(tmp_path / "b", {"contract": CONTRACT.to_dict(),
                                                  "artifacts": {"fp32": {"file": "model.onnx"}}},
                                 {"model.onnx": b"x"}))
    with pytest.raises(EngineError, match="no int8 artifact"):
        int8_source(bundle, 10, "auto")


# --- calibration caches for the running TensorRT ----------------------------------------------

@pytest.mark.parametrize("version, header", [
    ("10.3.0.30", "TRT-100300-EntropyCalibration2"), ("8.6.1.6", "TRT-8601-EntropyCalibration2"),
    ("10.13.0.35", "TRT-101300-EntropyCalibration2"),
])
def test_native_cache_is_written_for_the_running_version(fake_trt: types.ModuleType, version: str,
                                                         header: str) -> None:
    fake_trt.__version__ = version  # type: ignore[attr-defined]
    text = trt_api.native_cache_text({"images": 1.0, "post/probs": 1.0})
    lines = text.splitlines()
    assert lines[0] == header
    assert lines[1] == "images: 3c010204"  # 1/127 as IEEE float32, most significant byte first
    assert trt_api._cache_matches(text.encode(), version)
    assert not trt_api._cache_matches(text.encode(), "10.4.0")
    assert not trt_api._cache_matches(b"garbage", version)


def test_no_native_cache_on_tensorrt_11(fake_trt: types.ModuleType) -> None:
    fake_trt.__version__ = "11.1.0.106"  # type: ignore[attr-defined]
    with pytest.raises(CalibrationError, match="no calibrator API"):
        trt_api.native_cache_text({"images": 1.0})


# --- TensorRT missing or not usable -----------------------------------------------------------

def test_missing_tensorrt_names_the_route(no_trt: None, tmp_path: Path) -> None:
    from rtdetr_edge.backends import open_backend
    from rtdetr_edge.backends.tensorrt import TensorRTBackend

    for call in (lambda: trt_api.load_tensorrt(), lambda: TensorRTBackend(tmp_path / "m.engine"),
                 lambda: open_backend("tensorrt", tmp_path / "m.engine")):
        with pytest.raises(MissingDependencyError) as info:
            call()
        assert "JetPack's system TensorRT" in str(info.value) and "pip install tensorrt" in str(info.value)
    assert trt_api.tensorrt_usable() is False


def test_type_stubs_alone_are_not_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    """tensorrt-stubs installs a ``tensorrt`` directory that imports as an empty namespace package."""
    stub = types.ModuleType("tensorrt")
    stub.__path__ = ["/site-packages/tensorrt"]
    monkeypatch.setitem(sys.modules, "tensorrt", stub)
    with pytest.raises(MissingDependencyError, match="type stubs only"):
        trt_api.load_tensorrt()
    assert trt_api.tensorrt_usable() is False


def test_detector_on_an_engine_without_tensorrt(no_trt: None, tmp_path: Path) -> None:
    from rtdetr_edge import Detector

    engine = _engine_with_sidecar(tmp_path)
    with pytest.raises(MissingDependencyError, match="JetPack"):
        Detector(engine)


def test_backend_refuses_truncated_engine_before_loading(fake_trt: types.ModuleType, tmp_path: Path) -> None:
    from rtdetr_edge.backends.tensorrt import TensorRTBackend

    engine = _engine_with_sidecar(tmp_path, 256)
    engine.write_bytes(b"\0" * 10)
    with pytest.raises(EngineError, match="truncated"):
        TensorRTBackend(engine)


def test_backend_refuses_engine_from_another_tensorrt(fake_trt: types.ModuleType, tmp_path: Path) -> None:
    from rtdetr_edge.backends.tensorrt import TensorRTBackend

    engine = _engine_with_sidecar(tmp_path, 256, tensorrt_version="8.6.1.6")
    with pytest.raises(EngineError, match="built with TensorRT 8.6.1.6 and this machine runs TensorRT 10.3.0.30"):
        TensorRTBackend(engine)


def test_engine_for_bundle_without_gpu(fake_trt: types.ModuleType, tmp_path: Path) -> None:
    from rtdetr_edge.cuda import buffers
    from rtdetr_edge.engine import engine_for_bundle

    if buffers.device_count() > 0:
        pytest.skip("this machine has a CUDA device")
    bundle = _fake_bundle(tmp_path)
    with pytest.raises(EngineError, match="CUDA device 0 is not available"):
        engine_for_bundle(bundle, "fp32")
    with pytest.raises(InputError, match="precision"):
        engine_for_bundle(bundle, "best")


# --- ONNX inspection and parser messages ------------------------------------------------------

def test_inspect_onnx(tmp_path: Path) -> None:
    plain = inspect_onnx(_tiny_onnx(tmp_path / "a.onnx"), DEFAULT_FP32_LAYERS)
    assert plain.inputs == {"images": (-1, 3, 8, 8)} and plain.batch_bounds == (1, 0)
    assert not plain.has_qdq and not plain.has_fp16 and plain.contract_json == CONTRACT.to_json()
    assert plain.hints.fp32_nodes == {"post/sigmoid", "/dec/Softmax"}
    assert plain.hints.fp32_tensors == {"post/probs", "sm_out"}
    assert plain.hints.node_ops[:2] == ("Sigmoid", "Softmax") and len(plain.sha256) == 64
    mixed = inspect_onnx(_tiny_onnx(tmp_path / "b.onnx", qdq=True, fp16=True), ("post/*",))
    assert mixed.has_qdq and mixed.has_fp16 and mixed.hints.fp32_nodes == {"post/sigmoid"}
    with pytest.raises(EngineError, match="no such ONNX"):
        inspect_onnx(tmp_path / "none.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(EngineError, match="not a readable ONNX"):
        inspect_onnx(tmp_path / "bad.onnx")


def test_parser_errors_name_the_node() -> None:
    text = trt_api.format_parser_errors("m.onnx", [
        trt_api.ParserIssue(12, "/model/encoder/GridSample_3", "GridSample", "No importer registered", "UNSUPPORTED_NODE"),
        trt_api.ParserIssue(-1, "", "", "graph has no outputs")])
    assert "node 12 GridSample '/model/encoder/GridSample_3': No importer registered [UNSUPPORTED_NODE]" in text
    assert "the graph: graph has no outputs" in text and "--opset 16" in text


def test_fp32_pinning_and_dynamic_ranges_on_a_fake_network(fake_trt: types.ModuleType) -> None:
    """The matching rules of _pin_fp32/_set_dynamic_ranges, with a stand-in network."""
    fake_trt.float32, fake_trt.float16, fake_trt.int32 = "f32", "f16", "i32"  # type: ignore[attr-defined]
    fake_trt.LayerType = types.SimpleNamespace(CONSTANT="const", OTHER="other")  # type: ignore[attr-defined]

    class T:
        def __init__(self, name: str, dtype: str = "f32") -> None:
            self.name, self.dtype = name, dtype
            self.range: Any = None

        def set_dynamic_range(self, lo: float, hi: float) -> bool:
            self.range = (lo, hi)
            return True

    class L:
        def __init__(self, name: str, outs: list[T], kind: str = "other") -> None:
            self.name, self.outs, self.type = name, outs, kind
            self.num_outputs = len(outs)
            self.precision: Any = None
            self.types: dict[int, str] = {}

        def get_output(self, j: int) -> T:
            return self.outs[j]

        def set_output_type(self, j: int, dt: str) -> None:
            self.types[j] = dt

    layers = [L("post/sigmoid", [T("post/probs")]), L("post/sigmoid_1", [T("x")]), L("conv", [T("c")]),
              L("topk", [T("vals"), T("idx", "i32")]), L("post/shape", [T("s", "i32")]),
              L("w", [T("sm_out")]), L("post/const", [T("k")], "const")]
    net = types.SimpleNamespace(num_layers=len(layers), get_layer=lambda i: layers[i], num_inputs=1,
                                get_input=lambda i: T("images"))
    hints = trt_api.NetworkHints(fp32_nodes=frozenset({"post/sigmoid", "topk"}), fp32_tensors=frozenset({"sm_out"}))
    pinned = trt_api._pin_fp32(net, hints, ("post/*",))  # type: ignore[arg-type]
    assert pinned == 4  # post/sigmoid, post/sigmoid_1, topk (float output only), w (by tensor)
    assert layers[0].precision == "f32" and layers[1].precision == "f32" and layers[2].precision is None
    assert layers[3].types == {0: "f32"} and layers[4].precision is None and layers[6].precision is None
    assert layers[5].precision == "f32"
    done = trt_api._set_dynamic_ranges(net, {"post/probs": 1.0, "c": 2.5, "missing": 1.0})  # type: ignore[arg-type]
    assert done == 2 and layers[2].outs[0].range == (-2.5, 2.5)


# --- the prepared CUDA check script -----------------------------------------------------------

def test_cuda_check_script_skips_cleanly_without_gpu() -> None:
    from rtdetr_edge.cuda import buffers

    if buffers.device_count() > 0:
        pytest.skip("this machine has a CUDA device (the gpu test runs the script)")
    script = REPO / "benchmarks" / "cuda_buffers_check.py"
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("SKIP"), proc.stdout + proc.stderr
    proc = subprocess.run([sys.executable, str(script), "--require-gpu"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2


# ===== GPU: run on a Jetson or T4 with TensorRT (skipped here) =================================

def _major() -> int:
    return version_tuple(trt_api.tensorrt_version())[0]


def _need_tensorrt() -> None:
    if not trt_api.tensorrt_usable():
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
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "cuda_buffers_check.py"), "--require-gpu"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL" not in proc.stdout


@pytest.mark.gpu
def test_gpu_fp16_engine_from_bundle_is_cached_and_rebuilt_for_other_versions(tiny_bundle: Path) -> None:
    _need_tensorrt()
    from rtdetr_edge.engine import engine_for_bundle

    bundle = Bundle(tiny_bundle)
    if _major() >= 11 and "fp16" not in bundle.precisions:
        pytest.skip("TensorRT 11 builds fp16 from model.fp16.onnx, which this bundle lacks")
    path = engine_for_bundle(bundle, "fp16", batch="1,2,4")
    meta = load_sidecar(path)
    assert meta is not None and meta.precision == "fp16" and meta.batch.as_tuple() == (1, 2, 4)
    assert meta.contract_json == bundle.contract.to_json() and path.parent == bundle.engines_dir
    stamp = path.stat().st_mtime_ns
    assert engine_for_bundle(bundle, "fp16", batch="1,2,4") == path and path.stat().st_mtime_ns == stamp
    side = sidecar_path(path)
    d = json.loads(side.read_text())
    d["tensorrt_version"] = "8.6.0.0"  # pretend another TensorRT built it
    side.write_text(json.dumps(d))
    from rtdetr_edge.backends.tensorrt import TensorRTBackend

    with pytest.raises(EngineError, match="built with TensorRT 8.6.0.0"):
        TensorRTBackend(path)
    assert engine_for_bundle(bundle, "fp16", batch="1,2,4") == path and path.stat().st_mtime_ns != stamp
    assert load_sidecar(path).tensorrt_version == trt_api.tensorrt_version()  # type: ignore[union-attr]


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
            buf = np.empty((2, 3, bundle.contract.preprocessing.height, bundle.contract.preprocessing.width), np.float32)
            pre(imgs, out=buf)
            yield {bundle.contract.input_name: buf}

    cache = engine_dir / "calib.cache"
    calib = trt_api.make_calibrator(batches(), cache)
    out = build_engine(bundle.onnx_path("fp32"), engine_dir / "int8.engine", "int8",
                       EngineOptions(int8_mode="implicit", batch=BatchProfile(1, 1, 2)), calibrator=calib)
    assert load_sidecar(out).int8_mode == "implicit"  # type: ignore[union-attr]
    assert cache.read_text(errors="replace").startswith("TRT-")
    # second build reads the cache (no data left in the iterable: it must not ask for batches)
    again = build_engine(bundle.onnx_path("fp32"), engine_dir / "int8b.engine", "int8",
                         EngineOptions(int8_mode="implicit", batch=BatchProfile(1, 1, 2)), calibrator=trt_api.make_calibrator(
                             iter([{bundle.contract.input_name: np.zeros((2, 3, 64, 64), np.float32)}]), cache))
    assert again.is_file()


@pytest.mark.gpu
@pytest.mark.parametrize("precision, min_match", [("fp32", 1.0), ("fp16", 0.9)])
def test_gpu_detector_parity_with_onnxruntime(reference_bundle: Path, scene: np.ndarray, precision: str,
                                              min_match: float) -> None:
    _need_tensorrt()
    from rtdetr_edge import Detector

    if precision == "fp16" and _major() >= 11 and "fp16" not in Bundle(reference_bundle).precisions:
        pytest.skip("TensorRT 11 fp16 needs model.fp16.onnx")
    with Detector(reference_bundle, backend="onnxruntime", conf=0.4) as ort, \
            Detector(reference_bundle, backend="tensorrt", precision=precision, conf=0.4) as trt_det:
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
    mapped, pinned = TensorRTBackend(engine, memory="mapped"), TensorRTBackend(engine, memory="pinned")
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
    g, plain = TensorRTBackend(engine, cuda_graph=True), TensorRTBackend(engine)
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
def test_gpu_bad_inputs(tmp_path: Path, tiny_bundle: Path) -> None:
    _need_tensorrt()
    from rtdetr_edge.backends.tensorrt import TensorRTBackend
    from rtdetr_edge.engine import build_engine

    # an op TensorRT's parser does not know: the message names the node
    bad = helper.make_model(helper.make_graph(
        [helper.make_node("NoSuchOp", ["images"], ["y"], name="/model/odd_node", domain="custom.domain")], "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])]),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("custom.domain", 1)])
    onnx.save(bad, str(tmp_path / "bad.onnx"))
    with pytest.raises(EngineError, match="/model/odd_node"):
        build_engine(tmp_path / "bad.onnx", tmp_path / "bad.engine", "fp32")
    # a truncated engine without a sidecar reaches TensorRT, whose failure is explained
    good = build_engine(Bundle(tiny_bundle).onnx_path("fp32"), tmp_path / "t.engine", "fp32",
                        EngineOptions(batch=BatchProfile(1, 1, 1)))
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


def test_inspect_the_exported_bundle_onnx(tiny_bundle: Path) -> None:
    """The real exporter's graph: dynamic batch, contract inside, FP32 hints find LayerNorm/Softmax/post tail."""
    bundle = Bundle(tiny_bundle)
    facts = inspect_onnx(bundle.onnx_path("fp32"), DEFAULT_FP32_LAYERS, bundle.artifact("fp32").get("sha256"))
    assert list(facts.inputs) == [bundle.contract.input_name] and facts.inputs[bundle.contract.input_name][0] == -1
    assert facts.contract_json is not None
    assert ModelContract.from_json(facts.contract_json).class_names == bundle.contract.class_names
    assert not facts.has_qdq and not facts.has_fp16
    ops = dict(zip(facts.hints.node_names, facts.hints.node_ops))
    kept = {ops[n] for n in facts.hints.fp32_nodes}
    assert {"Softmax", "Sigmoid"} <= kept, kept
    assert any(n.startswith("post/") for n in facts.hints.fp32_nodes), sorted(facts.hints.fp32_nodes)[:10]
    assert set(bundle.contract.output_names) & facts.hints.fp32_tensors  # the tail ends in the outputs
