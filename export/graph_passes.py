"""Small, named ONNX graph passes (torch-free: onnx, onnxsim, onnx-graphsurgeon).

Each pass says why TensorRT (or ONNX Runtime) wants it. Used by the exporter and by anything that
needs to rewrite a bundle's graph.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import onnx

from rtdetr_edge._optional import require
from rtdetr_edge.errors import ExportError

log = logging.getLogger("rtdetr_edge")

TOPK_OUTPUTS = ("scores", "labels", "boxes")
SKIPPED_ONNXSIM_PASSES = ["fuse_matmul_add_bias_into_gemm", "fuse_matmul_add_bias_into_gemm_batched"]


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Node count per op type, most frequent first."""
    return dict(collections.Counter(n.op_type for n in model.graph.node).most_common())


@contextlib.contextmanager
def _native_output_to_log() -> Iterator[None]:
    """Send what native code prints to fd 1/2 (onnxsim prints one line per unfoldable node) to the log."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            lines = sink.read().decode(errors="replace").splitlines()
            if lines:
                log.debug("native output (%d lines), first: %s", len(lines), lines[0])


def simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxsim: constant folding, shape inference and fusion, keeping the batch dynamic.

    TensorRT builds faster and fuses better without the Shape/Gather/Concat chains that tracing
    leaves around reshapes and the anchor and position-embedding constants.

    The MatMul+Add -> Gemm fusions are skipped: on 3-D activations they wrap each linear layer in
    Reshape/Gemm/Reshape named ``Gemm_N``, which TensorRT does not need (it fuses MatMul+Add
    itself) and which loses the module-path node names that INT8 layer groups, precision
    constraints and layer-wise accuracy reports refer to.
    """
    onnxsim = require("onnxsim", "simplifying the ONNX graph")
    try:
        with _native_output_to_log():
            try:
                simplified, ok = onnxsim.simplify(model, skipped_optimizers=SKIPPED_ONNXSIM_PASSES)
            except RuntimeError as exc:
                if "topologically sorted" not in str(exc):
                    raise
                # onnxsim's initializer deduplication leaves a Reshape reading a removed constant
                # on DEIMv2's DINOv3 backbone (RoPE tables); without it the graph simplifies
                # fine, only equal constants stay separate tensors.
                log.info("onnxsim: %s; retrying without eliminate_duplicate_initializer", str(exc).splitlines()[0])
                simplified, ok = onnxsim.simplify(
                    model, skipped_optimizers=[*SKIPPED_ONNXSIM_PASSES, "eliminate_duplicate_initializer"]
                )
    except Exception as exc:  # onnxsim raises plain RuntimeError/ValueError from C++
        raise ExportError(f"onnxsim failed: {type(exc).__name__}: {exc}") from exc
    if not ok:
        raise ExportError("onnxsim could not validate the simplified graph")
    return simplified


def cleanup(model: onnx.ModelProto) -> onnx.ModelProto:
    """graphsurgeon fold_constants + cleanup + toposort.

    Removes dead nodes and unused initializers (the TensorRT parser rejects graphs whose nodes
    are not in topological order and wastes memory on unused weights).
    """
    gs = require("onnx_graphsurgeon", "cleaning the ONNX graph")
    graph = gs.import_onnx(model)
    graph.fold_constants().cleanup().toposort()
    out = gs.export_onnx(graph)
    out.ir_version = model.ir_version
    del out.opset_import[:]
    out.opset_import.extend(model.opset_import)
    return out


def infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """ONNX shape inference with data propagation, so every value has a type and rank.

    Tools that place Q/DQ nodes and TensorRT's parser both rely on known value types.
    """
    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except onnx.shape_inference.InferenceError as exc:
        raise ExportError(f"ONNX shape inference failed: {exc}") from exc


def add_topk(model: onnx.ModelProto, top_k: int, num_classes: int) -> onnx.ModelProto:
    """Append RT-DETR's postprocessing to a raw graph: sigmoid -> top-k -> labels/boxes.

    ``logits`` [N,Q,C] and ``pred_boxes`` [N,Q,4] (normalised cxcywh) become ``scores`` [N,K]
    float32, ``labels`` [N,K] int32 and ``boxes`` [N,K,4] float32 normalised xyxy, as in the
    official RT-DETR deploy graph but without the image-size input: the runtime scales boxes per
    image, so batches need nothing but images.

    TensorRT notes: K is a constant (TensorRT's TopK needs a build-time K, at most 3840); TopK's
    indices are INT64 in ONNX and are divided/modded in INT64 (TensorRT computes these in INT32,
    exact for Q*C < 2^31); ``labels`` is cast to INT32 so no INT64 reaches the graph outputs.
    """
    gs = require("onnx_graphsurgeon", "adding top-k postprocessing")
    graph = gs.import_onnx(model)
    outs = {t.name: t for t in graph.outputs}
    if "logits" not in outs or "pred_boxes" not in outs:
        raise ExportError(f"add_topk: graph outputs {sorted(outs)} lack 'logits'/'pred_boxes'")
    logits, boxes = outs["logits"], outs["pred_boxes"]
    k = int(top_k)
    if k < 1:
        raise ExportError(f"--top-k must be >= 1, got {top_k}")

    def const(name: str, value: Any, dtype: Any = np.int64) -> Any:
        return gs.Constant(f"post/{name}", np.asarray(value, dtype=dtype))

    # Graph.layer() uniquifies string output names ("scores" -> "scores_2"); the I/O names are
    # the contract, so the outputs are Variables named exactly, and clashing inner tensors yield.
    taken = graph.tensors()
    for name in TOPK_OUTPUTS:
        if name in taken:
            taken[name].name = f"{name}_inner"
    final = {name: gs.Variable(name) for name in TOPK_OUTPUTS}

    (probs,) = graph.layer(op="Sigmoid", name="post/sigmoid", inputs=[logits], outputs=["post/probs"])
    (flat,) = graph.layer(
        op="Reshape", name="post/flatten", inputs=[probs, const("flat_shape", [0, -1])], outputs=["post/flat"]
    )
    scores, index = graph.layer(
        op="TopK",
        name="post/topk",
        inputs=[flat, const("k", [k])],
        outputs=[final["scores"], "post/index"],
        attrs={"axis": 1, "largest": 1, "sorted": 1},
    )
    classes = const("num_classes", num_classes)
    (label64,) = graph.layer(op="Mod", name="post/label", inputs=[index, classes], outputs=["post/label64"])
    (labels,) = graph.layer(
        op="Cast",
        name="post/label_int32",
        inputs=[label64],
        outputs=[final["labels"]],
        attrs={"to": onnx.TensorProto.INT32},
    )
    (query,) = graph.layer(op="Div", name="post/query", inputs=[index, classes], outputs=["post/query"])
    (query3,) = graph.layer(
        op="Unsqueeze", name="post/query_unsqueeze", inputs=[query, const("axis2", [2])], outputs=["post/query3"]
    )
    (gather_idx,) = graph.layer(
        op="Tile", name="post/query_tile", inputs=[query3, const("tile", [1, 1, 4])], outputs=["post/gather_index"]
    )
    (cxcywh,) = graph.layer(
        op="GatherElements",
        name="post/gather_boxes",
        inputs=[boxes, gather_idx],
        outputs=["post/cxcywh"],
        attrs={"axis": 1},
    )
    cxcy, wh = graph.layer(
        op="Split",
        name="post/split",
        inputs=[cxcywh, const("split", [2, 2])],
        outputs=["post/cxcy", "post/wh"],
        attrs={"axis": 2},
    )
    (half,) = graph.layer(
        op="Mul", name="post/half", inputs=[wh, const("half", 0.5, np.float32)], outputs=["post/half_wh"]
    )
    (xy0,) = graph.layer(op="Sub", name="post/xy0", inputs=[cxcy, half], outputs=["post/xy0"])
    (xy1,) = graph.layer(op="Add", name="post/xy1", inputs=[cxcy, half], outputs=["post/xy1"])
    (xyxy,) = graph.layer(op="Concat", name="post/xyxy", inputs=[xy0, xy1], outputs=[final["boxes"]], attrs={"axis": 2})
    batch = logits.shape[0] if logits.shape else "batch"
    scores.dtype, scores.shape = np.float32, [batch, k]
    labels.dtype, labels.shape = np.int32, [batch, k]
    xyxy.dtype, xyxy.shape = np.float32, [batch, k, 4]
    graph.outputs = [scores, labels, xyxy]
    graph.cleanup().toposort()
    out = gs.export_onnx(graph)
    out.ir_version = model.ir_version
    del out.opset_import[:]
    out.opset_import.extend(model.opset_import)
    return out


def int64_report(model: onnx.ModelProto) -> dict[str, Any]:
    """Where INT64 appears (TensorRT 8.6 casts INT64 to INT32; 10.x handles INT64 indices).

    Returns counts of INT64 initializers and values, and whether any graph input or output is
    INT64 (which would change the I/O contract on TensorRT).
    """
    i64 = onnx.TensorProto.INT64
    inits = [t.name for t in model.graph.initializer if t.data_type == i64]
    values = [v.name for v in model.graph.value_info if v.type.tensor_type.elem_type == i64]
    io = [v.name for v in list(model.graph.input) + list(model.graph.output) if v.type.tensor_type.elem_type == i64]
    return {"int64_initializers": len(inits), "int64_values": len(values), "int64_io": io}


def set_metadata(model: onnx.ModelProto, props: dict[str, str]) -> onnx.ModelProto:
    """Write ``props`` into ``metadata_props`` (replacing existing keys)."""
    keep = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model
