"""Split the calibration run into graph segments whose fetched activations fit a byte budget.

Fetching every calibrated tensor of a batch from one ONNX Runtime run holds all of them at once:
an r18vd-shaped RT-DETR at 640x640 fetches ~400 MB per image, 3.2 GB per batch of 8, and the
collector kept two batches alive (one histogrammed while the next runs) on top of ONNX Runtime's
own copies: 11 GB. Splitting the *tensors* into groups run by separate whole-model sessions would
repeat the inference once per group; splitting the *graph* does not: segment k runs only its
nodes (in topological order), reads what earlier segments passed on, fetches its own calibrated
tensors and passes on what later segments read.

The graph split is the one ONNX Runtime would run: the model with every fetched tensor as an
output is optimised once, whole (:func:`optimized_graph`), and that graph is cut; the segments
then run unoptimised. So every fusion and layout choice is the one run's, each kernel gets the
same inputs, and each tensor arrives whole for its batch: the histograms, hence the ranges, are
those of one run, bit for bit. (Cutting the *source* graph instead lets the optimiser fuse
differently on each side of a cut: a bias ``Add`` whose ``MatMul`` is in the segment before is not
folded into ``SkipLayerNormalization``, and values change in their last bits.)
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from rtdetr_edge._optional import require
from rtdetr_edge.errors import CalibrationError

_BYTES = {onnx.TensorProto.FLOAT: 4, onnx.TensorProto.FLOAT16: 2, onnx.TensorProto.DOUBLE: 8}


@dataclass(frozen=True)
class Segment:
    """One ONNX Runtime run of a calibration batch: a span of a graph's nodes.

    Attributes:
        nodes: indices of its nodes in the graph's node list (topological order).
        inputs: what it reads: graph inputs and tensors earlier segments pass on.
        fetched: the calibrated tensors it produces (histogrammed).
        passed_on: tensors it produces that later segments read (some may be fetched too).
    """

    nodes: list[int]
    inputs: list[str]
    fetched: list[str]
    passed_on: list[str]

    def model(self, graph_model: onnx.ModelProto, known: Mapping[str, onnx.ValueInfoProto]) -> onnx.ModelProto:
        """The segment as a model of its own: its nodes and the initializers they read.

        ``known`` declares its inputs (types as the segments before it produce them); its outputs
        are left for ONNX Runtime to type.
        """
        missing = [name for name in self.inputs if name not in known]
        if missing:
            raise CalibrationError(f"calibration: no type known for segment input(s) {missing[:3]}")
        nodes = [graph_model.graph.node[k] for k in self.nodes]
        reads = set[str]().union(*(_used_names(node) for node in nodes))
        outputs = []
        for name in self.fetched + [p for p in self.passed_on if p not in self.fetched]:
            info = onnx.ValueInfoProto()
            info.name = name
            outputs.append(info)
        graph = onnx.helper.make_graph(
            nodes,
            f"{graph_model.graph.name}-segment",
            [known[name] for name in self.inputs],
            outputs,
            [t for t in graph_model.graph.initializer if t.name in reads],
        )
        out = onnx.helper.make_model(
            graph, opset_imports=list(graph_model.opset_import), ir_version=graph_model.ir_version
        )
        out.functions.extend(graph_model.functions)
        return out


def group_by_budget(sizes: Sequence[int], budget: int) -> list[range]:
    """Consecutive groups of ``sizes`` (in order) whose sums stay within ``budget``.

    A size above ``budget`` gets a group of its own (a tensor cannot be split); otherwise a group
    closes when the next size would exceed the budget. Empty input: no groups.
    """
    groups: list[range] = []
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if i > start and total + size > budget:
            groups.append(range(start, i))
            start, total = i, 0
        total += size
    if sizes:
        groups.append(range(start, len(sizes)))
    return groups


def bytes_per_image(model: onnx.ModelProto, names: Iterable[str]) -> dict[str, int]:
    """Estimated bytes per image (per unit of the first dimension) of each of ``names``.

    From ONNX shape inference (with data propagation); a tensor whose other dimensions are unknown
    is estimated as its producer's largest input, in topological order (attention reshapes keep
    their input's size). Only planning uses these numbers.
    """
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    known: dict[str, int] = {}
    for info in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        ttype = info.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in ttype.shape.dim]
        if ttype.HasField("shape") and dims and all(dims[1:]):
            known[info.name] = int(np.prod(dims[1:], dtype=np.int64)) * _BYTES.get(ttype.elem_type, 4)
    for init in model.graph.initializer:
        known.setdefault(init.name, 0)  # weights are not per image
    for node in model.graph.node:
        for out in node.output:
            if out and out not in known:
                known[out] = max((known.get(i, 0) for i in node.input if i), default=0)
    return {name: known.get(name, 0) for name in names}


def _used_names(node: onnx.NodeProto) -> set[str]:
    """Every tensor a node reads, its subgraphs' outer-scope references included."""
    names = {i for i in node.input if i}
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for graph in graphs:
            inner = {i.name for i in graph.initializer} | {i.name for i in graph.input}
            for sub in graph.node:
                inner |= {o for o in sub.output if o}
            for sub in graph.node:
                names |= _used_names(sub) - inner
    return names


def optimized_graph(model: onnx.ModelProto, level: Any, threads: int | None = None) -> onnx.ModelProto:
    """``model`` as ONNX Runtime runs it on this CPU at optimisation ``level`` (fused, NCHWc layout,
    contrib ops; nodes in topological order): valid in this process, not a portable model."""
    ort = require("onnxruntime", "collecting calibration activations")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = level
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    with tempfile.TemporaryDirectory(prefix="rtdetr-calib-") as tmp:
        opts.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return onnx.load(opts.optimized_model_filepath)


def split_for_fetch(
    model: onnx.ModelProto, fetched: Sequence[str], sizes: Mapping[str, int], budget: int
) -> list[Segment]:
    """Segments of ``model`` that together produce ``fetched``, each fetching at most ``budget``
    bytes unless one tensor alone is larger.

    Fetched tensors are grouped in the order they are produced (:func:`group_by_budget`); segment
    k holds the nodes after segment k-1's up to its last tensor's producer. Nodes no fetched
    tensor depends on are left out (the postprocessing tail). ``sizes``: bytes of each fetched
    tensor in one run (e.g. :func:`bytes_per_image` x batch size).

    Raises:
        CalibrationError: a fetched tensor no node produces.
    """
    nodes = list(model.graph.node)
    producer = {out: k for k, node in enumerate(nodes) for out in node.output if out}
    missing = [name for name in fetched if name not in producer]
    if missing:
        raise CalibrationError(f"calibration: no node produces {missing[:3]}")
    uses = [_used_names(node) for node in nodes]
    needed: set[int] = set()
    todo = [producer[name] for name in fetched]
    while todo:
        k = todo.pop()
        if k not in needed:
            needed.add(k)
            todo += [producer[i] for i in uses[k] if i in producer]
    order = sorted(fetched, key=lambda name: producer[name])
    groups = group_by_budget([int(sizes.get(name, 0)) for name in order], budget)
    ends = [producer[order[g[-1]]] for g in groups]
    spans = [[k for k in sorted(needed) if (ends[i - 1] if i else -1) < k <= end] for i, end in enumerate(ends)]
    made = [{out for k in span for out in nodes[k].output if out} for span in spans]
    inits = {t.name for t in model.graph.initializer}
    segments = []
    for i, span in enumerate(spans):
        later = {name for s in spans[i + 1 :] for k in s for name in uses[k]}
        reads = set[str]().union(*(uses[k] for k in span)) - made[i] - inits
        segments.append(
            Segment(
                span,
                sorted(reads),
                [order[j] for j in groups[i]],
                [name for k in span for name in nodes[k].output if name and name in later],
            )
        )
    return segments


_ORT_TYPES = {
    "float": onnx.TensorProto.FLOAT,
    "float16": onnx.TensorProto.FLOAT16,
    "double": onnx.TensorProto.DOUBLE,
    "int64": onnx.TensorProto.INT64,
    "int32": onnx.TensorProto.INT32,
    "int8": onnx.TensorProto.INT8,
    "uint8": onnx.TensorProto.UINT8,
    "bool": onnx.TensorProto.BOOL,
}


def value_infos(args: Iterable[Any]) -> dict[str, onnx.ValueInfoProto]:
    """ONNX Runtime's ``NodeArg`` descriptions (``session.get_outputs()``) as value infos."""
    out = {}
    for arg in args:
        elem = _ORT_TYPES.get(str(arg.type).removeprefix("tensor(").removesuffix(")"))
        if elem is None:
            raise CalibrationError(f"calibration: cannot pass {arg.name} ({arg.type}) between graph segments")
        dims = [d if isinstance(d, (int, str)) else None for d in arg.shape]
        out[arg.name] = onnx.helper.make_tensor_value_info(arg.name, elem, dims)
    return out
