"""The builder on Polygraphy, without TensorRT: what each plan asks of Polygraphy's loaders, the steps
Polygraphy lacks (FP32 layer ownership, DLA core, calibration profile, profile check), parser
messages from Polygraphy's log, and the calibrators' data handling.

Polygraphy's loaders are replaced by recorders here (they would call TensorRT); Polygraphy's
logger and ``Calibrator`` are the real ones. TensorRT itself is not run.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rtdetr_edge.engine import builder, calibrators
from rtdetr_edge.engine.options import EngineBuildOptions, plan_build
from rtdetr_edge.engine_format import BatchProfile
from rtdetr_edge.errors import CalibrationError, EngineError
from tests.engine import fake_tensorrt as fake


@pytest.mark.parametrize(
    "layer, nodes, owner",
    [
        ("post/sigmoid", {"post/sigmoid"}, "post/sigmoid"),
        ("post/sigmoid_1", {"post/sigmoid"}, "post/sigmoid"),  # the node's second layer
        (
            "/dec/Softmax_1",
            {"/dec/Softmax", "/dec/Softmax_1"},
            "/dec/Softmax_1",
        ),  # another node, not a layer of the first
        ("/dec/Softmax_1_2", {"/dec/Softmax", "/dec/Softmax_1"}, "/dec/Softmax_1"),
        ("a_1_2", {"a"}, "a"),
        ("conv_out", {"conv"}, None),
        ("(Unnamed Layer* 3) [Shuffle]", {"conv"}, None),
    ],
)
def test_a_layer_belongs_to_the_longest_node_name_it_extends(layer: str, nodes: set[str], owner: str | None) -> None:
    assert builder.owning_node(layer, frozenset(nodes)) == owner


def test_pinning_a_node_does_not_pin_its_numbered_namesake(fake_trt: types.ModuleType) -> None:
    """The old ``rsplit("_", 1)`` rule pinned ``/dec/Softmax_1`` when only ``/dec/Softmax`` was asked for."""
    fake_trt.float32, fake_trt.float16 = "f32", "f16"  # type: ignore[attr-defined]
    fake_trt.LayerType = types.SimpleNamespace(CONSTANT="const")  # type: ignore[attr-defined]

    class L:
        type = "other"
        num_outputs, num_inputs = 1, 0

        def __init__(self, name: str) -> None:
            self.name, self.precision, self.out = name, None, types.SimpleNamespace(name=name + ":0", dtype="f32")

        def get_output(self, j: int) -> Any:
            return self.out

        def set_output_type(self, j: int, dt: str) -> None:
            pass

    layers = [L("/dec/Softmax"), L("/dec/Softmax_2"), L("/dec/Softmax_1")]
    net = types.SimpleNamespace(num_layers=3, get_layer=lambda i: layers[i])
    hints = builder.NetworkHints(node_names=("/dec/Softmax", "/dec/Softmax_1"), fp32_nodes=frozenset({"/dec/Softmax"}))
    assert builder._pin_fp32(net, hints, ()) == 2
    assert [ly.precision for ly in layers] == ["f32", "f32", None]


def test_parser_errors_are_read_from_polygraphy_lines_in_both_formats() -> None:
    lines = [
        "In node 1 (parseGraph): UNSUPPORTED_NODE: No importer registered for op: NoSuchOp",  # 8.6
        "In node 2 with name: /model/odd and operator: GridSample (checkNodeInput): INVALID_NODE: bad input",  # 10.x
        "Could not parse ONNX correctly",
    ]
    issues = builder.parser_issues(lines, ("a", "/model/x", "c"), ("Relu", "NoSuchOp", "GridSample"))
    assert issues == [
        builder.ParserIssue(1, "/model/x", "NoSuchOp", "No importer registered for op: NoSuchOp", "UNSUPPORTED_NODE"),
        builder.ParserIssue(2, "/model/odd", "GridSample", "bad input", "INVALID_NODE"),
    ]


def _plan(version: str, precision: str, **kw: Any) -> Any:
    qdq, ranges, fp16 = kw.pop("qdq", False), kw.pop("ranges", False), kw.pop("fp16", False)
    options = EngineBuildOptions(**kw)
    return plan_build(version, precision, options, onnx_has_qdq=qdq, onnx_has_fp16=fp16, has_ranges=ranges), options


@pytest.mark.parametrize(
    "version, precision, kw, expected",
    [
        ("10.3.0", "fp32", {}, dict(fp16=False, int8=False, tf32=False, precision_constraints=None)),
        ("10.3.0", "fp16", {}, dict(fp16=True, int8=False, tf32=True, precision_constraints="prefer")),
        ("10.3.0", "int8", {"qdq": True, "fp16": True}, dict(strongly_typed=True, fp16=False, int8=False, tf32=False)),
        ("10.3.0", "int8", {"qdq": True}, dict(strongly_typed=False, fp16=True, int8=True)),
        ("8.6.2", "int8", {"qdq": True}, dict(strongly_typed=False, fp16=True, int8=True, tf32=True)),
        ("8.6.2", "int8", {"ranges": True}, dict(int8=True, precision_constraints="prefer")),
        (
            "10.3.0",
            "fp16",
            {"dla_core": 1, "workspace_mib": 64, "builder_optimization_level": 2, "timing_cache": "t.cache"},
            dict(
                use_dla=True,
                gpu_fallback=True,
                dla_core=1,
                workspace_bytes=64 << 20,
                optimization_level=2,
                timing_cache="t.cache",
            ),
        ),
    ],
)
def test_each_plan_maps_to_polygraphy_arguments(
    version: str, precision: str, kw: dict[str, Any], expected: dict[str, Any]
) -> None:
    plan, options = _plan(version, precision, **kw)
    choice = builder.config_choice(plan, options)
    assert {k: getattr(choice, k) for k in expected} == expected


def test_an_unmapped_flag_is_an_internal_error() -> None:
    plan, options = _plan("10.3.0", "fp16")
    import dataclasses

    with pytest.raises(EngineError, match="does not map: SPARSE_WEIGHTS"):
        builder.config_choice(dataclasses.replace(plan, builder_flags=("SPARSE_WEIGHTS",)), options)


class Recorder:
    """Stand-ins for Polygraphy's loaders: record what the builder passes, run its callbacks."""

    def __init__(self, profiles: int = 1, dla_cores: int = 2, fail: str = "") -> None:
        self.calls: dict[str, Any] = {}
        self.profiles, self.dla_cores, self.fail = profiles, dla_cores, fail
        self.network = types.SimpleNamespace(name="net", num_layers=0)
        self.cfg = types.SimpleNamespace(num_optimization_profiles=profiles, DLA_core=0, calibration=None)
        self.cfg.set_calibration_profile = lambda p: setattr(self.cfg, "calibration", p)
        rec = self

        class NetworkFromOnnxPath:
            def __init__(self, path: str, strongly_typed: bool = False) -> None:
                rec.calls["network"] = (path, strongly_typed)

            def __call__(self) -> Any:
                return (object(), rec.network, object())

        class PostprocessNetwork:
            def __init__(self, network: Any, func: Any, name: str = "") -> None:
                self.inner, self.func = network, func
                rec.calls.setdefault("network_steps", []).append(name)

            def __call__(self) -> Any:
                out = self.inner()
                self.func(network=out[1])
                return out

        class CreateConfig:
            def __init__(self, **kwargs: Any) -> None:
                rec.calls["config"] = kwargs

        class PostprocessConfig:
            def __init__(self, config: Any, func: Any) -> None:
                self.func = func

            def __call__(self, builder: Any, network: Any) -> Any:
                self.func(builder, network, rec.cfg)
                return rec.cfg

        class Profile(dict[str, Any]):
            def add(self, name: str, lo: Any, mid: Any, hi: Any) -> Profile:
                self[name] = (tuple(lo), tuple(mid), tuple(hi))
                return self

            def to_trt(self, builder: Any, network: Any) -> dict[str, Any]:
                return dict(self)

        class EngineBytesFromNetwork:
            def __init__(self, network: Any, config: Any, save_timing_cache: Any = None) -> None:
                self.network, self.config = network, config
                rec.calls["save_timing_cache"] = save_timing_cache

            def __call__(self) -> bytes:
                _, net, _ = self.network()
                if rec.fail:
                    from polygraphy.exception import PolygraphyException
                    from polygraphy.logger import G_LOGGER

                    G_LOGGER.error(rec.fail)
                    raise PolygraphyException("Could not parse ONNX correctly")
                self.config(types.SimpleNamespace(num_DLA_cores=rec.dla_cores), net)
                return b"serialized"

        self.classes = dict(
            NetworkFromOnnxPath=NetworkFromOnnxPath,
            PostprocessNetwork=PostprocessNetwork,
            CreateConfig=CreateConfig,
            PostprocessConfig=PostprocessConfig,
            Profile=Profile,
            EngineBytesFromNetwork=EngineBytesFromNetwork,
        )


@pytest.fixture()
def polygraphy(monkeypatch: pytest.MonkeyPatch) -> Any:
    import polygraphy.backend.trt as ptrt

    fake.install(monkeypatch, "10.3.0.30")

    def make(**kw: Any) -> Recorder:
        rec = Recorder(**kw)
        for name, cls in rec.classes.items():
            monkeypatch.setattr(ptrt, name, cls)
        return rec

    return make


HINTS = builder.NetworkHints(
    node_names=("/m/a", "/m/b"), node_ops=("Relu", "NoSuchOp"), inputs={"images": (-1, 3, 8, 8)}
)


def test_builder_hands_polygraphy_the_profile_flags_and_cache_calibrator(polygraphy: Any, tmp_path: Path) -> None:
    rec = polygraphy()
    cache = tmp_path / "engines" / "t.cache"  # a bundle's engines/ folder before its first engine
    plan, options = _plan("10.3.0", "int8", ranges=True, timing_cache=str(cache))
    blob = builder.build_serialized_engine("m.onnx", plan, options, BatchProfile(1, 2, 4), HINTS, {"images": 1.0})
    assert blob == b"serialized"
    assert cache.parent.is_dir()  # Polygraphy's lock file (t.cache.lock) is opened in that folder
    cfg = rec.calls["config"]
    assert rec.calls["network"] == ("m.onnx", False)
    assert cfg["profiles"][0] == {"images": ((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8))}
    assert cfg["int8"] and cfg["fp16"] and cfg["precision_constraints"] == "prefer"
    assert cfg["load_timing_cache"] is None  # no file yet: Polygraphy would only warn
    assert rec.calls["save_timing_cache"] == str(cache)
    calib = cfg["calibrator"]  # the cache-only calibrator: every calibrator reaches CreateConfig
    assert calib.read_calibration_cache().startswith(b"TRT-100300-EntropyCalibration2")
    assert rec.calls["network_steps"] == ["keep layers in FP32"]


def test_builder_checks_the_profile_sets_the_dla_core_and_the_calibration_profile(polygraphy: Any) -> None:
    plan, options = _plan("10.3.0", "fp16")
    polygraphy(profiles=0)  # a rejected profile: add_optimization_profile returned -1
    with pytest.raises(EngineError, match="rejected the optimisation profile 1,2,4 for \\['images'\\]"):
        builder.build_serialized_engine("m.onnx", plan, options, BatchProfile(1, 2, 4), HINTS)
    rec = polygraphy()
    plan, options = _plan("10.3.0", "fp16", dla_core=1, batch=2)
    builder.build_serialized_engine("m.onnx", plan, options, BatchProfile(2, 2, 2), HINTS)
    assert rec.cfg.DLA_core == 1 and rec.calls["config"]["use_dla"] and rec.calls["config"]["allow_gpu_fallback"]
    polygraphy(dla_cores=1)
    with pytest.raises(EngineError, match="--dla-core 1: this device has 1 DLA core"):
        builder.build_serialized_engine("m.onnx", plan, options, BatchProfile(2, 2, 2), HINTS)

    rec = polygraphy()
    plan, options = _plan("10.3.0", "int8", ranges=True, int8_mode="implicit")
    feed = calibrators.make_calibrator([{"images": np.zeros((3, 3, 8, 8), np.float32)}], "calib.cache")
    feed.calibrator.free = lambda: None  # nothing was copied to a GPU
    builder.build_serialized_engine("m.onnx", plan, options, BatchProfile(1, 2, 4), HINTS, calibrator=feed)
    assert rec.calls["config"]["calibrator"] is feed.calibrator
    assert rec.cfg.calibration == {"images": ((3, 3, 8, 8),) * 3}  # calibrated at batch 3, not the OPT 2


def test_parser_failures_name_the_node_from_polygraphys_log(polygraphy: Any) -> None:
    polygraphy(fail="In node 1 (parseGraph): UNSUPPORTED_NODE: No importer registered for op: NoSuchOp")
    plan, options = _plan("10.3.0", "fp32")
    with pytest.raises(EngineError) as info:
        builder.build_serialized_engine("m.onnx", plan, options, BatchProfile(1, 1, 1), HINTS)
    text = str(info.value)
    assert "node 1 NoSuchOp '/m/b': No importer registered for op: NoSuchOp [UNSUPPORTED_NODE]" in text
    polygraphy(fail="some other failure")
    with pytest.raises(EngineError, match=r"could not build the fp32 engine from m\.onnx: some other failure"):
        builder.build_serialized_engine("m.onnx", plan, options, BatchProfile(1, 1, 1), HINTS)
    from polygraphy.logger import G_LOGGER

    assert not G_LOGGER.use_python_logging_system  # restored after the build


def test_cache_only_calibrator_serves_the_cache_and_no_data(monkeypatch: pytest.MonkeyPatch) -> None:
    fake.install(monkeypatch, "8.6.2")
    text = calibrators.native_cache_text({"images": 1.0, "x": 2.0})
    assert text.startswith("TRT-8602-EntropyCalibration2")  # JetPack 6.0's TensorRT reads only its own
    calib = calibrators.cache_only_calibrator(text)
    assert calib.read_calibration_cache() == text.encode()
    assert calib.get_batch(["images"]) is None  # no data: TensorRT must take the cache
    assert calib.get_batch_size() == 1  # what explicit-batch networks require


def test_device_calibrator_checks_batches_and_keeps_the_first_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake.install(monkeypatch, "10.3.0")
    good = {"images": np.ones((2, 3, 8, 8), np.float64)}
    feed = calibrators.make_calibrator(iter([good, good, {"images": np.ones((1, 3, 8, 8))}, good]), tmp_path / "c")
    batches = list(feed.calibrator.data_loader)
    assert len(batches) == 2 and batches[0]["images"].dtype == np.float32 and feed.seen == 2
    assert isinstance(
        feed.error, CalibrationError
    ) and "has shape (1, 3, 8, 8), the first batch had (2, 3, 8, 8)" in str(feed.error)
    with pytest.raises(CalibrationError, match="empty"):
        calibrators.make_calibrator([], tmp_path / "c")
