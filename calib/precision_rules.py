"""Per-family precision rules: which nodes stay FP32 in the FP16 graph and out of INT8, and why.

One table (:data:`RULES`) for the FP16 writer (:func:`calib.fp16.to_fp16`), the INT8 exclusions
(:func:`calib.qdq.default_excluded_nodes`) and the precision plan (:func:`calib.plan.make_plan`),
keyed by the contract's ``extra["model_type"]`` (``"*"``: every family). A graph says its family
itself: the contract in its ``metadata_props`` (:func:`model_type_of`), so the Q/DQ and FP16
writers need no extra argument. The op-type rules every family shares (LayerNormalization,
Softmax, TopK in FP32) stay in :data:`calib.fp16.FP32_OPS`; the name rules every family shares
for INT8 (score/box heads, deformable offsets) in :data:`calib.qdq.DEFAULT_EXCLUDE`.

Node names are the exporter's module paths (``/inner/model/decoder/layers.0/final_layer_norm/Pow``);
a rule matches a node by a name *component* (split on ``/`` and ``.``), a name prefix, or an op type.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import onnx

from rtdetr_edge.contract import METADATA_KEY

ALL_FAMILIES = "*"
POST_PREFIX = "post/"  # the exporter's postprocessing tail (sigmoid + top-k + box decode)
FRAME_PREFIX = "frame/"  # an in-graph uint8 frame-preprocessing front (issue 18)
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


@dataclass(frozen=True)
class PrecisionRule:
    """Nodes of some families kept in higher precision.

    Attributes:
        families: model types it applies to (``("*",)``: all).
        why: the reason, recorded in the precision plan and the FP16 report.
        prefixes: node names starting with one of these match.
        components: node names with one of these components match.
        ops: node op types that match (anywhere in the graph); with ``components`` too, a node
            must match both.
        fp16: matching nodes stay FP32 in the FP16 conversion (and in the INT8 graph's float part).
        int8: matching quantizable nodes (Conv / weight MatMul / Gemm) are never quantized.
    """

    families: tuple[str, ...]
    why: str
    prefixes: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    ops: tuple[str, ...] = ()
    fp16: bool = True
    int8: bool = True

    def applies_to(self, model_type: str | None) -> bool:
        return ALL_FAMILIES in self.families or (model_type is not None and model_type in self.families)

    def matches(self, node: onnx.NodeProto) -> bool:
        if self.prefixes and node.name.startswith(self.prefixes):
            return True
        by_component = bool(self.components) and bool(set(re.split(r"[/.]", node.name)) & set(self.components))
        if self.components and self.ops:
            return by_component and node.op_type in self.ops
        return by_component or (not self.components and bool(self.ops) and node.op_type in self.ops)


RULES: tuple[PrecisionRule, ...] = (
    PrecisionRule(
        (ALL_FAMILIES,),
        "postprocessing tail: scores and their top-k order must match fp32 exactly",
        prefixes=(POST_PREFIX,),
    ),
    PrecisionRule(
        (ALL_FAMILIES,),
        "frame-preprocessing front: resizes and normalises uint8 frames; rounding there shifts every pixel",
        prefixes=(FRAME_PREFIX,),
    ),
    PrecisionRule(
        ("deimv2",),
        "DEIMv2 RMSNorm, exported decomposed (Pow, ReduceMean, Add, Sqrt, Div, Mul): the mean of "
        "squares overflows FP16 past |x| ~ 256 and 1/sqrt loses precision, as LayerNorm does",
        components=("self_attn_layer_norm", "final_layer_norm", "encoder_attn_layer_norm", "norm"),
        int8=False,
    ),
    PrecisionRule(
        ("deimv2", "d_fine"),
        "decomposed normalisation statistics (Pow, ReduceMean): squares and means of activations overflow FP16",
        ops=("Pow", "ReduceMean"),
        int8=False,
    ),
    PrecisionRule(
        ("d_fine", "deimv2"),
        "D-FINE distribution integral: softmax over bins times the non-uniform bin weights gives the box "
        "edge distances; rounding the probabilities or weights moves every refined box edge",
        components=("integral", "integral_1"),
    ),
    PrecisionRule(
        ("d_fine", "deimv2"),
        "location-quality estimator (LQE): adds a box-quality term to the scores; its error reorders the top-k",
        components=("lqe_layers",),
        fp16=False,
    ),
    PrecisionRule(
        ("d_fine", "deimv2"),
        "initial box head of the decoder: the anchors every fine-grained refinement starts from",
        components=("pre_bbox_head",),
        fp16=False,
    ),
    PrecisionRule(
        ("lw_detr", "rf_detr"),
        "two-stage encoder heads: select and place the initial queries (as RT-DETR's enc_score_head / enc_bbox_head)",
        components=("enc_out_class_embed", "enc_out_bbox_embed"),
        fp16=False,
    ),
)


def model_type_of(model: onnx.ModelProto) -> str | None:
    """The family a graph was exported from (its contract's ``extra["model_type"]``), or None."""
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            try:
                extra = json.loads(prop.value).get("extra") or {}
            except (json.JSONDecodeError, AttributeError):
                return None
            value = extra.get("model_type") if isinstance(extra, dict) else None
            return value if isinstance(value, str) else None
    return None


def rules_for(model_type: str | None, rules: tuple[PrecisionRule, ...] = RULES) -> list[PrecisionRule]:
    """The rules that apply to ``model_type`` (the ``"*"`` ones for an unknown family)."""
    return [r for r in rules if r.applies_to(model_type)]


def fp32_nodes(model: onnx.ModelProto, model_type: str | None = None) -> dict[str, str]:
    """Node -> why, for every node the FP16 conversion keeps in FP32 by a family rule.

    ``model_type`` defaults to the graph's own (:func:`model_type_of`).
    """
    mt = model_type if model_type is not None else model_type_of(model)
    active = [r for r in rules_for(mt) if r.fp16]
    out = {}
    for node in model.graph.node:
        if node.op_type in QDQ_OPS:  # named after the tensor they quantize; their type follows the INT8 layer
            continue
        rule = next((r for r in active if r.matches(node)), None)
        if rule is not None:
            out[node.name] = rule.why
    return out


def int8_exclusions(nodes: list[onnx.NodeProto], model_type: str | None) -> dict[str, str]:
    """Of ``nodes`` (the quantizable ones), those a family rule keeps out of INT8 -> why."""
    active = [r for r in rules_for(model_type) if r.int8]
    out = {}
    for node in nodes:
        rule = next((r for r in active if r.matches(node)), None)
        if rule is not None:
            out[node.name] = rule.why
    return out
