"""The INT8 precision plan: which precision every compute and sensitive layer runs in, and why.

Every Conv / ConvTranspose / MatMul / Gemm (the layers that hold the multiply-accumulates) and
every known-sensitive op (LayerNormalization, Softmax, GridSample, Sigmoid, TopK, the
in-graph postprocessing tail ``post/*``, a frame front ``frame/*`` and every node a family rule of
:mod:`calib.precision_rules` keeps in FP32, e.g. DEIMv2's decomposed RMSNorm) gets ``int8``, ``fp16`` or ``fp32`` with a reason and
where the decision came from (``default rule``, ``sensitivity search``, ``user flag``). The plan
is what :func:`calib.qdq.write_int8` realises in the INT8 artifact (INT8 where planned, FP16
elsewhere, FP32 only where the plan says why), is stored in the bundle (``calib/plan.json``), and
is printed by ``rtdetr-build`` and ``rtdetr-check`` with the share of MACs per precision.

:func:`graph_precisions` reads the precisions back from a graph itself (Q/DQ placement and tensor
types), independently of the plan: the benchmark and the tests compare the two.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import onnx

from rtdetr_edge import atomic
from rtdetr_edge._optional import require
from rtdetr_edge.errors import CalibrationError, InputError

from .fp16 import FP32_OPS, POST_PREFIX
from .precision_rules import fp32_nodes
from .qdq import MAC_OPS

Precision = Literal["int8", "fp16", "fp32"]
Source = Literal["default rule", "sensitivity search", "user flag"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
PLAN_FORMAT = "rtdetr-edge-precision-plan"
PLAN_VERSION = 1
# Ops without MACs whose precision matters for accuracy (labelled in the plan, not counted in shares)
SENSITIVE_OPS = ("LayerNormalization", "Softmax", "GridSample", "Sigmoid", "TopK")
POST_REASON = "postprocessing tail: scores and their top-k order must match fp32 exactly"
INT8_REASON = "Conv / weight MatMul with calibrated input ranges"
ACTIVATION_MATMUL_REASON = "MatMul between two activations (attention): no weights to quantize, kept out of INT8"
FP16_REASON = "no overflow risk known: FP16"


@dataclass(frozen=True)
class PlanEntry:
    """One layer's planned precision.

    Attributes:
        node: ONNX node name (the fp32 graph's; the Q/DQ and FP16 writers keep node names).
        op_type: ONNX op type.
        precision: int8, fp16 or fp32.
        reason: why.
        source: default rule, sensitivity search or user flag.
        macs: multiply-accumulates per image (0 for ops without them).
    """

    node: str
    op_type: str
    precision: str
    reason: str
    source: str
    macs: int = 0


@dataclass(frozen=True)
class PrecisionPlan:
    """Planned precision of every compute and sensitive layer (see the module docstring)."""

    entries: tuple[PlanEntry, ...]
    image_size: tuple[int, int] = (0, 0)

    @property
    def total_macs(self) -> int:
        return sum(e.macs for e in self.entries if e.op_type in MAC_OPS)

    def shares(self) -> dict[str, float]:
        """Fraction of the compute layers' MACs per precision (sums to 1)."""
        return mac_shares({e.node: e.precision for e in self.entries}, {e.node: e.macs for e in self.entries})

    def nodes(self, precision: str) -> list[str]:
        return [e.node for e in self.entries if e.precision == precision]

    def table(self) -> str:
        """The plan as a table: per precision and reason, the layers and their share of the MACs."""
        total = max(self.total_macs, 1)
        groups: dict[tuple[str, str, str], list[PlanEntry]] = defaultdict(list)
        for e in self.entries:
            groups[(e.precision, e.source, e.reason)].append(e)
        shares = self.shares()
        lines = [
            f"precision plan: {self.total_macs / 1e9:.3g} GMAC per image at {self.image_size[1]}x{self.image_size[0]}: "
            + ", ".join(f"{p} {100 * shares.get(p, 0.0):.1f}%" for p in PRECISIONS),
            f"  {'precision':<9} {'MACs':>7} {'layers':>6}  {'ops':<28} {'decided by':<18} reason",
        ]
        order = {p: k for k, p in enumerate(PRECISIONS)}
        for (precision, source, reason), entries in sorted(
            groups.items(), key=lambda kv: (order[kv[0][0]], -sum(e.macs for e in kv[1]), kv[0][2])
        ):
            macs = sum(e.macs for e in entries if e.op_type in MAC_OPS)
            ops = ", ".join(f"{op} x{n}" for op, n in Counter(e.op_type for e in entries).most_common())
            share = f"{100 * macs / total:.1f}%" if any(e.op_type in MAC_OPS for e in entries) else "-"
            lines.append(f"  {precision:<9} {share:>7} {len(entries):>6}  {ops:<28} {source:<18} {reason}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "version": PLAN_VERSION,
            "image_size": list(self.image_size),
            "mac_shares": self.shares(),
            "total_macs": self.total_macs,
            "entries": [asdict(e) for e in self.entries],
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        return atomic.write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PrecisionPlan:
        p = Path(path)
        try:
            d = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{p}: cannot read the precision plan ({exc})") from exc
        if d.get("format") != PLAN_FORMAT or d.get("version") != PLAN_VERSION:
            raise InputError(f"{p}: not an rtdetr-edge precision plan version {PLAN_VERSION}")
        entries = tuple(PlanEntry(**e) for e in d["entries"])
        return cls(entries, (int(d["image_size"][0]), int(d["image_size"][1])))


def mac_shares(precisions: dict[str, str], macs: dict[str, int]) -> dict[str, float]:
    """MAC-weighted share of each precision over the nodes in ``macs`` that have MACs."""
    total = sum(m for n, m in macs.items() if n in precisions)
    counts: dict[str, float] = dict.fromkeys(PRECISIONS, 0.0)
    for node, m in macs.items():
        if node in precisions and total:
            counts[precisions[node]] += m / total
    return counts


def make_plan(
    model: onnx.ModelProto,
    int8_nodes: set[str],
    kept: dict[str, tuple[str, str]],
    macs: dict[str, int],
    image_size: tuple[int, int],
) -> PrecisionPlan:
    """The plan for an fp32 graph.

    Args:
        model: the fp32 ONNX.
        int8_nodes: the compute nodes quantized to INT8.
        kept: compute nodes kept out of INT8 -> (reason, source).
        macs: MACs per node (:func:`node_macs`).
        image_size: (height, width) the MACs were counted at.
    """
    entries = []
    ruled = fp32_nodes(model)  # post/*, frame/* and the graph's family's FP32 rules (calib.precision_rules)
    for node in model.graph.node:
        op = node.op_type
        if node.name.startswith(POST_PREFIX):
            if op in SENSITIVE_OPS or op in MAC_OPS:  # the tail's sigmoid and top-k; the rest only moves indices
                entries.append(PlanEntry(node.name, op, "fp32", POST_REASON, "default rule", macs.get(node.name, 0)))
        elif node.name in ruled and node.name not in int8_nodes:
            entries.append(PlanEntry(node.name, op, "fp32", ruled[node.name], "default rule", macs.get(node.name, 0)))
        elif op in FP32_OPS:
            entries.append(PlanEntry(node.name, op, "fp32", f"{op}: {FP32_OPS[op]}", "default rule"))
        elif op in MAC_OPS:
            if node.name in int8_nodes:
                entry = PlanEntry(node.name, op, "int8", INT8_REASON, "default rule", macs.get(node.name, 0))
            elif node.name in kept:
                reason, source = kept[node.name]
                entry = PlanEntry(node.name, op, "fp16", reason, source, macs.get(node.name, 0))
            else:
                entry = PlanEntry(
                    node.name, op, "fp16", ACTIVATION_MATMUL_REASON, "default rule", macs.get(node.name, 0)
                )
            entries.append(entry)
        elif op in SENSITIVE_OPS:
            entries.append(PlanEntry(node.name, op, "fp16", FP16_REASON, "default rule"))
    return PrecisionPlan(tuple(entries), image_size)


# ---------------------------------------------------------------------------------------------
# MACs from the shapes ONNX Runtime computes


def _macs(op: str, x: tuple[int, ...], w: tuple[int, ...], y: tuple[int, ...]) -> int:
    if op == "Conv":  # every output element: Cin/groups x kernel MACs; W is [Cout, Cin/g, k...]
        return int(np.prod(y, dtype=np.int64) * np.prod(w[1:], dtype=np.int64))
    if op == "ConvTranspose":  # every input element spreads over Cout/g x kernel; W is [Cin, Cout/g, k...]
        return int(np.prod(x, dtype=np.int64) * np.prod(w[1:], dtype=np.int64))
    # MatMul / Gemm: every output element is a dot product over K (the last axis of A, or its
    # first for a transposed Gemm A; x's last axis otherwise)
    k = x[-1] if len(x) else 1
    return int(np.prod(y, dtype=np.int64) * k)


def node_macs(model_path: str | os.PathLike[str], image_size: tuple[int, int]) -> dict[str, int]:
    """MACs per image of every compute node, from the tensor shapes ONNX Runtime computes.

    Runs the graph once on a zero image of ``image_size`` (height, width), batch 1, with every
    compute node's inputs and outputs fetched (no graph optimisation, so names survive).
    """
    ort = require("onnxruntime", "counting MACs")
    from .collect import with_extra_outputs

    model = onnx.load(str(model_path))
    consts = {t.name: tuple(t.dims) for t in model.graph.initializer}
    compute = [n for n in model.graph.node if n.op_type in MAC_OPS]
    wanted = sorted({t for n in compute for t in (n.input[0], n.input[1], n.output[0]) if t and t not in consts})
    probe = with_extra_outputs(model, wanted)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types from deep inside
        raise CalibrationError(f"{model_path}: ONNX Runtime cannot load it to count MACs: {exc}") from exc
    feeds = {}
    for inp in session.get_inputs():
        dtype = np.float16 if "float16" in inp.type else np.float32
        feeds[inp.name] = np.zeros((1, 3, *image_size), dtype)
    names = [o.name for o in session.get_outputs()]
    shapes = {name: tuple(np.shape(v)) for name, v in zip(names, session.run(names, feeds))}
    shapes.update({name: tuple(v.shape) for name, v in feeds.items()})
    shapes.update(consts)
    out = {}
    for n in compute:
        x, w, y = shapes.get(n.input[0]), shapes.get(n.input[1]), shapes.get(n.output[0])
        if x is None or w is None or y is None:
            continue
        if n.op_type == "Gemm" and any(a.name == "transA" and a.i for a in n.attribute):
            x = x[::-1]
        out[n.name] = _macs(n.op_type, x, w, y)
    return out


# ---------------------------------------------------------------------------------------------
# precisions as a graph realises them


def graph_precisions(model: onnx.ModelProto) -> dict[str, str]:
    """The precision each compute node of a graph runs in, read from the graph alone.

    ``int8`` where both data inputs (X and W) come from DequantizeLinear; otherwise the element
    type of its input X (``fp16`` for float16, ``fp32`` for float32), which a strongly typed
    TensorRT network keeps.
    """
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in list(g.value_info) + list(g.input) + list(g.output)}
    types.update({t.name: t.data_type for t in g.initializer})
    producer = {o: n for n in g.node for o in n.output}
    out = {}
    for n in g.node:
        if n.op_type not in MAC_OPS:
            continue
        data = n.input[:2]
        if all(name in producer and producer[name].op_type == "DequantizeLinear" for name in data):
            out[n.name] = "int8"
        else:
            elem = int(types.get(n.input[0], 0))
            out[n.name] = (
                "fp16" if elem == onnx.TensorProto.FLOAT16 else "fp32" if elem == onnx.TensorProto.FLOAT else "unknown"
            )
    return out
