"""Which ONNX ops TensorRT's ONNX parser takes, per TensorRT line, and a whole-graph check against that.

A static check against the parser's documented support matrix, **not** a TensorRT parse: a graph
that passes can still fail to parse or build (types, shapes, restrictions the matrix does not
list or this module does not check); a graph that fails here uses an op or attribute the matrix
says the parser does not take. The build records it for every ONNX artifact (``report.json``'s
``tensorrt_ops``) so that a family or exporter change that needs a newer TensorRT shows up on the
host, before anyone copies a bundle to a Jetson.

Source: onnx/onnx-tensorrt ``docs/operators.md`` (the parser's own support matrix)

* TensorRT 8.6 (JetPack 6.0): tag ``release/8.6-GA`` (commit 6ba67d34): opsets up to 17; "TensorRT
  will attempt to cast down INT64 to INT32" (so INT64 index/shape math is not a fault).
* TensorRT 10.x (JetPack 6.1/6.2: 10.3): tag ``release/10.1-GA`` (commit 96e78110), the newest
  10.x tag in the repository snapshot we read (no 10.3 tag there; versions 10.x all map to this
  matrix): "opset 9 to opset 20"; INT64 native.

Restrictions checked (each quoted from those files): ``DequantizeLinear`` "``x_zero_point`` must
be zero", ``QuantizeLinear`` "``y_zero_point`` must be 0" (both lines; DequantizeLinear's types:
8.6 INT8, 10.x INT8, FP8 and INT4); ``Resize`` modes ``nearest``/``linear`` and the listed
coordinate transformation modes, 10.x "Antialiasing is not supported"; 10.x ``TopK`` "``sorted``
must be 1. ``K`` input must be less than 3840" and ``ScatterND`` "``reduction`` is not supported".
TopK's K: the 8.2-8.5 matrices said "``K`` input must be an initializer"; 8.6-GA dropped that and
its importer hands K to ``ITopKLayer::setInput(1)``, which takes a shape tensor, so K must be a
constant or computed from tensor shapes (``Shape``/``Size``), never from tensor data. Nodes in a
domain other than the ONNX one are custom ops: the parser takes them only as TensorRT plugins.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rtdetr_edge.errors import InputError

if TYPE_CHECKING:
    import onnx

# TensorRT lines we target -> the newest default-domain opset the parser reads (and the oldest)
TENSORRT_LINES = ("8.6", "10")
MAX_OPSET = {"8.6": 17, "10": 20}
MIN_OPSET = {"8.6": 1, "10": 9}
SOURCE = {
    "8.6": "onnx/onnx-tensorrt release/8.6-GA (6ba67d34) docs/operators.md",
    "10": "onnx/onnx-tensorrt release/10.1-GA (96e78110) docs/operators.md",
}

# "Supported: Y" rows of docs/operators.md at release/8.6-GA (145 ops); an op not listed is unsupported
_OPS_86 = """
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil
Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace
DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor GRU Gather
GatherElements GatherND Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual
GridSample GroupNormalization HardSigmoid HardSwish Identity If ImageScaler InstanceNormalization
IsInf IsNaN LRN LSTM LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop
LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min Mod Mul Neg
NonMaxSuppression NonZero Not OneHot Or PRelu Pad ParametricSoftplus Pow QuantizeLinear RNN
RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2
ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare
Relu Reshape Resize ReverseSequence RoiAlign Round ScaledTanh Scan Scatter ScatterElements ScatterND
Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt
Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
"""
# release/10.1-GA adds these five "Y" rows (150 ops); it removes none of 8.6's
_OPS_10_ADDED = "CastLike DeformConv Gelu Hardmax Mish"
# Listed "N" at either ref (for the message: "listed as unsupported" vs "not in the matrix")
_LISTED_NO = """
AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor BlackmanWindow CenterCropPad
Col2Im Compress ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear HammingWindow HannWindow
ImageDecoder MatMulInteger MaxRoiPool MaxUnpool MelWeightMatrix Multinomial NegativeLogLikelihoodLoss
Optional OptionalGetElement OptionalHasElement QLinearConv QLinearMatMul RegexFullMatch STFT SequenceAt
SequenceConstruct SequenceEmpty SequenceErase SequenceInsert SequenceLength SequenceMap
SoftmaxCrossEntropyLoss SplitToSequence StringConcat StringNormalizer StringSplit TfIdfVectorizer Unique
"""

SUPPORTED_OPS: dict[str, frozenset[str]] = {
    "8.6": frozenset(_OPS_86.split()),
    "10": frozenset(_OPS_86.split()) | frozenset(_OPS_10_ADDED.split()),
}
LISTED_UNSUPPORTED = frozenset(_LISTED_NO.split())

# Resize: "Supported resize transformation modes" / "Supported resize modes" (both refs)
RESIZE_MODES = frozenset({"nearest", "linear"})
RESIZE_COORDINATE_MODES = frozenset(
    {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
)
# DequantizeLinear's "Supported Types" (the quantized side; QuantizeLinear lists its float input)
QDQ_TYPES = {"8.6": frozenset({3}), "10": frozenset({3, 17, 22})}  # INT8; 10.x also FLOAT8E4M3FN, INT4
TOPK_MAX_K = 3840  # 10.x: "`K` input must be less than 3840"
# ops whose outputs carry only shapes: a value computed from these and constants is a shape tensor
_SHAPE_SOURCES = frozenset({"Shape", "Size"})
_ONNX_DOMAINS = ("", "ai.onnx")


def tensorrt_line(version: str) -> str:
    """``"8.6"``, ``"8.6.2"`` -> ``"8.6"``; ``"10"``, ``"10.3.0"`` -> ``"10"``; else a one-line InputError."""
    text = str(version).strip()
    for line in TENSORRT_LINES:
        if text == line or text.startswith(line + "."):
            return line
    raise InputError(f"tensorrt {version!r}: expected one of the TensorRT lines {', '.join(TENSORRT_LINES)}")


def supported_ops(tensorrt: str = "8.6") -> frozenset[str]:
    """The default-domain op types the parser of ``tensorrt``'s line imports."""
    return SUPPORTED_OPS[tensorrt_line(tensorrt)]


def default_opset(model: onnx.ModelProto) -> int:
    """The model's default-domain opset (0 when it imports none)."""
    return next((o.version for o in model.opset_import if o.domain in _ONNX_DOMAINS), 0)


def op_faults(model: onnx.ModelProto, tensorrt: str = "8.6", prefix: str = "") -> list[str]:
    """Why ``tensorrt``'s ONNX parser would refuse ``model`` (empty: the documented matrix allows it).

    One line per problem: the opset outside the line's range; each unsupported op type (node
    count and the first node's name); each custom-domain op; TopK whose K is computed from
    tensor data (and, for 10.x, ``sorted=0`` or a constant K of 3840 or more); Q/DQ with a
    non-zero or non-constant zero point, or one of a type the line does not quantize to; Resize
    modes outside the matrix; 10.x ScatterND with a ``reduction``. Subgraphs (If/Loop/Scan bodies) are walked too.

    Args:
        model: the graph, with its external data loaded where Q/DQ zero points or TopK's K
            live there.
        tensorrt: a TensorRT line or version (``"8.6"``, ``"10"``, ``"10.3.0"``); default 8.6.
        prefix: check only nodes whose name starts with it (the opset is always checked); ``""``
            (default) checks every node.

    Raises:
        InputError: ``tensorrt`` is not a line we target.
    """
    line = tensorrt_line(tensorrt)
    faults = []
    opset = default_opset(model)
    if opset > MAX_OPSET[line]:
        faults.append(f"opset {opset} > {MAX_OPSET[line]} (TensorRT {line} parses up to opset {MAX_OPSET[line]})")
    elif opset < MIN_OPSET[line]:
        faults.append(f"opset {opset} < {MIN_OPSET[line]} (TensorRT {line} parses opset {MIN_OPSET[line]} and later)")
    graph = _GraphFacts(model.graph)
    nodes = [n for n in _walk(model.graph) if n.name.startswith(prefix)]
    faults += _op_type_faults(nodes, line)
    for node in nodes:
        if node.domain not in _ONNX_DOMAINS:
            continue
        if node.op_type == "TopK":
            faults += _topk_faults(node, graph, line, opset)
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            faults += _qdq_faults(node, graph, line)
        elif node.op_type == "Resize":
            faults += _resize_faults(node, line)
        elif node.op_type == "ScatterND" and line == "10" and _attr(node, "reduction", "none") != "none":
            faults.append(
                f"node {node.name}: ScatterND reduction={_attr(node, 'reduction', '')} (TensorRT 10 has none)"
            )
    return faults


def all_op_faults(model: onnx.ModelProto) -> dict[str, list[str]]:
    """:func:`op_faults` for every line in :data:`TENSORRT_LINES`."""
    return {line: op_faults(model, line) for line in TENSORRT_LINES}


def artifact_op_faults(directory: str | os.PathLike[str], artifacts: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    """:func:`op_faults` of every ONNX graph a bundle's ``artifacts`` list, per TensorRT line it is for.

    A graph with a TensorRT 8.x sibling (``trt8_file``: int8's opset-19 Q/DQ graph) is checked for
    TensorRT 10 only and the sibling for 8.6 only; every other graph (frame-input ones included)
    for both lines.

    Args:
        directory: the bundle (or the directory it is being assembled in).
        artifacts: ``metadata["artifacts"]``.

    Returns:
        file -> line -> faults (empty lists: the matrix allows it).
    """
    import onnx

    graphs: dict[str, tuple[str, ...]] = {}
    for art in artifacts.values():
        for entry in [art, *(art.get("frames") or {}).values()]:
            if str(entry.get("file", "")).endswith(".onnx"):
                graphs[entry["file"]] = ("10",) if entry.get("trt8_file") else TENSORRT_LINES
            if entry.get("trt8_file"):
                graphs[entry["trt8_file"]] = ("8.6",)
    checks = {}
    for name, lines in graphs.items():
        model = onnx.load(str(Path(directory) / name))
        checks[name] = {line: op_faults(model, line) for line in lines}
    return checks


def _op_type_faults(nodes: list[onnx.NodeProto], line: str) -> list[str]:
    counts: dict[tuple[str, str], list[str]] = {}
    for n in nodes:
        if n.domain in _ONNX_DOMAINS and n.op_type in SUPPORTED_OPS[line]:
            continue
        counts.setdefault((n.domain, n.op_type), []).append(n.name or "<unnamed>")
    faults = []
    for (domain, op), names in sorted(counts.items()):
        where = f"{len(names)} node{'s' if len(names) > 1 else ''}, e.g. {names[0]}"
        if domain not in _ONNX_DOMAINS:
            faults.append(
                f"op {domain}::{op} ({where}): custom domain {domain!r}; TensorRT {line} parses it only as a plugin"
            )
        elif op in LISTED_UNSUPPORTED:
            faults.append(f"op {op} ({where}): listed unsupported by TensorRT {line}'s ONNX parser")
        else:
            faults.append(f"op {op} ({where}): not in TensorRT {line}'s ONNX parser support matrix")
    return faults


def _topk_faults(node: onnx.NodeProto, graph: _GraphFacts, line: str, opset: int) -> list[str]:
    faults = []
    if line == "10" and _attr(node, "sorted", 1) != 1:
        faults.append(f"node {node.name}: TopK sorted=0 (TensorRT 10 needs sorted=1)")
    if opset < 10 or len(node.input) < 2:
        return faults  # K is the `k` attribute
    k = graph.constant(node.input[1])
    if k is not None:
        if line == "10" and k.size and int(k.reshape(-1)[0]) >= TOPK_MAX_K:
            faults.append(f"node {node.name}: TopK K={int(k.reshape(-1)[0])} (TensorRT 10 needs K < {TOPK_MAX_K})")
    elif not graph.from_shapes(node.input[1]):
        faults.append(
            f"node {node.name}: TopK K ({node.input[1]}) is computed from tensor data or a graph input; "
            f"TensorRT {line} needs K constant or computed from tensor shapes"
        )
    return faults


def _qdq_faults(node: onnx.NodeProto, graph: _GraphFacts, line: str) -> list[str]:
    from onnx import TensorProto

    which = "y_zero_point" if node.op_type == "QuantizeLinear" else "x_zero_point"
    if len(node.input) < 3 or not node.input[2]:
        return []  # no zero point: ONNX's default uint8 0, which the matrix does not speak to
    zp = graph.constant(node.input[2])
    if zp is None:
        return [f"node {node.name}: {node.op_type} {which} is not a constant (TensorRT {line} needs it zero)"]
    faults = []
    if np.any(zp.astype(np.float64) != 0):
        faults.append(f"node {node.name}: {node.op_type} {which} is not zero (TensorRT {line} needs it zero)")
    dtype = graph.dtype(node.input[2])
    if dtype not in QDQ_TYPES[line]:
        allowed = ", ".join(TensorProto.DataType.Name(t) for t in sorted(QDQ_TYPES[line]))
        faults.append(
            f"node {node.name}: {node.op_type} is {TensorProto.DataType.Name(dtype)} (TensorRT {line} takes {allowed})"
        )
    return faults


def _resize_faults(node: onnx.NodeProto, line: str) -> list[str]:
    faults = []
    mode = _attr(node, "mode", "nearest")
    if mode not in RESIZE_MODES:
        faults.append(f"node {node.name}: Resize mode={mode} (TensorRT {line}: nearest or linear)")
    coord = _attr(node, "coordinate_transformation_mode", "half_pixel")
    if coord not in RESIZE_COORDINATE_MODES:
        faults.append(
            f"node {node.name}: Resize coordinate_transformation_mode={coord} (not one TensorRT {line} takes)"
        )
    if line == "10" and _attr(node, "antialias", 0):
        faults.append(f"node {node.name}: Resize antialias=1 (TensorRT 10 does not antialias)")
    return faults


def _attr(node: onnx.NodeProto, name: str, default: int | str) -> int | str:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            value = helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else int(value)
    return default


def _walk(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of ``graph`` and of its subgraphs (If branches, Loop and Scan bodies)."""
    from onnx import AttributeProto

    for node in graph.node:
        yield node
        for a in node.attribute:
            if a.type == AttributeProto.GRAPH:
                yield from _walk(a.g)
            elif a.type == AttributeProto.GRAPHS:
                for g in a.graphs:
                    yield from _walk(g)


class _GraphFacts:
    """Which tensors are constants (initializers, Constant outputs) and who produces each tensor."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.initializers = {t.name: t for t in graph.initializer}
        self.producer = {o: n for n in _walk(graph) for o in n.output}

    def constant(self, name: str) -> np.ndarray | None:
        from onnx import numpy_helper

        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
                if a.name in ("value_int", "value_ints"):
                    return np.asarray(a.i if a.name == "value_int" else list(a.ints), dtype=np.int64)
        return None

    def dtype(self, name: str) -> int:
        """The TensorProto data type of constant ``name`` (0 when unknown)."""
        if name in self.initializers:
            return int(self.initializers[name].data_type)
        node = self.producer.get(name)
        for a in node.attribute if node is not None else ():
            if a.name == "value":
                return int(a.t.data_type)
        return 0

    def from_shapes(self, name: str) -> bool:
        """Whether ``name`` is computed from constants and tensor shapes only (a TensorRT shape tensor)."""
        seen: set[str] = set()
        todo = [name]
        while todo:
            tensor = todo.pop()
            if tensor in seen or not tensor or tensor in self.initializers:
                continue
            seen.add(tensor)
            node = self.producer.get(tensor)
            if node is None:
                return False  # a graph input: data (or a shape-tensor input needing its own profile)
            if node.op_type in _SHAPE_SOURCES or node.op_type in ("Constant", "ConstantOfShape"):
                continue
            todo.extend(_inputs(node))
        return True


def _inputs(node: onnx.NodeProto) -> Iterable[str]:
    return (i for i in node.input if i)


__all__ = [
    "LISTED_UNSUPPORTED",
    "MAX_OPSET",
    "MIN_OPSET",
    "SOURCE",
    "SUPPORTED_OPS",
    "TENSORRT_LINES",
    "all_op_faults",
    "artifact_op_faults",
    "default_opset",
    "op_faults",
    "supported_ops",
    "tensorrt_line",
]
