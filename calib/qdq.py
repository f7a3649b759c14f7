"""Explicitly quantized (Q/DQ) ONNX from our calibrated ranges, with onnxruntime's quantizer.

The result is what TensorRT's explicit quantization wants (strongly typed networks on
TensorRT >= 10, the only INT8 route on 11) and what ONNX Runtime runs anywhere:

* symmetric INT8 everywhere (zero point 0: TensorRT requires it);
* weights per output channel (Conv axis 0, MatMul axis 1), kept as FP32 with a Q->DQ pair
  (the form TensorRT 8.6 parses and constant-folds; ONNX Runtime folds it too);
* Q/DQ only on the inputs of Conv / MatMul / Gemm, where TensorRT fuses them into INT8 kernels;
  extra pairs elsewhere would only break fusions; MatMuls between two activations (attention
  scores and their product with values) stay in float;
* biases stay FP32 (TensorRT does not take an INT32-quantized bias);
* layers known to be sensitive stay in higher precision by default (see :data:`DEFAULT_EXCLUDE`).
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from rtdetr_edge._optional import require
from rtdetr_edge.errors import CalibrationError

from .precision_rules import int8_exclusions, model_type_of

log = logging.getLogger("rtdetr_edge")

QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")
MAC_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")  # the compute a precision plan accounts for

# Node-name components kept out of INT8 by default, and why. Sigmoid, Softmax and
# LayerNormalization are never quantized here (only Conv/MatMul/Gemm inputs are), and the top-k
# postprocessing has no quantizable op.
DEFAULT_EXCLUDE: dict[str, str] = {
    "class_embed": "decoder score heads: INT8 error shifts logits and reorders the top-k",
    "enc_score_head": "encoder score head: selects the initial queries; ranking errors drop objects",
    "bbox_embed": "decoder box heads: 1/256 of the image (2.5 px at 640) is too coarse for refinement",
    "enc_bbox_head": "encoder box head: anchors for every query, same precision need as box heads",
    "sampling_offsets": "deformable attention offsets: small errors move sampling points off the object",
    "attention_weights": "deformable attention weights: feed a softmax, very sensitive to rounding",
}


_ENCODER_BLOCKS = {"lateral_convs": "fpn", "fpn_blocks": "fpn", "downsample_convs": "pan", "pan_blocks": "pan"}


def _strip_index(name: str) -> str:
    return re.sub(r"\.\d+$", "", name)


def layer_group(node_name: str) -> str:
    """A coarse group for a node (backbone stage, encoder block, decoder layer, head).

    Used by the sensitivity analysis to keep whole groups in higher precision.
    """
    parts = [p for p in node_name.split("/") if p]
    parts = parts[2:] if parts[:2] == ["inner", "model"] else parts
    if not parts:
        return "other"
    if parts[0] == "backbone":
        stage = next((p for p in parts if p.startswith("stages.")), None)
        return f"backbone.{stage}" if stage else "backbone.stem"
    if parts[0] == "encoder" and len(parts) > 1:
        block = _strip_index(parts[1])
        return "encoder." + _ENCODER_BLOCKS.get(block, block)
    if parts[0] == "decoder" and len(parts) > 1:
        return "decoder." + (parts[1] if parts[1].startswith("layers.") else _strip_index(parts[1]))
    return _strip_index(parts[0])


def quantizable_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Conv/Gemm nodes and MatMuls with a constant (weight) input."""
    consts = {t.name for t in model.graph.initializer}
    consts |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return [
        n
        for n in model.graph.node
        if n.op_type in ("Conv", "Gemm") or (n.op_type == "MatMul" and any(i in consts for i in n.input))
    ]


# The layer reading the network input is kept too (as TensorRT deployments commonly do): on the
# reference model, quantizing the image itself to 127 levels cost 0.0024 AP (0.5715 -> 0.5691 on
# 300 held-out images), and a 3-channel convolution gains little from INT8 kernels anyway.
INPUT_LAYER_REASON = "reads the network input: 127 levels of the image itself lose detail; 3 channels gain nothing"


def default_excluded_nodes(model: onnx.ModelProto, patterns: dict[str, str] | None = None) -> dict[str, str]:
    """Quantizable nodes kept out of INT8 -> the reason.

    Those that read a graph input, those a rule of :mod:`calib.precision_rules` keeps (``post/*``,
    ``frame/*`` and the graph's family's rules, the family read from the graph's contract), and
    those whose name has a component in ``patterns`` (default :data:`DEFAULT_EXCLUDE`).
    """
    patterns = DEFAULT_EXCLUDE if patterns is None else patterns
    graph_inputs = {i.name for i in model.graph.input} - {t.name for t in model.graph.initializer}
    candidates = quantizable_nodes(model)
    ruled = int8_exclusions(candidates, model_type_of(model))
    out = {}
    for node in candidates:
        if graph_inputs & set(node.input):
            out[node.name] = INPUT_LAYER_REASON
            continue
        if node.name in ruled:
            out[node.name] = ruled[node.name]
            continue
        components = set(re.split(r"[/.]", node.name))
        for key, why in patterns.items():
            if key in components:
                out[node.name] = why
                break
    return out


def _activation_dq_sources(model: onnx.ModelProto) -> dict[str, str]:
    """``{DequantizeLinear output: the float tensor}`` for Q->DQ pairs on activations (not weights)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    consts = {t.name for t in model.graph.initializer}
    out = {}
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear":
            continue
        q = producer.get(node.input[0])
        if q is not None and q.op_type == "QuantizeLinear" and q.input[0] not in consts:
            out[node.output[0]] = q.input[0]
    return out


def _dequantized_inputs(node: onnx.NodeProto, producer: dict[str, onnx.NodeProto]) -> list[bool]:
    """For each data input of a compute node (X and W; not the bias), whether a DequantizeLinear makes it."""
    data = node.input[:2]
    return [bool(name) and name in producer and producer[name].op_type == "DequantizeLinear" for name in data]


def float_for_other_consumers(model: onnx.ModelProto, quantized: set[str]) -> int:
    """Rewire every consumer of a Q->DQ'd activation that is not quantized compute to the float tensor.

    onnxruntime's quantizer shares one Q/DQ pair among all consumers of a tensor, so a residual Add,
    a Shape, or a Conv / MatMul kept in float (a score head reading the same activation as a
    quantized box head) would see fake-quantized values; TensorRT only wants Q/DQ where it fuses
    INT8 kernels, and a layer kept in float must read the float tensor. ``quantized`` names the
    nodes meant to run in INT8. Returns the number of inputs rewired.
    """
    sources = _activation_dq_sources(model)
    rewired = 0
    for node in model.graph.node:
        if node.name in quantized or node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        for k, name in enumerate(node.input):
            if name in sources:
                node.input[k] = sources[name]
                rewired += 1
    if rewired:
        _drop_unused_qdq(model)
    return rewired


def _drop_unused_qdq(model: onnx.ModelProto) -> None:
    """Remove Q/DQ nodes nobody reads any more (a DQ first, then its Q) and orphaned initializers."""
    for _ in range(2):
        used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
        dead = [
            n
            for n in model.graph.node
            if n.op_type in ("QuantizeLinear", "DequantizeLinear") and not any(o in used for o in n.output)
        ]
        for n in dead:
            model.graph.node.remove(n)
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    for init in [t for t in model.graph.initializer if t.name not in used]:
        model.graph.initializer.remove(init)


def wiring_faults(model: onnx.ModelProto) -> list[str]:
    """Nodes that read a fake-quantized activation but are not INT8 compute, one line each.

    Every consumer of an activation's DequantizeLinear must be quantized compute (a Conv /
    ConvTranspose / MatMul / Gemm whose data inputs are all dequantized: TensorRT fuses it into an
    INT8 kernel) or a residual Add (TensorRT's INT8 skip-connection fusion). Anything else, a float
    layer reading rounded values, is a fault: it costs accuracy and gains no speed.
    """
    sources = _activation_dq_sources(model)
    producer = {o: n for n in model.graph.node for o in n.output}
    faults = []
    for node in model.graph.node:
        reads = [name for name in node.input if name in sources]
        if not reads or node.op_type == "Add":
            continue
        if node.op_type in MAC_OPS and all(_dequantized_inputs(node, producer)):
            continue
        why = "weights stay float" if node.op_type in MAC_OPS else "not a quantized op"
        faults.append(f"{node.name} ({node.op_type}) reads DequantizeLinear output {reads[0]}: {why}")
    return faults


def write_qdq(
    fp32_path: str | os.PathLike[str],
    ranges: dict[str, float],
    out_path: str | os.PathLike[str],
    exclude_nodes: list[str] | None = None,
    per_channel: bool = True,
) -> dict[str, Any]:
    """Write the Q/DQ ONNX for ``fp32_path`` using ``ranges`` (tensor -> amax).

    Args:
        fp32_path: the bundle's fp32 ONNX.
        ranges: calibrated amax per tensor (must cover the inputs of every quantized node).
        out_path: where to write (atomically).
        exclude_nodes: node names to keep in float (default: :func:`default_excluded_nodes`).
        per_channel: per-output-channel weight scales (default True).

    Returns:
        a report: quantized and excluded node counts by op type, Q/DQ node counts.
    """
    require("onnxruntime", "writing the Q/DQ model")
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer

    from rtdetr_edge import atomic

    model = onnx.load(str(fp32_path))
    model = onnx.shape_inference.infer_shapes(model)
    if exclude_nodes is None:
        exclude_nodes = list(default_excluded_nodes(model))
    targets = [n for n in quantizable_nodes(model) if n.name not in set(exclude_nodes)]
    missing = sorted({n.input[0] for n in targets if n.input[0] not in ranges})
    if missing:
        raise CalibrationError(f"no calibrated range for {len(missing)} quantized inputs, e.g. {missing[:3]}")
    weights = {t.name for t in model.graph.initializer}  # weight scales come from the weights themselves
    data = TensorsData(
        CalibrationMethod.Entropy,
        {
            name: TensorData(lowest=np.float32(-a), highest=np.float32(a))
            for name, a in ranges.items()
            if name not in weights
        },
    )
    extra = {
        "ActivationSymmetric": True,
        "WeightSymmetric": True,  # zero point 0, as TensorRT requires
        "QuantizeBias": False,  # TensorRT wants float bias
        "AddQDQPairToWeight": True,  # FP32 weights + Q/DQ: parsed by TensorRT 8.6 and later
        "MatMulConstBOnly": True,  # attention MatMuls between activations stay float
        "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
        "OpTypesToExcludeOutputQuantization": list(QUANTIZED_OPS),  # inputs only: TensorRT fuses those
        "DedicatedQDQPair": True,  # other consumers of a tensor (residual Adds, reshapes) read it in float
    }
    try:
        quantizer = QDQQuantizer(
            model,
            per_channel,
            False,
            QuantType.QInt8,
            QuantType.QInt8,
            data,
            [n.name for n in targets],
            list(exclude_nodes),
            list(QUANTIZED_OPS),
            extra,
        )
        qmodel = quantizer.quantize_model()
    except Exception as exc:  # onnxruntime raises ValueError/RuntimeError/KeyError from deep inside
        raise CalibrationError(f"onnxruntime could not quantize {fp32_path}: {type(exc).__name__}: {exc}") from exc
    float_for_other_consumers(qmodel, {n.name for n in targets})
    faults = wiring_faults(qmodel)
    if faults:
        raise CalibrationError(f"internal: {len(faults)} Q/DQ wiring faults, e.g. {faults[0]}")
    # the contract (metadata_props) travels with every artifact
    del qmodel.metadata_props[:]
    qmodel.metadata_props.extend(model.metadata_props)
    with atomic.replacing_file(out_path, suffix=".onnx") as tmp:
        onnx.save(qmodel, str(tmp))
    ops = Counter(n.op_type for n in qmodel.graph.node)
    zero_points = [t for t in qmodel.graph.initializer if t.name.endswith("_zero_point")]
    nonzero = [t.name for t in zero_points if any(onnx.numpy_helper.to_array(t).ravel() != 0)]
    if nonzero:
        raise CalibrationError(f"internal: non-zero zero points {nonzero[:3]} (TensorRT needs symmetric INT8)")
    report = {
        "quantized_nodes": dict(Counter(n.op_type for n in targets)),
        "excluded_nodes": len(exclude_nodes),
        "quantize_linear": ops.get("QuantizeLinear", 0),
        "dequantize_linear": ops.get("DequantizeLinear", 0),
        "file": Path(out_path).name,
    }
    log.info(
        "Q/DQ model: %s quantized, %d kept in float, %d QuantizeLinear",
        report["quantized_nodes"],
        len(exclude_nodes),
        report["quantize_linear"],
    )
    return report
