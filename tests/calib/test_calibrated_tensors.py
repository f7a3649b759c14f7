"""Which tensors get calibration ranges: those INT8 layers read, and rearranged views of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from rtdetr_edge.bundle import Bundle
from rtdetr_edge.ranges import CalibrationRanges


def test_int8_scope_is_what_int8_layers_read_and_write(best_bundle: Path) -> None:
    from rtdetr_edge.calib.collect import ActivationCollector, calibration_tensors
    from rtdetr_edge.calib.qdq import quantizable_nodes

    b = Bundle(best_bundle)
    model = onnx.load(str(b.onnx_path("fp32")))
    consts = {i.name for i in model.graph.initializer}
    nodes = quantizable_nodes(model)
    wanted = {"images"} | {t for n in nodes for t in list(n.input) + list(n.output) if t and t not in consts}
    col = ActivationCollector(b.onnx_path("fp32"))
    assert col.tensors[0] == "images" and set(col.tensors) == wanted & set(calibration_tensors(model))
    weights = {n.input[1] for n in nodes if n.op_type == "MatMul" and n.input[1] in consts}
    assert weights, "the tiny model has weight MatMuls"
    assert set(CalibrationRanges.load(b.file(b.artifact("int8")["ranges"])).ranges) == set(col.tensors) | weights


def test_implicit_cache_covers_every_tensor_the_planned_int8_layers_need(best_bundle: Path) -> None:
    """TensorRT's implicit INT8 runs a layer in INT8 only if its inputs, outputs and constant weight
    tensors have ranges: the shipped caches must list all of them for every layer the plan puts in INT8."""
    from rtdetr_edge.calib.plan import PrecisionPlan
    from rtdetr_edge.trt_cache import read_cache

    b = Bundle(best_bundle)
    art = b.artifact("int8")
    model = onnx.load(str(b.onnx_path("fp32")))
    consts = {t.name for t in model.graph.initializer}
    planned = set(PrecisionPlan.load(b.file(art["plan"])).nodes("int8"))
    assert planned
    needed = {"images"}
    for node in model.graph.node:
        if node.name in planned:
            needed |= {t for t in list(node.input) + list(node.output) if t and t not in consts}
            if node.op_type == "MatMul":
                needed |= {t for t in node.input[:2] if t in consts}
    for version, rel in art["tensorrt_caches"].items():
        cached = set(read_cache(b.file(rel).read_text())[2])
        assert needed <= cached, (version, sorted(needed - cached)[:5])


def test_rearranged_tensors_take_their_source_range(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    from rtdetr_edge.calib.collect import ActivationCollector

    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["flat"]),
        helper.make_node("Transpose", ["flat"], ["t"], perm=[1, 0]),
        helper.make_node("Mul", ["t", "two"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [12, 2])],
        [
            helper.make_tensor("shape", TensorProto.INT64, [2], [2, 12]),
            helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
        ],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    col = ActivationCollector(path, scope="all")
    assert col.aliases == {"flat": "r", "t": "r"} and set(col.histograms) == {"x", "r", "y"}
    col.collect([{"x": np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 5}])
    ranges = col.ranges("max")
    assert list(ranges) == col.tensors and ranges["t"] == ranges["flat"] == ranges["r"] == 18.0
    assert ranges["y"] == 36.0 and ranges["x"] == 18.0
