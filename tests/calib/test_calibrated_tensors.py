"""Which tensors get calibration ranges: those INT8 layers read, and rearranged views of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from rtdetr_edge.bundle import Bundle
from rtdetr_edge.ranges import CalibrationRanges


def test_int8_scope_is_what_int8_layers_read(best_bundle: Path) -> None:
    from rtdetr_edge.calib.collect import ActivationCollector, calibration_tensors
    from rtdetr_edge.calib.qdq import quantizable_nodes

    b = Bundle(best_bundle)
    model = onnx.load(str(b.onnx_path("fp32")))
    consts = {i.name for i in model.graph.initializer}
    wanted = {"images"} | {i for n in quantizable_nodes(model) for i in n.input if i and i not in consts}
    col = ActivationCollector(b.onnx_path("fp32"))
    assert col.tensors[0] == "images" and set(col.tensors) == wanted & set(calibration_tensors(model))
    assert set(CalibrationRanges.load(b.file(b.artifact("int8")["ranges"])).ranges) == set(col.tensors)


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
