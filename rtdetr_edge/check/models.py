"""What is compared: the bundle's files, and the reference and candidate models resolved from names.

A check runs on a finished bundle (:class:`~rtdetr_edge.bundle.Bundle`) or on one being built,
whose ``metadata.json`` is not written yet (:meth:`~rtdetr_edge.bundle.Bundle.from_metadata`).

Reference and candidate are given as a bundle precision (``fp32``, ``fp16``, ``int8``) or a path
(an ``.onnx``, or for the candidate a TensorRT ``.engine``). Which tensors are compared is read
from each graph itself (:func:`check_tensors`), never assumed from tensor names, which differ
between the fp32, FP16 and Q/DQ graphs (``post/probs_0`` vs ``post/sigmoid_output_cast_0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._optional import route_for, tensorrt_available
from ..bundle import PRECISIONS, Bundle
from ..errors import InputError, MissingDependencyError
from ..onnx_facts import read_onnx_facts

# Canonical names of the compared tensors (the RunResults JSON uses these).
PROBS = "post/probs"  # sigmoid class probabilities [N,Q,C] (the output of node post/sigmoid)
PRED_BOXES = "pred_boxes"  # normalised cxcywh boxes per query [N,Q,4] (what post/gather_boxes reads)
LOGITS = "logits"  # raw-output graphs: class logits [N,Q,C]
SCORES = "scores"  # top-k graphs: sorted top-k scores [N,K] (sorting makes them order-free)
TOPK_OUTPUTS = ("scores", "labels", "boxes")
RAW_OUTPUTS = ("logits", "pred_boxes")

RUNNERS = ("auto", "onnxruntime", "tensorrt")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


@dataclass(frozen=True)
class ModelSpec:
    """One side of the comparison.

    Attributes:
        role: ``"reference"`` or ``"candidate"``.
        label: ``fp32``/``fp16``/``int8`` for bundle artifacts, else the file name.
        precision: whose default tolerances and thresholds apply (fp32, fp16 or int8).
        path: the ONNX (or engine) file.
        kind: ``"onnx"`` or ``"engine"``.
        runner: ``"onnxruntime"`` or ``"tensorrt"``.
        from_bundle: the file is the bundle's artifact for ``label``.
    """

    role: str
    label: str
    precision: str
    path: Path
    kind: str
    runner: str
    from_bundle: bool

    @property
    def name(self) -> str:
        """Polygraphy runner name, e.g. ``candidate:onnxrt-fp16`` (unique per role)."""
        return f"{self.role}:{'trt' if self.runner == 'tensorrt' else 'onnxrt'}-{self.label}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "precision": self.precision,
            "file": str(self.path),
            "kind": self.kind,
            "runner": self.runner,
        }


def onnx_precision(path: Path) -> str:
    """fp32, fp16 or int8 as the graph shows it (:attr:`rtdetr_edge.onnx_facts.OnnxFacts.precision`)."""
    return read_onnx_facts(path).precision


def engine_precision(path: Path) -> str | None:
    """The precision an rtdetr-edge engine's sidecar records (None without a sidecar)."""
    from ..engine_format import load_sidecar

    meta = load_sidecar(path)
    return meta.precision if meta is not None else None


def resolve_model(
    bundle: Bundle, spec: str, role: str, runner: str = "auto", precision: str | None = None
) -> ModelSpec:
    """Turn ``--reference``/``--candidate`` into a :class:`ModelSpec`.

    Args:
        bundle: the bundle the names refer to.
        spec: ``fp32``, ``fp16``, ``int8`` or a path to an ``.onnx`` (or, candidate only, an engine).
        role: ``"reference"`` (always ONNX Runtime) or ``"candidate"``.
        runner: ``auto`` (TensorRT for bundle precisions where TensorRT imports, else ONNX Runtime),
            ``onnxruntime`` or ``tensorrt``.
        precision: override whose default tolerances apply (default: the artifact's precision, or
            the graph's for a path).
    """
    flag = f"--{role}"
    if runner not in RUNNERS:
        raise InputError(f"--runner {runner!r}: expected one of {', '.join(RUNNERS)}")
    if precision is not None and precision not in PRECISIONS:
        raise InputError(f"--tolerances {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if role == "reference" and runner == "tensorrt":
        raise InputError("the reference always runs on ONNX Runtime; --runner applies to the candidate")
    if runner == "tensorrt" and not tensorrt_available():
        raise MissingDependencyError(f"--runner tensorrt: TensorRT cannot be imported here; {route_for('tensorrt')}")
    if spec in PRECISIONS:
        path = bundle.onnx_path(spec)
        chosen = "onnxruntime" if role == "reference" else runner
        if chosen == "auto":
            chosen = "tensorrt" if tensorrt_available() else "onnxruntime"
        return ModelSpec(role, spec, precision or spec, path, "onnx", chosen, True)
    path = Path(spec)
    if not path.is_file():
        raise InputError(
            f"{flag} {spec}: not one of {', '.join(PRECISIONS)} nor an existing "
            f"{'.onnx' if role == 'reference' else '.onnx or .engine'} file"
        )
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        chosen = "onnxruntime" if runner == "auto" or role == "reference" else runner
        return ModelSpec(role, path.name, precision or onnx_precision(path), path, "onnx", chosen, False)
    if suffix in ENGINE_SUFFIXES and role == "candidate":
        if runner == "onnxruntime":
            raise InputError(f"{flag} {spec}: a TensorRT engine cannot run on ONNX Runtime")
        if not tensorrt_available():
            raise MissingDependencyError(
                f"{flag} {spec}: running a TensorRT engine needs TensorRT; {route_for('tensorrt')}"
            )
        found = precision or engine_precision(path)
        if found is None:
            raise InputError(
                f"{flag} {spec}: the engine has no rtdetr-edge sidecar ({path.with_suffix('.json').name}) "
                "saying its precision; pass --tolerances fp32|fp16|int8"
            )
        return ModelSpec(role, path.name, found, path, "engine", "tensorrt", False)
    raise InputError(
        f"{flag} {spec}: expected an .onnx file{'' if role == 'reference' else ' or a TensorRT engine'}"
        f" ({', '.join(ENGINE_SUFFIXES)}), got {suffix or 'no suffix'}"
    )


def check_tensors(path: Path) -> dict[str, str]:
    """Canonical name -> tensor name in this graph, for the pre-top-k tensors and ``scores``.

    Top-k graphs: the output of node ``post/sigmoid`` (:data:`PROBS`) and the boxes input of node
    ``post/gather_boxes`` (:data:`PRED_BOXES`), plus the ``scores`` output. Raw-output graphs:
    ``logits`` and ``pred_boxes``. Found by node name, so FP16 casts and Q/DQ nodes (which rename
    tensors around them) do not matter. A top-k graph without those nodes (exported or rewritten
    by another tool) gives ``scores`` alone: the pre-top-k tensors are then reported as present
    on one side only, and the detection level still judges it.
    """
    facts = read_onnx_facts(path)
    nodes = {n.name: (n.inputs, n.outputs) for n in facts.nodes}
    outputs = list(facts.outputs)
    if "post/sigmoid" in nodes and "post/gather_boxes" in nodes:
        found = {PROBS: nodes["post/sigmoid"][1][0], PRED_BOXES: nodes["post/gather_boxes"][0][0]}
        if SCORES in outputs:
            found[SCORES] = SCORES
        return found
    if all(name in outputs for name in RAW_OUTPUTS):
        return {LOGITS: "logits", PRED_BOXES: "pred_boxes"}
    if SCORES in outputs:  # a top-k graph made elsewhere: only its sorted scores can be compared element-wise
        return {SCORES: SCORES}
    raise InputError(
        f"{path}: not an rtdetr-edge graph (no post/sigmoid + post/gather_boxes nodes and no "
        f"logits/pred_boxes outputs; outputs are {outputs})"
    )


def topological_tensors(path: Path) -> list[tuple[str, str, str]]:
    """(tensor, producing node, op type) for every node output, in the graph's (topological) order."""
    return [(out, n.name, n.op_type) for n in read_onnx_facts(path).nodes for out in n.outputs if out]
