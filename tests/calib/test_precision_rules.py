"""Per-family precision rules (calib.precision_rules): one table for the FP16 writer, INT8 exclusions and the plan.

Small hand-made graphs carrying a contract with ``extra["model_type"]``: DEIMv2's decomposed
RMSNorm stays FP32 only for DEIMv2; ``frame/*`` (issue 18's in-graph frame front) and ``post/*``
stay FP32 and out of INT8 for every family; each rule is shown to be what keeps them.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from rtdetr_edge.calib import precision_rules
from rtdetr_edge.calib.fp16 import to_fp16
from rtdetr_edge.calib.plan import make_plan
from rtdetr_edge.calib.qdq import default_excluded_nodes
from rtdetr_edge.contract import METADATA_KEY, ModelContract, Preprocessing

NORM = "/inner/model/decoder/layers.0/final_layer_norm"


def _contract(model_type: str) -> str:
    return ModelContract(Preprocessing(8, 8), ("a",), extra={"model_type": model_type}).to_json()


def _graph(model_type: str) -> onnx.ModelProto:
    """images -> frame/scale (Conv) -> backbone Conv -> RMSNorm (Pow, ReduceMean, Add, Sqrt, Div) -> post/sigmoid."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 1, 1)).astype(np.float32), "w_frame"),
        numpy_helper.from_array(rng.standard_normal((4, 4, 3, 3)).astype(np.float32), "w_conv"),
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        numpy_helper.from_array(np.array(1e-6, np.float32), "eps"),
    ]
    nodes = [
        helper.make_node("Conv", ["images", "w_frame"], ["f"], name="frame/scale"),
        helper.make_node("Conv", ["f", "w_conv"], ["c"], name="/inner/model/backbone/conv/Conv", pads=[1, 1, 1, 1]),
        helper.make_node("Pow", ["c", "two"], ["sq"], name=f"{NORM}/Pow"),
        helper.make_node("ReduceMean", ["sq"], ["ms"], name=f"{NORM}/ReduceMean", axes=[1], keepdims=1),
        helper.make_node("Add", ["ms", "eps"], ["mse"], name=f"{NORM}/Add"),
        helper.make_node("Sqrt", ["mse"], ["rms"], name=f"{NORM}/Sqrt"),
        helper.make_node("Div", ["c", "rms"], ["n"], name=f"{NORM}/Div"),
        helper.make_node("Sigmoid", ["n"], ["scores"], name="post/sigmoid"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 4, 8, 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.metadata_props.add(key=METADATA_KEY, value=_contract(model_type))
    return model


def _float32_nodes(model: onnx.ModelProto) -> set[str]:
    """Nodes whose first input is float32 in the converted graph."""
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in list(g.value_info) + list(g.input) + list(g.output)}
    types.update({t.name: t.data_type for t in g.initializer})
    return {n.name for n in g.node if types.get(n.input[0]) == TensorProto.FLOAT and n.op_type != "Cast"}


def test_model_type_is_read_from_the_graphs_contract() -> None:
    assert precision_rules.model_type_of(_graph("deimv2")) == "deimv2"
    bare = _graph("deimv2")
    del bare.metadata_props[:]
    assert precision_rules.model_type_of(bare) is None


def test_deimv2_decomposed_rmsnorm_stays_fp32_only_for_deimv2() -> None:
    norm_nodes = {f"{NORM}/{op}" for op in ("Pow", "ReduceMean", "Add", "Sqrt", "Div")}
    deimv2, _ = to_fp16(_graph("deimv2"))
    assert norm_nodes <= _float32_nodes(deimv2)
    assert "/inner/model/backbone/conv/Conv" not in _float32_nodes(deimv2)  # the rest is FP16
    rtdetr, _ = to_fp16(_graph("rt_detr"))
    assert not norm_nodes & _float32_nodes(rtdetr)  # RT-DETR has no such rule: FP16 there


@pytest.mark.parametrize("model_type", ["rt_detr", "d_fine", "deimv2", "lw_detr", "rf_detr", "something_else"])
def test_frame_and_post_nodes_stay_fp32_and_out_of_int8_for_every_family(model_type: str) -> None:
    model = _graph(model_type)
    converted, _ = to_fp16(model)
    assert {"frame/scale", "post/sigmoid"} <= _float32_nodes(converted)
    excluded = default_excluded_nodes(model)
    assert excluded["frame/scale"].startswith(("reads the network input", "frame-preprocessing front"))
    assert "/inner/model/backbone/conv/Conv" not in excluded


def test_frame_prefix_rule_is_what_keeps_a_front_out_of_int8(monkeypatch: pytest.MonkeyPatch) -> None:
    """A frame/ Conv that does not read the graph input is excluded by the rule alone, and FP32 by it alone."""
    model = _graph("rt_detr")
    conv = model.graph.node[1]
    conv.name = "frame/resize_rows"  # second layer: the input-layer rule does not apply
    assert default_excluded_nodes(model)["frame/resize_rows"].startswith("frame-preprocessing front")
    assert "frame/resize_rows" in _float32_nodes(to_fp16(model)[0])
    without = tuple(r for r in precision_rules.RULES if precision_rules.FRAME_PREFIX not in r.prefixes)
    monkeypatch.setattr(precision_rules, "RULES", without)
    monkeypatch.setattr(precision_rules.rules_for, "__defaults__", (without,))
    assert "frame/resize_rows" not in default_excluded_nodes(model)
    assert "frame/resize_rows" not in _float32_nodes(to_fp16(model)[0])


def test_plan_records_the_family_rules_with_their_reasons() -> None:
    model = _graph("deimv2")
    plan = make_plan(model, {"/inner/model/backbone/conv/Conv"}, {}, {}, (8, 8))
    by_node = {e.node: e for e in plan.entries}
    assert by_node[f"{NORM}/Pow"].precision == "fp32" and by_node[f"{NORM}/Pow"].reason.startswith("DEIMv2 RMSNorm")
    assert by_node["frame/scale"].precision == "fp32"
    assert by_node["frame/scale"].reason.startswith("frame-preprocessing front")
    assert by_node["/inner/model/backbone/conv/Conv"].precision == "int8"
    plain = {e.node for e in make_plan(_graph("rt_detr"), set(), {}, {}, (8, 8)).entries}
    assert f"{NORM}/Pow" not in plain


def test_every_rule_says_why_and_names_known_families() -> None:
    from rtdetr_edge.export.source import FAMILIES

    for rule in precision_rules.RULES:
        assert len(rule.why) > 30
        assert all(f == precision_rules.ALL_FAMILIES or f in FAMILIES for f in rule.families)
        assert rule.prefixes or rule.components or rule.ops


def test_the_devices_fp32_pins_are_the_hosts_fp32_rules_for_every_family() -> None:
    """TensorRT 8.6 (and DLA) pin layers to FP32 by pattern (rtdetr_edge.engine_recipe.DEFAULT_FP32_LAYERS);
    10.x/11 take FP32 from the typed graphs the host wrote. Both must keep the same ops and prefixes."""
    from rtdetr_edge.calib.fp16 import FP32_OPS
    from rtdetr_edge.engine_recipe import DEFAULT_FP32_LAYERS

    ops = {p for p in DEFAULT_FP32_LAYERS if "/" not in p and "*" not in p}
    globs = {p for p in DEFAULT_FP32_LAYERS if p not in ops}
    assert ops == set(FP32_OPS)
    shared = [r for r in precision_rules.RULES if r.families == (precision_rules.ALL_FAMILIES,) and r.fp16]
    assert globs == {f"{prefix}*" for r in shared for prefix in r.prefixes}
    assert all(not r.components and not r.ops for r in shared)  # nothing a pattern list cannot say
