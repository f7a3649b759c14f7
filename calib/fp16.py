"""FP16 ONNX that keeps overflow-prone nodes in FP32 (for TensorRT 11 and GPU ONNX Runtime).

TensorRT 11 networks are strongly typed, so FP16 has to be in the graph itself (on 8.6-10.x the
builder's FP16 flag does it from the fp32 ONNX instead). RT-DETR in FP16 can overflow in the
decoder's LayerNorm path and give wrong boxes or duplicates (lyuwenyu/RT-DETR#104, #222;
NVIDIA/TensorRT#3652), so those nodes stay FP32 by default, as do the score/box postprocessing
(top-k order must match fp32 exactly) and the graph's inputs and outputs (the runtime's
contract stays float32).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import Counter
from typing import Any

import onnx

from rtdetr_edge._optional import require

log = logging.getLogger("rtdetr_edge")

POST_PREFIX = "post/"  # the exporter's postprocessing tail, kept in FP32
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
    """``model`` computing in float16 except ``keep_fp32_ops`` op types, named nodes and ``post/*``.

    Graph inputs and outputs stay float32 (the runtime's contract). Q/DQ nodes are converted too
    (their scales become float16, which needs opset >= 19). Returns (the converted model, the
    op types kept in FP32 with their node counts).
    """
    from onnxconverter_common import float16

    ops = FP32_OPS if keep_fp32_ops is None else keep_fp32_ops
    model = _copy(model)
    unshare_initializers(model)
    post = [n.name for n in model.graph.node if n.name.startswith(POST_PREFIX)]
    block_nodes = list(keep_fp32_nodes or []) + post
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
    converted, kept = to_fp16(onnx.load(str(fp32_path)), ops, keep_fp32_nodes)
    with atomic.replacing_file(out_path, suffix=".onnx") as tmp:
        onnx.save(converted, str(tmp))
    log.info("FP16 model written (onnxconverter-common %s); kept in FP32: %s", common.__version__, kept)
    return {"file": os.path.basename(os.fspath(out_path)), "kept_fp32": kept, "fp32_op_types": ops}
