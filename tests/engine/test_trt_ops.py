"""The static TensorRT ONNX-parser op check (``rtdetr_edge.export.trt_ops``) over whole graphs.

Table-driven: the bundles' graphs (fp32, fp16, int8 Q/DQ and its TensorRT 8.x sibling, frame-input
graphs, the shipped reference model) pass for the lines they are for and the build records that;
each documented restriction gives its one-line fault on a graph made to break it (and its
near-miss passes); every tiny family model passes for TensorRT 8.6 and 10 (slow lane). This is
a check against the parser's documented op matrix, not a TensorRT parse.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from rtdetr_edge.errors import InputError
from rtdetr_edge.export.trt_ops import (
    SUPPORTED_OPS,
    TENSORRT_LINES,
    all_op_faults,
    artifact_op_faults,
    op_faults,
    tensorrt_line,
)

FAMILIES = ("rt_detr", "rt_detr_v2", "d_fine", "deimv2", "deimv2_dinov3", "lw_detr", "rf_detr")


def _graph(opset: int = 17) -> onnx.ModelProto:
    """x [1, 8] -> Relu -> TopK(K=3 initializer) -> values, indices: passes every line."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("TopK", ["r", "k"], ["values", "indices"], name="topk"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [
            helper.make_tensor_value_info("values", TensorProto.FLOAT, [1, 3]),
            helper.make_tensor_value_info("indices", TensorProto.INT64, [1, 3]),
        ],
        [numpy_helper.from_array(np.array([3], np.int64), "k")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _made_up_op(m: onnx.ModelProto) -> None:
    m.graph.node.insert(1, helper.make_node("FancyRelu", ["r"], ["r2"], name="fancy"))


def _custom_domain(m: onnx.ModelProto) -> None:
    m.graph.node.insert(1, helper.make_node("Gelu", ["r"], ["r2"], name="ms_gelu", domain="com.microsoft"))


def _dynamic_k(m: onnx.ModelProto) -> None:
    # K from the data: ReduceMax of x, cast to int64
    m.graph.node.insert(0, helper.make_node("ReduceMax", ["x"], ["mx"], name="kmax", keepdims=0))
    m.graph.node.insert(1, helper.make_node("Cast", ["mx"], ["kdata"], name="kcast", to=TensorProto.INT64))
    m.graph.node[-1].input[1] = "kdata"


def _graph_input_k(m: onnx.ModelProto) -> None:
    m.graph.input.append(helper.make_tensor_value_info("kin", TensorProto.INT64, [1]))
    m.graph.node[-1].input[1] = "kin"


def _k_from_shape(m: onnx.ModelProto) -> None:
    # K = shape(x)[1] // 2: a shape tensor, which TensorRT takes
    m.graph.node.insert(0, helper.make_node("Shape", ["x"], ["s"], name="shape", start=1, end=2))
    m.graph.node.insert(1, helper.make_node("Div", ["s", "two"], ["khalf"], name="half"))
    m.graph.initializer.append(numpy_helper.from_array(np.array([2], np.int64), "two"))
    m.graph.node[-1].input[1] = "khalf"


def _k_constant_node(m: onnx.ModelProto) -> None:
    m.graph.initializer.pop()
    m.graph.node.insert(0, helper.make_node("Constant", [], ["k"], name="kconst", value_ints=[3]))


def _big_k(m: onnx.ModelProto) -> None:
    m.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.array([4000], np.int64), "k"))


def _unsorted_topk(m: onnx.ModelProto) -> None:
    m.graph.node[-1].attribute.append(helper.make_attribute("sorted", 0))


def _qdq(zero: int, dtype: type = np.int8, constant: bool = True) -> Callable[[onnx.ModelProto], None]:
    def mutate(m: onnx.ModelProto) -> None:
        m.graph.node.insert(1, helper.make_node("QuantizeLinear", ["r", "scale", "zp"], ["q"], name="q"))
        m.graph.node.insert(2, helper.make_node("DequantizeLinear", ["q", "scale", "zp0"], ["dq"], name="dq"))
        m.graph.initializer.extend(
            [
                numpy_helper.from_array(np.array(0.1, np.float32), "scale"),
                numpy_helper.from_array(np.array(0, np.int8), "zp0"),
            ]
        )
        if constant:
            m.graph.initializer.append(numpy_helper.from_array(np.array(zero, dtype), "zp"))
        else:
            m.graph.input.append(helper.make_tensor_value_info("zp", TensorProto.INT8, []))

    return mutate


def _resize(**attrs: Any) -> Callable[[onnx.ModelProto], None]:
    def mutate(m: onnx.ModelProto) -> None:
        m.graph.node.insert(1, helper.make_node("Resize", ["r", "", "scales"], ["rs"], name="resize", **attrs))
        m.graph.initializer.append(numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "scales"))

    return mutate


def _scatter_reduction(m: onnx.ModelProto) -> None:
    m.graph.node.insert(1, helper.make_node("ScatterND", ["r", "i", "u"], ["sc"], name="scatter", reduction="add"))


def _op_in_if_branch(m: onnx.ModelProto) -> None:
    branch = helper.make_graph(
        [helper.make_node("Unique", ["r"], ["u"], name="if/unique")],
        "then",
        [],
        [helper.make_tensor_value_info("u", TensorProto.FLOAT, None)],
    )
    other = helper.make_graph(
        [helper.make_node("Identity", ["r"], ["u"], name="if/identity")],
        "else",
        [],
        [helper.make_tensor_value_info("u", TensorProto.FLOAT, None)],
    )
    m.graph.node.append(helper.make_node("If", ["cond"], ["out"], name="if", then_branch=branch, else_branch=other))


def _opset(version: int) -> Callable[[onnx.ModelProto], None]:
    def mutate(m: onnx.ModelProto) -> None:
        m.opset_import[0].version = version

    return mutate


def _nothing(m: onnx.ModelProto) -> None:
    pass


# (case, mutation, {line: expected fault substring or None for "passes"})
CASES: list[tuple[str, Callable[[onnx.ModelProto], None], dict[str, str | None]]] = [
    ("valid", _nothing, {"8.6": None, "10": None}),
    ("made-up op", _made_up_op, {"8.6": "op FancyRelu (1 node, e.g. fancy): not in", "10": "op FancyRelu"}),
    ("custom domain", _custom_domain, {"8.6": "com.microsoft::Gelu", "10": "custom domain 'com.microsoft'"}),
    ("listed unsupported op in an If branch", _op_in_if_branch, {"8.6": "op Unique (1 node, e.g. if/unique): listed"}),
    ("TopK K from data", _dynamic_k, {"8.6": "node topk: TopK K (kdata) is computed from tensor data", "10": "kdata"}),
    ("TopK K a graph input", _graph_input_k, {"8.6": "TopK K (kin)", "10": "TopK K (kin)"}),
    ("TopK K from shapes", _k_from_shape, {"8.6": None, "10": None}),
    ("TopK K a Constant node", _k_constant_node, {"8.6": None, "10": None}),
    ("TopK K 4000", _big_k, {"8.6": None, "10": "TopK K=4000 (TensorRT 10 needs K < 3840)"}),
    ("TopK sorted=0", _unsorted_topk, {"8.6": None, "10": "TopK sorted=0"}),
    ("opset 19", _opset(19), {"8.6": "opset 19 > 17", "10": None}),
    ("opset 21", _opset(21), {"8.6": "opset 21 > 17", "10": "opset 21 > 20"}),
    ("opset 8", _opset(8), {"8.6": None, "10": "opset 8 < 9"}),
    ("Q/DQ zero point 0", _qdq(0), {"8.6": None, "10": None}),
    ("Q/DQ zero point 3", _qdq(3), {"8.6": "node q: QuantizeLinear y_zero_point is not zero", "10": "not zero"}),
    ("Q/DQ zero point an input", _qdq(0, constant=False), {"8.6": "y_zero_point is not a constant", "10": "constant"}),
    (
        "uint8 Q/DQ",
        _qdq(0, np.uint8),
        {
            "8.6": "q: QuantizeLinear is UINT8 (TensorRT 8.6 takes INT8)",
            "10": "UINT8 (TensorRT 10 takes INT8, FLOAT8E4M3FN, INT4)",
        },
    ),
    ("Resize linear", _resize(mode="linear"), {"8.6": None, "10": None}),
    ("Resize cubic", _resize(mode="cubic"), {"8.6": "Resize mode=cubic", "10": "Resize mode=cubic"}),
    ("Resize antialias", _resize(mode="linear", antialias=1), {"8.6": None, "10": "Resize antialias=1"}),
    ("Resize tf_crop_and_resize", _resize(coordinate_transformation_mode="tf_crop_and_resize"), {"8.6": "tf_crop"}),
    ("ScatterND reduction", _scatter_reduction, {"8.6": None, "10": "ScatterND reduction=add"}),
]


@pytest.mark.parametrize("case, mutate, expected", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("line", TENSORRT_LINES)
def test_each_restriction_gives_its_one_line_fault(
    case: str, mutate: Callable[[onnx.ModelProto], None], expected: dict[str, str | None], line: str
) -> None:
    model = _graph()
    mutate(model)
    faults = op_faults(model, line)
    want = expected.get(line, expected.get("8.6"))
    if want is None:
        assert faults == [], case
    else:
        assert len(faults) == 1 and want in faults[0], (case, faults)
        assert "\n" not in faults[0]


def test_unsupported_ops_are_counted_with_a_node_name() -> None:
    model = _graph()
    for i in range(3):
        model.graph.node.append(helper.make_node("DFT", ["r"], [f"d{i}"], name=f"dft{i}"))
    assert op_faults(model) == ["op DFT (3 nodes, e.g. dft0): listed unsupported by TensorRT 8.6's ONNX parser"]


def test_lines_differ_where_the_matrices_do() -> None:
    model = _graph()
    model.graph.node.insert(1, helper.make_node("Gelu", ["r"], ["g"], name="gelu"))  # opset 20, in 10's matrix
    assert op_faults(model, "10") == [] and "op Gelu" in op_faults(model, "8.6")[0]
    assert SUPPORTED_OPS["8.6"] < SUPPORTED_OPS["10"]
    assert {"GridSample", "LayerNormalization", "TopK", "GatherElements", "Einsum"} <= SUPPORTED_OPS["8.6"]


def test_prefix_limits_the_node_checks_not_the_opset() -> None:
    model = _graph(19)
    _made_up_op(model)
    assert op_faults(model, "8.6", prefix="frame/") == ["opset 19 > 17 (TensorRT 8.6 parses up to opset 17)"]


def test_tensorrt_versions_map_to_lines() -> None:
    assert tensorrt_line("8.6.2") == "8.6" and tensorrt_line("10.3.0") == "10" and tensorrt_line("10") == "10"
    for bad in ("8.5", "11", "1.0", "100"):
        with pytest.raises(InputError, match=r"expected one of the TensorRT lines 8\.6, 10"):
            op_faults(_graph(), bad)


def test_bundle_graphs_pass_and_the_build_records_the_check(best_bundle: Path) -> None:
    metadata = json.loads((best_bundle / "metadata.json").read_text())
    checks = artifact_op_faults(best_bundle, metadata["artifacts"])
    assert checks == {
        "model.onnx": {"8.6": [], "10": []},
        "model.fp16.onnx": {"8.6": [], "10": []},
        "model.int8.qdq.onnx": {"10": []},  # opset 19, for TensorRT >= 10; its sibling is for 8.x
        "model.int8.qdq.trt8.onnx": {"8.6": []},
    }
    # the opset-19 graph is what 8.6 refuses: the split per line is what keeps it out of 8.6's list
    assert op_faults(onnx.load(str(best_bundle / "model.int8.qdq.onnx")), "8.6") == [
        "opset 19 > 17 (TensorRT 8.6 parses up to opset 17)"
    ]
    assert json.loads((best_bundle / "report.json").read_text())["tensorrt_ops"] == checks


def test_reference_model_passes(reference_bundle: Path) -> None:
    assert all_op_faults(onnx.load(str(reference_bundle / "model.onnx"))) == {"8.6": [], "10": []}
    assert json.loads((reference_bundle / "report.json").read_text())["tensorrt_ops"] == {
        "model.onnx": {"8.6": [], "10": []}
    }


def test_frame_input_graphs_pass(best_bundle: Path, tmp_path: Path) -> None:
    from rtdetr_edge.build import BuildOptions, add_precisions

    out = add_precisions(best_bundle, tmp_path / "frames", BuildOptions(frame_sizes=((128, 96),)))
    report = json.loads((out / "report.json").read_text())["tensorrt_ops"]
    frame_graphs = {name: lines for name, lines in report.items() if ".frames-128x96." in name}
    assert frame_graphs == {
        "model.frames-128x96.onnx": {"8.6": [], "10": []},
        "model.fp16.frames-128x96.onnx": {"8.6": [], "10": []},
        "model.int8.qdq.frames-128x96.onnx": {"10": []},
        "model.int8.qdq.trt8.frames-128x96.onnx": {"8.6": []},
    }
    # the whole-graph check sees the uint8 input's Cast as a supported op like any other
    model = onnx.load(str(out / "model.frames-128x96.onnx"))
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.UINT8
    model.graph.node[0].op_type = "ImageDecoder"
    assert "op ImageDecoder" in op_faults(model, "10")[0]


def test_build_warns_per_faulty_artifact_and_records_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from rtdetr_edge import build

    good, bad = _graph(), _graph(19)
    _custom_domain(bad)
    onnx.save(good, str(tmp_path / "model.onnx"))
    onnx.save(bad, str(tmp_path / "model.fp16.onnx"))
    metadata = {"artifacts": {"fp32": {"file": "model.onnx"}, "fp16": {"file": "model.fp16.onnx"}}}
    report: dict[str, object] = {}
    with caplog.at_level(logging.WARNING, logger="rtdetr_edge"):
        build._record_tensorrt_ops(tmp_path, metadata, report)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("model.fp16.onnx: the TensorRT ONNX parser's op matrix refuses it")
    assert "TensorRT 8.6: opset 19 > 17" in lines[0] and "TensorRT 10: op com.microsoft::Gelu" in lines[0]
    checks = report["tensorrt_ops"]
    assert isinstance(checks, dict) and checks["model.onnx"] == {"8.6": [], "10": []}
    assert len(checks["model.fp16.onnx"]["8.6"]) == 2 and len(checks["model.fp16.onnx"]["10"]) == 1


def family_graph(model_type: str) -> onnx.ModelProto:
    """The tiny random model of a family exported (no verification: the family tests verify)."""
    from rtdetr_edge.export import export_onnx, testing
    from rtdetr_edge.export.options import ExportOptions

    config = (
        testing.tiny_deimv2_dinov3_config() if model_type == "deimv2_dinov3" else testing.tiny_family_config(model_type)
    )
    return export_onnx(testing.random_model(config, seed=0), ExportOptions(top_k=40, verify=False)).model


@pytest.mark.slow  # ~30 s: seven exports
@pytest.mark.parametrize("model_type", FAMILIES)
def test_every_family_graph_passes_for_8_6_and_10(model_type: str) -> None:
    assert all_op_faults(family_graph(model_type)) == {"8.6": [], "10": []}
