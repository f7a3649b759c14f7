"""The builder on Polygraphy, without TensorRT: what each recipe asks of Polygraphy's loaders, the steps
Polygraphy lacks (FP32 layer ownership, DLA core and strongly typed DLA, profile check), and parser
messages from Polygraphy's log.

Polygraphy's loaders are replaced by recorders here (they would call TensorRT); Polygraphy's
logger is the real one. TensorRT itself is not run.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest

from rtdetr_edge.engine import builder
from rtdetr_edge.engine_format import BatchProfile
from rtdetr_edge.engine_recipe import EngineBuildOptions, EngineRecipe, GraphSet, SourceGraph, recipe
from rtdetr_edge.errors import EngineError
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


GRAPHS = GraphSet(
    "b",
    tuple(
        SourceGraph(f, Path(f), "0" * 64, t)  # type: ignore[arg-type]
        for f, t in (
            ("m.onnx", "fp32"),
            ("m.fp16.onnx", "fp16"),
            ("m.int8.qdq.onnx", "int8-fp16"),
            ("m.int8.qdq.trt8.onnx", "int8-fp32"),
        )
    ),
)


def _recipe(version: str, precision: str, **kw: Any) -> EngineRecipe:
    return recipe(GRAPHS, precision, version, EngineBuildOptions(**kw))


@pytest.mark.parametrize(
    "version, precision, kw, expected",
    [
        ("10.3.0", "fp32", {}, dict(fp16=False, int8=False, tf32=False, precision_constraints=None)),
        ("8.6.2", "fp16", {}, dict(fp16=True, int8=False, tf32=True, precision_constraints="prefer")),
        ("10.3.0", "fp16", {}, dict(strongly_typed=True, fp16=False, int8=False, tf32=False)),
        ("10.3.0", "int8", {}, dict(strongly_typed=True, fp16=False, int8=False, tf32=False)),
        ("11.4.1", "int8", {}, dict(strongly_typed=False, fp16=False, int8=False, tf32=False)),  # 11: no flag needed
        ("8.6.2", "int8", {}, dict(strongly_typed=False, fp16=True, int8=True, tf32=True)),
        ("8.6.2", "int8", {"fp32_layers": ()}, dict(int8=True, precision_constraints=None)),
        (
            "10.3.0",
            "fp16",
            {"dla_core": 1, "workspace_mib": 64, "builder_optimization_level": 2, "batch": 1},
            dict(
                use_dla=True,
                direct_dla=False,
                gpu_fallback=True,
                dla_core=1,
                workspace_bytes=64 << 20,
                optimization_level=2,
            ),
        ),
        (
            "11.4.1",
            "fp16",
            {"dla_core": 0, "batch": 1},
            dict(use_dla=False, direct_dla=True, gpu_fallback=True, precision_constraints=None, int8=False),
        ),
    ],
)
def test_each_recipe_maps_to_polygraphy_arguments(
    version: str, precision: str, kw: dict[str, Any], expected: dict[str, Any]
) -> None:
    choice = builder.config_choice(_recipe(version, precision, **kw))
    assert {k: getattr(choice, k) for k in expected} == expected


def test_an_unmapped_flag_is_an_internal_error() -> None:
    import dataclasses

    r = _recipe("10.3.0", "fp16")
    with pytest.raises(EngineError, match="does not map: SPARSE_WEIGHTS"):
        builder.config_choice(dataclasses.replace(r, builder_flags=("SPARSE_WEIGHTS",)))


def test_fp32_pinning_on_a_fake_network(fake_trt: types.ModuleType) -> None:
    """The matching rules of _pin_fp32, with a stand-in network."""
    fake_trt.float32, fake_trt.float16, fake_trt.int32 = "f32", "f16", "i32"  # type: ignore[attr-defined]
    fake_trt.LayerType = types.SimpleNamespace(CONSTANT="const", OTHER="other")  # type: ignore[attr-defined]

    class T:
        def __init__(self, name: str, dtype: str = "f32") -> None:
            self.name, self.dtype = name, dtype

    class L:
        def __init__(self, name: str, outs: list[T], kind: str = "other", ins: tuple[T, ...] = ()) -> None:
            self.name, self.outs, self.type, self.ins = name, outs, kind, ins
            self.num_outputs, self.num_inputs = len(outs), len(ins)
            self.precision: Any = None
            self.types: dict[int, str] = {}

        def get_output(self, j: int) -> T:
            return self.outs[j]

        def get_input(self, k: int) -> T:
            return self.ins[k]

        def set_output_type(self, j: int, dt: str) -> None:
            self.types[j] = dt

    layers = [
        L("post/sigmoid", [T("post/probs")]),
        L("post/sigmoid_1", [T("x")]),
        L("conv", [T("c")]),
        L("topk", [T("vals"), T("idx", "i32")]),
        L("post/shape", [T("s", "i32")]),
        L("w", [T("sm_out")]),
        L("post/const", [T("k")], "const"),
        L("frame/cast", [T("frame/x")], ins=(T("frames", "u8"),)),
    ]
    net = types.SimpleNamespace(num_layers=len(layers), get_layer=lambda i: layers[i])
    hints = builder.NetworkHints(fp32_nodes=frozenset({"post/sigmoid", "topk"}), fp32_tensors=frozenset({"sm_out"}))
    pinned = builder._pin_fp32(net, hints, ("post/*", "frame/*"))
    assert pinned == 5  # post/sigmoid, post/sigmoid_1, topk (float output only), w (by tensor), frame/cast
    # the uint8 -> float Cast gets its output type only: no float compute precision on a uint8 read
    assert layers[7].precision is None and layers[7].types == {0: "f32"}
    assert layers[0].precision == "f32" and layers[1].precision == "f32" and layers[2].precision is None
    assert layers[3].types == {0: "f32"} and layers[4].precision is None and layers[6].precision is None
    assert layers[5].precision == "f32"


def _real_polygraphy() -> dict[str, Any]:
    import polygraphy.backend.trt as ptrt

    names = ("NetworkFromOnnxPath", "PostprocessNetwork", "CreateConfig", "PostprocessConfig", "EngineBytesFromNetwork")
    return {name: getattr(ptrt, name) for name in names}


REAL = _real_polygraphy()  # the installed Polygraphy's loaders, before any test replaces them


def _accepted(name: str, *args: Any, **kwargs: Any) -> None:
    """What the builder passes must bind to the installed Polygraphy's own signature (0.47.x's
    NetworkFromOnnxPath had no ``strongly_typed``: that is a TypeError here too)."""
    import inspect

    inspect.signature(REAL[name].__init__).bind(None, *args, **kwargs)


class Recorder:
    """Stand-ins for Polygraphy's loaders: record what the builder passes, run its callbacks.

    Each takes only what the installed Polygraphy's loader accepts (:func:`_accepted`), and calls
    its callbacks as Polygraphy does (0.53.6: a ``PostprocessNetwork`` func gets ``network=``,
    ``backend/trt/loader.py:466``; a ``PostprocessConfig`` func gets ``(builder, network, config)``,
    ``config.py:719``; ``EngineBytesFromNetwork`` makes the network, then the config with
    ``(builder, network)``, ``loader.py:751, 759``). TensorRT is not run.
    """

    def __init__(self, profiles: int = 1, dla_cores: int = 2, fail: str = "") -> None:
        self.calls: dict[str, Any] = {}
        self.profiles, self.dla_cores, self.fail = profiles, dla_cores, fail
        self.network = types.SimpleNamespace(name="net", num_layers=0)
        self.cfg = types.SimpleNamespace(num_optimization_profiles=profiles, DLA_core=0, default_device_type="gpu")
        self.cfg.flags = set()
        self.cfg.set_flag = self.cfg.flags.add
        rec = self

        class NetworkFromOnnxPath:
            def __init__(self, path: str, strongly_typed: bool = False) -> None:
                _accepted("NetworkFromOnnxPath", path, strongly_typed=strongly_typed)
                rec.calls["network"] = (path, strongly_typed)

            def __call__(self) -> Any:
                return (object(), rec.network, object())

        class PostprocessNetwork:
            def __init__(self, network: Any, func: Any, name: str = "") -> None:
                _accepted("PostprocessNetwork", network, func, name)
                self.inner, self.func = network, func
                rec.calls.setdefault("network_steps", []).append(name)

            def __call__(self) -> Any:
                out = self.inner()
                self.func(network=out[1])
                return out

        class CreateConfig:
            def __init__(self, **kwargs: Any) -> None:
                _accepted("CreateConfig", **kwargs)
                rec.calls["config"] = kwargs

        class PostprocessConfig:
            def __init__(self, config: Any, func: Any) -> None:
                _accepted("PostprocessConfig", config, func)
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
                _accepted("EngineBytesFromNetwork", network, config, save_timing_cache=save_timing_cache)
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

    def make(version: str = "10.3.0.30", **kw: Any) -> Recorder:
        trt = fake.install(monkeypatch, version)
        trt.DeviceType = types.SimpleNamespace(DLA="dla", GPU="gpu")  # type: ignore[attr-defined]
        trt.BuilderFlag = types.SimpleNamespace(GPU_FALLBACK="GPU_FALLBACK")  # type: ignore[attr-defined]
        rec = Recorder(**kw)
        for name, cls in rec.classes.items():
            monkeypatch.setattr(ptrt, name, cls)
        return rec

    return make


HINTS = builder.NetworkHints(
    node_names=("/m/a", "/m/b"), node_ops=("Relu", "NoSuchOp"), inputs={"images": (-1, 3, 8, 8)}
)


def test_builder_hands_polygraphy_the_profile_flags_and_pins(polygraphy: Any, tmp_path: Path) -> None:
    rec = polygraphy("8.6.2.3")
    cache = tmp_path / "engines" / "t.cache"  # a bundle's engines/ folder before its first engine
    r = _recipe("8.6.2.3", "int8", batch=BatchProfile(1, 2, 4))
    blob = builder.build_serialized_engine(r, HINTS, str(cache))
    assert blob == b"serialized"
    assert cache.parent.is_dir()  # Polygraphy's lock file (t.cache.lock) is opened in that folder
    cfg = rec.calls["config"]
    assert rec.calls["network"] == ("m.int8.qdq.trt8.onnx", False)
    assert cfg["profiles"][0] == {"images": ((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8))}
    assert cfg["int8"] and cfg["fp16"] and cfg["precision_constraints"] == "prefer" and cfg["tf32"]
    assert cfg["load_timing_cache"] is None  # no file yet: Polygraphy would only warn
    assert "calibrator" not in cfg  # INT8 is the Q/DQ graph's on every line
    assert rec.calls["save_timing_cache"] == str(cache)
    assert rec.calls["network_steps"] == ["keep layers in FP32"]

    rec = polygraphy("10.3.0.30")
    builder.build_serialized_engine(_recipe("10.3.0.30", "int8", batch=BatchProfile(1, 2, 4)), HINTS)
    assert rec.calls["network"] == ("m.int8.qdq.onnx", True)  # strongly typed, nothing pinned, no flags
    assert not rec.calls["config"]["int8"] and not rec.calls["config"]["tf32"] and "network_steps" not in rec.calls
    with pytest.raises(EngineError, match=r"a recipe for TensorRT 8\.6\.2\.3 given to TensorRT 10\.3\.0\.30"):
        builder.build_serialized_engine(_recipe("8.6.2.3", "int8"), HINTS)


def test_builder_checks_the_profile_and_sets_the_dla_core(polygraphy: Any) -> None:
    polygraphy(profiles=0)  # a rejected profile: add_optimization_profile returned -1
    with pytest.raises(EngineError, match="rejected the optimisation profile 1,2,4 for \\['images'\\]"):
        builder.build_serialized_engine(_recipe("10.3.0.30", "fp16", batch=BatchProfile(1, 2, 4)), HINTS)
    rec = polygraphy()
    r = _recipe("10.3.0.30", "fp16", dla_core=1, batch=2)
    builder.build_serialized_engine(r, HINTS)
    assert rec.cfg.DLA_core == 1 and rec.calls["config"]["use_dla"] and rec.calls["config"]["allow_gpu_fallback"]
    assert rec.cfg.default_device_type == "gpu"  # Polygraphy's use_dla sets it (not run here)
    polygraphy(dla_cores=1)
    with pytest.raises(EngineError, match="--dla-core 1: this device has 1 DLA core"):
        builder.build_serialized_engine(r, HINTS)


def test_strongly_typed_dla_is_set_without_polygraphys_precision_flag(polygraphy: Any) -> None:
    """TensorRT >= 11.4.1: DLA on a strongly typed network: device type, core and GPU fallback set directly."""
    rec = polygraphy("11.4.1")
    builder.build_serialized_engine(_recipe("11.4.1", "fp16", dla_core=0, batch=1), HINTS)
    assert rec.calls["network"] == ("m.fp16.onnx", False)  # 11: strongly typed without asking
    cfg = rec.calls["config"]
    assert not cfg["use_dla"] and not cfg["allow_gpu_fallback"] and cfg["precision_constraints"] is None
    assert not cfg["fp16"] and not cfg["int8"]
    assert rec.cfg.default_device_type == "dla" and rec.cfg.DLA_core == 0 and rec.cfg.flags == {"GPU_FALLBACK"}


def test_parser_failures_name_the_node_from_polygraphys_log(polygraphy: Any) -> None:
    polygraphy(fail="In node 1 (parseGraph): UNSUPPORTED_NODE: No importer registered for op: NoSuchOp")
    r = _recipe("10.3.0.30", "fp32", batch=1)
    with pytest.raises(EngineError) as info:
        builder.build_serialized_engine(r, HINTS)
    text = str(info.value)
    assert "node 1 NoSuchOp '/m/b': No importer registered for op: NoSuchOp [UNSUPPORTED_NODE]" in text
    polygraphy(fail="some other failure")
    with pytest.raises(EngineError, match=r"could not build the fp32 engine from m\.onnx: some other failure"):
        builder.build_serialized_engine(r, HINTS)
    from polygraphy.logger import G_LOGGER

    assert not G_LOGGER.use_python_logging_system  # restored after the build


def test_cache_hits_only_sets_the_miss_flag_and_fails_on_an_error_line(polygraphy: Any, tmp_path: Path) -> None:
    """The self-test's timing-cache proof: ERROR_ON_TIMING_CACHE_MISS (TensorRT >= 10) via Polygraphy's
    ``error_on_timing_cache_miss``; an error line logged during the build fails it."""
    cache = tmp_path / "t.cache"
    r = _recipe("10.3.0.30", "fp16", batch=BatchProfile(1, 2, 4))
    rec = polygraphy("10.3.0.30")
    with pytest.raises(EngineError, match="needs an existing timing cache"):
        builder.build_serialized_engine(r, HINTS, str(cache), cache_hits_only=True)
    cache.write_bytes(b"tactics")
    assert builder.build_serialized_engine(r, HINTS, str(cache), cache_hits_only=True) == b"serialized"
    assert rec.calls["config"]["error_on_timing_cache_miss"] is True
    builder.build_serialized_engine(r, HINTS, str(cache))
    assert "error_on_timing_cache_miss" not in rec.calls["config"]  # ordinary builds: Polygraphy's default

    from polygraphy.logger import G_LOGGER

    def finish(builder_: Any, network: Any, cfg: Any) -> None:
        G_LOGGER.error("Timing cache miss for tactic 0x12")

    rec = polygraphy("10.3.0.30")
    inner = rec.classes["PostprocessConfig"]

    class Missing(inner):  # type: ignore[misc, valid-type]
        def __call__(self, builder_: Any, network: Any) -> Any:
            finish(builder_, network, rec.cfg)
            return super().__call__(builder_, network)

    import polygraphy.backend.trt as ptrt

    ptrt.PostprocessConfig = Missing  # restored by the fixture's monkeypatch on teardown
    with pytest.raises(EngineError, match=r"missed the timing cache .*Timing cache miss for tactic 0x12"):
        builder.build_serialized_engine(r, HINTS, str(cache), cache_hits_only=True)
    polygraphy("8.6.2.3")
    with pytest.raises(EngineError, match=r"TensorRT 8\.6\.2\.3 has no ERROR_ON_TIMING_CACHE_MISS"):
        builder.build_serialized_engine(_recipe("8.6.2.3", "fp16"), HINTS, str(cache), cache_hits_only=True)
