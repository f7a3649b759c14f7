"""Q/DQ wiring: layers kept in float read the float tensor; only INT8 compute (or a residual Add)
reads a DequantizeLinear of an activation."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rtdetr_edge.calib.qdq import float_for_other_consumers, wiring_faults


def shared_qdq_graph() -> onnx.ModelProto:
    """x -> Q -> DQ read by a quantized MatMul (dequantized weights), a float MatMul (float
    weights, the excluded score head), a residual Add and a Relu: what onnxruntime's quantizer
    writes when one activation feeds a quantized and an excluded layer."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 8)).astype(np.float32)
    inits = [
        numpy_helper.from_array(np.float32(0.02), "s"),
        numpy_helper.from_array(np.int8(0), "z"),
        numpy_helper.from_array(w, "w_q"),
        numpy_helper.from_array(w, "w_float"),
        numpy_helper.from_array(np.float32(0.01), "ws"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="x_q"),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="x_dq"),
        helper.make_node("QuantizeLinear", ["w_q", "ws", "z"], ["wq"], name="w_q"),
        helper.make_node("DequantizeLinear", ["wq", "ws", "z"], ["wd"], name="w_dq"),
        helper.make_node("MatMul", ["xd", "wd"], ["y_int8"], name="box_head/MatMul"),
        helper.make_node("MatMul", ["xd", "w_float"], ["y_float"], name="class_embed/MatMul"),
        helper.make_node("Add", ["xd", "y_int8"], ["residual"], name="residual/Add"),
        helper.make_node("Relu", ["xd"], ["relu"], name="relu"),
    ]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 8]) for n in ("y_float", "residual", "relu")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])], outputs, inits
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_float_layers_reading_a_dequantized_activation_are_faults() -> None:
    faults = wiring_faults(shared_qdq_graph())
    assert [f.split(" ")[0] for f in faults] == ["class_embed/MatMul", "relu"]
    assert "weights stay float" in faults[0] and "not a quantized op" in faults[1]


def test_rewiring_leaves_only_int8_compute_on_the_dequantized_tensor() -> None:
    model = shared_qdq_graph()
    assert float_for_other_consumers(model, {"box_head/MatMul"}) == 3  # class_embed, the Add and the Relu
    assert wiring_faults(model) == []
    readers = {n.name: list(n.input) for n in model.graph.node}
    assert readers["class_embed/MatMul"][0] == readers["relu"][0] == readers["residual/Add"][0] == "x"
    assert readers["box_head/MatMul"][0] == "xd"
    onnx.checker.check_model(model)
