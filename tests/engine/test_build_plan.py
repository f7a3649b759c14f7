"""Build plans: the network/builder flags and INT8 source each TensorRT version and precision get (no GPU)."""

from __future__ import annotations

import types
from typing import Any

import pytest

from rtdetr_edge.engine import builder
from rtdetr_edge.engine.options import EngineBuildOptions, plan_build
from rtdetr_edge.errors import EngineError


def _plan(
    version: str,
    precision: str,
    qdq: bool = False,
    fp16: bool = False,
    ranges: bool = False,
    calibrator: bool = False,
    **opts: Any,
) -> Any:
    return plan_build(
        version,
        precision,
        EngineBuildOptions(**opts),
        onnx_has_qdq=qdq,
        onnx_has_fp16=fp16,
        has_ranges=ranges,
        has_calibrator=calibrator,
    )


@pytest.mark.parametrize(
    "version, precision, kw, mode, net, flags, constraints, source, strong",
    [
        ("8.6.1.6", "fp32", {}, "none", ("EXPLICIT_BATCH",), (), False, None, False),
        ("10.3.0.30", "fp32", {}, "none", (), (), False, None, False),
        ("11.1.0.106", "fp32", {}, "none", (), (), False, None, True),
        ("8.6.2", "fp16", {}, "none", ("EXPLICIT_BATCH",), ("FP16", "PREFER_PRECISION_CONSTRAINTS"), True, None, False),
        ("10.3.0", "fp16", {}, "none", (), ("FP16", "PREFER_PRECISION_CONSTRAINTS"), True, None, False),
        ("10.3.0", "fp16", {"fp32_layers": ()}, "none", (), ("FP16",), False, None, False),
        ("10.3.0", "fp16", {"fp16": True}, "none", ("STRONGLY_TYPED",), (), False, None, True),
        ("11.1.0", "fp16", {"fp16": True}, "none", (), (), False, None, True),
        (
            "10.3.0",
            "fp16",
            {"dla_core": 0},
            "none",
            (),
            ("FP16", "PREFER_PRECISION_CONSTRAINTS", "GPU_FALLBACK"),
            True,
            None,
            False,
        ),
        ("10.3.0", "int8", {"qdq": True, "fp16": True}, "qdq", ("STRONGLY_TYPED",), (), False, None, True),
        # an FP32-typed Q/DQ graph (older bundles): strongly typed would run every float layer FP32
        (
            "10.3.0",
            "int8",
            {"qdq": True},
            "qdq",
            (),
            ("INT8", "FP16", "PREFER_PRECISION_CONSTRAINTS"),
            True,
            None,
            False,
        ),
        ("11.4.1", "int8", {"qdq": True}, "qdq", (), (), False, None, True),
        (
            "8.6.1",
            "int8",
            {"qdq": True},
            "qdq",
            ("EXPLICIT_BATCH",),
            ("INT8", "FP16", "PREFER_PRECISION_CONSTRAINTS"),
            True,
            None,
            False,
        ),
        (
            "8.6.1",
            "int8",
            {"ranges": True},
            "implicit",
            ("EXPLICIT_BATCH",),
            ("INT8", "FP16", "PREFER_PRECISION_CONSTRAINTS"),
            True,
            "calibrator",
            False,
        ),
        (
            "10.3.0",
            "int8",
            {"ranges": True},
            "implicit",
            (),
            ("INT8", "FP16", "PREFER_PRECISION_CONSTRAINTS"),
            True,
            "calibrator",
            False,
        ),
        (
            "10.3.0",
            "int8",
            {"ranges": True, "int8_dynamic_range": True},
            "implicit",
            (),
            ("INT8", "FP16", "PREFER_PRECISION_CONSTRAINTS"),
            True,
            "dynamic_range",
            False,
        ),
        (
            "10.3.0",
            "int8",
            {"calibrator": True, "int8_mode": "implicit"},
            "implicit",
            (),
            ("INT8", "FP16", "PREFER_PRECISION_CONSTRAINTS"),
            True,
            "calibrator",
            False,
        ),
    ],
)
def test_build_plan_per_tensorrt_version_and_precision(
    version: str,
    precision: str,
    kw: dict[str, Any],
    mode: str,
    net: tuple[str, ...],
    flags: tuple[str, ...],
    constraints: bool,
    source: str | None,
    strong: bool,
) -> None:
    plan = _plan(version, precision, **kw)
    assert (
        plan.int8_mode,
        plan.network_flags,
        plan.builder_flags,
        plan.layer_constraints,
        plan.int8_source,
        plan.strongly_typed,
    ) == (mode, net, flags, constraints, source, strong)


def test_timing_cache_is_per_tensorrt_version_and_gpu_model() -> None:
    from rtdetr_edge.engine.options import default_timing_cache

    nano = default_timing_cache("e", "10.3.0.30", "8.7", "Orin Nano")
    agx = default_timing_cache("e", "10.3.0.30", "8.7", "Orin AGX")
    assert nano != agx and nano.startswith("e/timing_trt10.3.0_sm87_") and nano.endswith(".cache")


def test_fp32_plan_turns_tf32_off() -> None:
    assert _plan("10.3.0", "fp32").clear_flags == ("TF32",)


@pytest.mark.parametrize(
    "version, precision, kw, message",
    [
        ("8.5.2", "fp32", {}, "too old: rtdetr-edge needs TensorRT >= 8.6 .JetPack 6; JetPack 5"),
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
        (
            "10.3.0",
            "int8",
            {"int8_mode": "implicit", "calibrator": True, "int8_dynamic_range": True},
            "--int8-dynamic-range needs calibration ranges",
        ),
    ],
)
def test_build_plan_refuses_impossible_combinations(
    version: str, precision: str, kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(EngineError, match=message):
        _plan(version, precision, **kw)


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
    net = types.SimpleNamespace(
        num_layers=len(layers), get_layer=lambda i: layers[i], num_inputs=1, get_input=lambda i: T("images")
    )
    hints = builder.NetworkHints(fp32_nodes=frozenset({"post/sigmoid", "topk"}), fp32_tensors=frozenset({"sm_out"}))
    pinned = builder._pin_fp32(net, hints, ("post/*", "frame/*"))
    assert pinned == 5  # post/sigmoid, post/sigmoid_1, topk (float output only), w (by tensor), frame/cast
    # the uint8 -> float Cast gets its output type only: no float compute precision on a uint8 read
    assert layers[7].precision is None and layers[7].types == {0: "f32"}
    assert layers[0].precision == "f32" and layers[1].precision == "f32" and layers[2].precision is None
    assert layers[3].types == {0: "f32"} and layers[4].precision is None and layers[6].precision is None
    assert layers[5].precision == "f32"
    done = builder._set_dynamic_ranges(net, {"post/probs": 1.0, "c": 2.5, "missing": 1.0})
    assert done == 2 and layers[2].outs[0].range == (-2.5, 2.5)
