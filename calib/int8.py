"""The INT8 artifacts of a bundle: one precision plan, written for each TensorRT route.

* ``model.int8.qdq.onnx``: explicit Q/DQ, **FP16-typed outside its INT8 layers** (opset 19, the
  first with float16 Q/DQ scales), FP32 only where the plan says why (LayerNorm, Softmax, the
  top-k tail). A strongly typed TensorRT network keeps ONNX types, so this is what gives INT8 +
  FP16 on TensorRT 10.x (``STRONGLY_TYPED``) and 11 (always strongly typed); ONNX Runtime runs
  it anywhere, so the host measures the exact graph TensorRT gets.
* ``model.int8.qdq.trt8.onnx``: the same Q/DQ placement, FP32-typed, at the fp32 graph's opset
  (<= 17, which TensorRT 8.6 parses): TensorRT 8.x builds it weakly typed with the INT8 and
  FP16 flags, so every layer outside the Q/DQ pairs may run FP16, and the builder pins the FP32
  layers with precision constraints (JetPack 6.0).

The native caches (for tools that calibrate implicitly: DeepStream's ``int8-calib-file``, trtexec
``--calib``; rtdetr-edge's own engines take INT8 from the Q/DQ graphs) come from
``calib/ranges.json`` and cover every tensor the planned INT8 layers read and write
(:func:`calib.collect.int8_layer_tensors`, :func:`weight_ranges`).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import onnx

from rtdetr_edge import atomic
from rtdetr_edge.errors import CalibrationError

from .fp16 import to_fp16
from .plan import graph_precisions
from .qdq import MAC_OPS, quantizable_nodes, wiring_faults, write_qdq

log = logging.getLogger("rtdetr_edge")

INT8_FILE = "model.int8.qdq.onnx"
INT8_TRT8_FILE = "model.int8.qdq.trt8.onnx"
FP16_QDQ_OPSET = 19  # QuantizeLinear/DequantizeLinear take float16 scales from opset 19 on


def fp16_typed(qdq: onnx.ModelProto) -> onnx.ModelProto:
    """The FP32-typed Q/DQ graph made FP16-typed outside INT8 layers and the FP32 ops (opset 19)."""
    from onnx import version_converter

    default = next((o for o in qdq.opset_import if o.domain in ("", "ai.onnx")), None)
    model = qdq
    if default is None or default.version < FP16_QDQ_OPSET:
        try:
            model = version_converter.convert_version(qdq, FP16_QDQ_OPSET)
        except Exception as exc:  # onnx raises RuntimeError/ValueError from its C++ adapters
            raise CalibrationError(f"cannot convert the Q/DQ graph to opset {FP16_QDQ_OPSET}: {exc}") from exc
    converted, _ = to_fp16(model)
    del converted.metadata_props[:]
    converted.metadata_props.extend(qdq.metadata_props)
    return converted


def write_int8(
    fp32_path: str | os.PathLike[str],
    ranges: dict[str, float],
    out_path: str | os.PathLike[str],
    exclude_nodes: list[str],
    trt8_path: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Write the FP16-typed Q/DQ artifact (and, with ``trt8_path``, the FP32-typed one for TensorRT 8.x).

    Returns :func:`calib.qdq.write_qdq`'s report plus each compute node's precision as the
    written graph realises it (``graph_precisions``).
    """
    with tempfile.TemporaryDirectory(prefix="rtdetr-int8-") as tmp:
        weak = Path(trt8_path) if trt8_path is not None else Path(tmp) / INT8_TRT8_FILE
        report = write_qdq(fp32_path, ranges, weak, exclude_nodes)
        strong = fp16_typed(onnx.load(str(weak)))
    faults = wiring_faults(strong)
    if faults:
        raise CalibrationError(f"internal: {len(faults)} Q/DQ wiring faults after FP16 typing, e.g. {faults[0]}")
    with atomic.replacing_file(out_path, suffix=".onnx") as tmp_path:
        onnx.save(strong, str(tmp_path))
    precisions = graph_precisions(strong)
    report.update(
        {
            "file": Path(out_path).name,
            "trt8_file": Path(trt8_path).name if trt8_path is not None else None,
            "opset": FP16_QDQ_OPSET,
            "graph_precisions": {p: sum(v == p for v in precisions.values()) for p in ("int8", "fp16", "fp32")},
        }
    )
    return report


def int8_nodes(model: onnx.ModelProto, exclude_nodes: list[str]) -> set[str]:
    """The compute nodes ``write_qdq`` quantizes for these exclusions."""
    excluded = set(exclude_nodes)
    return {n.name for n in quantizable_nodes(model) if n.name not in excluded and n.op_type in MAC_OPS}


def weight_ranges(model: onnx.ModelProto, nodes: set[str]) -> dict[str, float]:
    """max |w| of the constant weight tensor of every MatMul / Gemm in ``nodes``.

    TensorRT's parser turns such a weight into a constant layer whose output is a tensor; implicit
    INT8 needs a range for it too (Conv weights are layer weights, quantized per channel by
    TensorRT itself).
    """
    import numpy as np

    inits = {t.name: t for t in model.graph.initializer}
    out = {}
    for node in model.graph.node:
        if node.name in nodes and node.op_type in ("MatMul", "Gemm"):
            for name in node.input[:2]:
                if name in inits:
                    out[name] = max(float(np.abs(onnx.numpy_helper.to_array(inits[name])).max()), 1e-6)
    return out
