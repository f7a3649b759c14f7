"""FP16 ONNX that keeps overflow-prone nodes in FP32 (for TensorRT 11 and GPU ONNX Runtime).

TensorRT 11 networks are strongly typed, so FP16 has to be in the graph itself (on 8.6-10.x the
builder's FP16 flag does it from the fp32 ONNX instead). RT-DETR in FP16 can overflow in the
decoder's LayerNorm path and give wrong boxes or duplicates (lyuwenyu/RT-DETR#104, #222;
NVIDIA/TensorRT#3652), so those nodes stay FP32 by default, as do the score/box postprocessing
(top-k order must match fp32 exactly), an in-graph frame-preprocessing front ``frame/*``, the
graph's inputs and outputs (the runtime's contract stays float32), and whatever the graph's
family keeps in FP32 (:mod:`calib.precision_rules`: DEIMv2's decomposed RMSNorm, D-FINE's
distribution integral, ...), read from the contract in the graph's own metadata.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import Counter
from typing import Any

import onnx

from rtdetr_edge._optional import require

from .precision_rules import FRAME_PREFIX, POST_PREFIX, fp32_nodes, model_type_of

log = logging.getLogger("rtdetr_edge")

__all__ = ["FP32_OPS", "FRAME_PREFIX", "POST_PREFIX", "to_fp16", "write_fp16"]
# op types kept in FP32, and why
FP32_OPS: dict[str, str] = {
    "LayerNormalization": "variance of large activations overflows FP16 (RT-DETR decoder: lyuwenyu/RT-DETR#104, NVIDIA/TensorRT#3652)",
    "TopK": "ranking near-equal scores must match fp32 exactly",
    "Softmax": "exp() of attention logits overflows FP16 without the max-subtraction guarantees of fused kernels",
}


def unshare_initializers(model: onnx.ModelProto) -> int:
    """Give every consumer of a shared initializer its own copy (in place); returns copies made.

    Simplifiers deduplicate equal constants, so e.g. a zero Conv bias and a zero LayerNorm bias
    can be one tensor; when one consumer stays FP32 and the other becomes FP16, a shared
    tensor would get two types.
    """
    inits = {t.name: t for t in model.graph.initializer}
    seen: set[str] = set()
    copies = 0
    for node in model.graph.node:
        for k, name in enumerate(node.input):
            if name not in inits:
                continue
            if name in seen:
                dup = onnx.TensorProto()
                dup.CopyFrom(inits[name])
                dup.name = f"{name}__copy{copies}"
                model.graph.initializer.append(dup)
                node.input[k] = dup.name
                copies += 1
            else:
                seen.add(name)
    return copies


def _restore_float32_outputs(original: onnx.ModelProto, converted: onnx.ModelProto) -> None:
    """Cast graph outputs that were float32 in ``original`` back to float32 (the contract's types).

    onnxconverter-common's ``keep_io_types`` casts outputs produced by blocked (FP32) nodes to
    FP16 anyway; a final Cast keeps the I/O contract identical across precisions.
    """
    float32 = onnx.TensorProto.FLOAT
    wanted = {o.name for o in original.graph.output if o.type.tensor_type.elem_type == float32}
    for out in converted.graph.output:
        if out.name not in wanted or out.type.tensor_type.elem_type == float32:
            continue
        inner = f"{out.name}__fp16"
        for node in converted.graph.node:
            node.output[:] = [inner if o == out.name else o for o in node.output]
            node.input[:] = [inner if i == out.name else i for i in node.input]
        converted.graph.node.append(
            onnx.helper.make_node("Cast", [inner], [out.name], to=float32, name=f"{out.name}/cast_float32")
        )
        out.type.tensor_type.elem_type = float32


def to_fp16(
    model: onnx.ModelProto, keep_fp32_ops: dict[str, str] | None = None, keep_fp32_nodes: list[str] | None = None
) -> tuple[onnx.ModelProto, dict[str, int]]:
    """``model`` computing in float16 except ``keep_fp32_ops`` op types, named nodes and the ruled ones.

    Ruled: ``post/*``, ``frame/*`` and the family rules of :mod:`calib.precision_rules` (the
    family is the graph's contract's ``extra["model_type"]``).

    Graph inputs and outputs stay float32 (the runtime's contract). Q/DQ nodes are converted too
    (their scales become float16, which needs opset >= 19). Returns (the converted model, the
    op types kept in FP32 with their node counts).
    """
    from onnxconverter_common import float16

    ops = FP32_OPS if keep_fp32_ops is None else keep_fp32_ops
    model = _copy(model)
    unshare_initializers(model)
    ruled = fp32_nodes(model)  # post/*, frame/* and the family's own rules
    block_nodes = list(keep_fp32_nodes or []) + [n for n in ruled if n not in set(keep_fp32_nodes or [])]
    # Casts of integer/bool tensors to float32 (LW-DETR / RF-DETR masks and position indices):
    # onnxconverter-common retypes their outputs float16 but keeps ``to=FLOAT``, a graph ONNX
    # Runtime rejects; kept as FP32 nodes, the converter casts their outputs for FP16 consumers.
    block_nodes += [n.name for n in model.graph.node if _casts_to_float32(n) and n.name not in set(block_nodes)]
    block_ops = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(ops))
    with warnings.catch_warnings(record=True) as caught:  # one per tiny weight: summarise instead
        warnings.simplefilter("always", UserWarning)
        converted = float16.convert_float_to_float16(
            model, keep_io_types=True, op_block_list=block_ops, node_block_list=block_nodes
        )
    truncated = sum("will be truncated" in str(w.message) for w in caught)
    if truncated:
        log.info("FP16: %d weights outside [1e-7, 1e4] in magnitude were clamped into it", truncated)
    _restore_float32_outputs(model, converted)
    kept = Counter(n.op_type for n in model.graph.node if n.op_type in ops or n.name in block_nodes)
    return converted, dict(kept)


def _casts_to_float32(node: onnx.NodeProto) -> bool:
    return node.op_type == "Cast" and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT for a in node.attribute)


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def write_fp16(
    fp32_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    keep_fp32_ops: dict[str, str] | None = None,
    keep_fp32_nodes: list[str] | None = None,
) -> dict[str, Any]:
    """Convert the fp32 ONNX to FP16, keeping ``keep_fp32_ops`` op types and named nodes in FP32.

    Returns a report with the number of nodes converted and kept.
    """
    common = require("onnxconverter_common", "writing an FP16 ONNX")

    from rtdetr_edge import atomic

    ops = FP32_OPS if keep_fp32_ops is None else keep_fp32_ops
    model = onnx.load(str(fp32_path))
    converted, kept = to_fp16(model, ops, keep_fp32_nodes)
    with atomic.replacing_file(out_path, suffix=".onnx") as tmp:
        onnx.save(converted, str(tmp))
    log.info("FP16 model written (onnxconverter-common %s); kept in FP32: %s", common.__version__, kept)
    ruled = Counter(fp32_nodes(model).values())
    return {
        "file": os.path.basename(os.fspath(out_path)),
        "kept_fp32": kept,
        "fp32_op_types": ops,
        "model_type": model_type_of(model),
        "fp32_rules": dict(ruled),
    }
