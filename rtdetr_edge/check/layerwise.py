"""``--layerwise``: mark every tensor on both sides and name the first layers that diverge.

This is Polygraphy's documented debugging flow (``polygraphy run --onnx-outputs mark all``): both
graphs run on ONNX Runtime with all node outputs marked (``constants.MARK_ALL``); every float
tensor present in both (same name, same shape) is compared, and the first ones, in the
reference graph's topological order, whose relative error exceeds the tolerance are named. The
first is where the candidate starts to differ; later ones mostly inherit its error.

Relative error is ``||ref - cand||_2 / max(||ref||_2, ||cand||_2)``: activations have arbitrary
scales, so an absolute tolerance would mean different things at every layer. Defaults
(:data:`DEFAULT_LAYER_TOLERANCE`): fp32 1e-4 (the same graph gives 0; another runtime's rounding
stays near 1e-6), fp16 1e-2 (float16's 2^-11 rounding, accumulated), int8 0.1 (a well-calibrated
INT8 layer is a few percent off).

Integer tensors (shapes, indices) are compared exactly and listed separately: the query
selection's top-k indices change whenever near-tied encoder scores swap, which is not an error
by itself, but every tensor computed from them is then in another query order and differs
element-wise for that reason alone. Such tensors (downstream of a changed integer tensor) are
counted as ``reordered`` and not named as divergent.

Memory: all activations of both graphs are held for each image, so this uses the first image
only by default (``layerwise_images``).
"""

from __future__ import annotations

import shlex
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..onnx_facts import read_onnx_facts
from ._polygraphy import polygraphy
from .compare import Tolerance, onnxrt_runner, run
from .models import ModelSpec, topological_tensors

DEFAULT_LAYER_TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "int8": 0.1}
DEFAULT_LAYERWISE_IMAGES = 1
FIRST_LAYERS = 5


@dataclass
class LayerDiff:
    """How far one tensor of the candidate is from the reference's."""

    tensor: str
    node: str
    op: str
    rel_error: float
    max_abs: float
    position: int  # index in the reference's topological order

    def to_dict(self) -> dict[str, Any]:
        return {
            "tensor": self.tensor,
            "node": self.node,
            "op": self.op,
            "rel_error": self.rel_error,
            "max_abs": self.max_abs,
            "position": self.position,
        }


@dataclass
class LayerwiseResult:
    """The layer-by-layer comparison."""

    tolerance: float
    images: int
    compared: int = 0
    diverged: int = 0
    first: list[LayerDiff] = field(default_factory=list)
    worst: list[LayerDiff] = field(default_factory=list)
    integer_changes: list[str] = field(default_factory=list)
    reordered: int = 0
    only_reference: int = 0
    only_candidate: int = 0
    shape_mismatches: int = 0
    commands: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tolerance": self.tolerance,
            "images": self.images,
            "compared": self.compared,
            "diverged": self.diverged,
            "first_divergent": [d.to_dict() for d in self.first],
            "worst": [d.to_dict() for d in self.worst],
            "integer_changes": self.integer_changes,
            "reordered": self.reordered,
            "only_reference": self.only_reference,
            "only_candidate": self.only_candidate,
            "shape_mismatches": self.shape_mismatches,
            "polygraphy_commands": self.commands,
        }


def relative_error(ref: np.ndarray, cand: np.ndarray) -> tuple[float, float]:
    """(||ref - cand|| / max(||ref||, ||cand||), max |ref - cand|); inf where finiteness differs."""
    a, b = np.asarray(ref, np.float64), np.asarray(cand, np.float64)
    fa, fb = np.isfinite(a), np.isfinite(b)
    if not fa.all() or not fb.all():  # NaN/inf: equal ones at equal places are fine, compare the rest
        if not np.array_equal(fa, fb) or not np.array_equal(a[~fa], b[~fb], equal_nan=True):
            return float("inf"), float("inf")
        a, b = a[fa], b[fb]
    diff = a - b
    denom = max(float(np.linalg.norm(a)), float(np.linalg.norm(b)))
    rel = float(np.linalg.norm(diff)) / denom if denom > 0 else 0.0
    return rel, float(np.abs(diff).max()) if diff.size else 0.0


def _downstream(path: Path, changed: set[str]) -> set[str]:
    """Tensors computed (directly or not) from ``changed`` tensors, in graph ``path``."""
    tainted = set(changed)
    if not tainted:
        return tainted
    for node in read_onnx_facts(path).nodes:  # topological order: one pass suffices
        if any(i in tainted for i in node.inputs):
            tainted.update(o for o in node.outputs if o)
    return tainted


def polygraphy_commands(
    reference: ModelSpec, candidate: ModelSpec, tolerances: dict[str, Tolerance], inputs: str
) -> list[str]:
    """The equivalent ``polygraphy run`` command lines (save the reference's layers, compare against them)."""
    ref_layers = str(Path(inputs).with_name("reference_layers.json"))
    q = shlex.quote
    tol = max((t.atol for t in tolerances.values()), default=1e-5)
    lines = [
        f"polygraphy run {q(str(reference.path))} --onnxrt --onnx-outputs mark all "
        f"--load-inputs {q(inputs)} --save-outputs {q(ref_layers)}",
        f"polygraphy run {q(str(candidate.path))} --onnxrt --onnx-outputs mark all "
        f"--load-inputs {q(inputs)} --load-outputs {q(ref_layers)} --atol {tol:g} --rtol 0",
    ]
    if candidate.runner == "tensorrt":
        flag = {"fp16": " --fp16", "int8": " --int8"}.get(candidate.precision, "")
        lines.append(
            f"polygraphy run {q(str(candidate.path))} --trt{flag} --onnxrt --trt-outputs mark all "
            f"--onnx-outputs mark all --load-inputs {q(inputs)}"
        )
    return lines


def compare_layers(
    reference: ModelSpec,
    candidate: ModelSpec,
    feeds: list[OrderedDict[str, np.ndarray]],
    tolerance: float,
    first: int = FIRST_LAYERS,
) -> tuple[LayerwiseResult, Any]:
    """Run both ONNX graphs with every tensor marked; returns (result, Polygraphy RunResults).

    Args:
        reference, candidate: ONNX models (a TensorRT candidate's ONNX runs on ONNX Runtime here).
        feeds: the images to use (the first one by default, see the module docstring).
        tolerance: relative error above which a tensor has diverged.
        first: how many first-divergent (and worst) tensors to name.
    """
    if candidate.kind != "onnx":
        raise InputError(
            f"--layerwise needs an ONNX candidate; {candidate.path.name} is a TensorRT engine "
            "(pass the ONNX it was built from)"
        )
    mark_all = polygraphy("polygraphy.constants").MARK_ALL
    ref_runner = onnxrt_runner(reference, mark_all)
    cand_spec = (
        candidate
        if candidate.runner == "onnxruntime"
        else ModelSpec(
            candidate.role,
            candidate.label,
            candidate.precision,
            candidate.path,
            "onnx",
            "onnxruntime",
            candidate.from_bundle,
        )
    )
    cand_runner = onnxrt_runner(cand_spec, mark_all)
    results = run([ref_runner, cand_runner], feeds, "the layerwise comparison (every tensor marked)")
    ref_iters, cand_iters = list(results[ref_runner.name]), list(results[cand_runner.name])
    result = LayerwiseResult(tolerance=tolerance, images=len(feeds))
    order = topological_tensors(reference.path)
    ref_names, cand_names = set(ref_iters[0].keys()), set(cand_iters[0].keys())
    result.only_reference = len(ref_names - cand_names)
    result.only_candidate = len(cand_names - ref_names)
    diffs: list[LayerDiff] = []
    for position, (tensor, node, op) in enumerate(order):
        if tensor not in ref_names or tensor not in cand_names:
            continue
        worst_rel, worst_abs, integer_change, shape_mismatch = 0.0, 0.0, False, False
        for r_it, c_it in zip(ref_iters, cand_iters):
            a, b = np.asarray(r_it[tensor]), np.asarray(c_it[tensor])
            if a.shape != b.shape:
                shape_mismatch = True
                break
            if not (np.issubdtype(a.dtype, np.floating) and np.issubdtype(b.dtype, np.floating)):
                integer_change = integer_change or not np.array_equal(a, b)
                continue
            rel, mx = relative_error(a, b)
            worst_rel, worst_abs = max(worst_rel, rel), max(worst_abs, mx)
        if shape_mismatch:
            result.shape_mismatches += 1
            continue
        a0 = np.asarray(ref_iters[0][tensor])
        if not np.issubdtype(a0.dtype, np.floating):
            if integer_change:
                result.integer_changes.append(tensor)
            continue
        result.compared += 1
        diffs.append(LayerDiff(tensor, node, op, worst_rel, worst_abs, position))
    downstream = _downstream(reference.path, set(result.integer_changes))
    divergent = [d for d in diffs if d.rel_error > tolerance and d.tensor not in downstream]
    result.reordered = sum(1 for d in diffs if d.rel_error > tolerance and d.tensor in downstream)
    result.diverged = len(divergent)
    result.first = divergent[:first]
    result.worst = sorted(divergent, key=lambda d: -d.rel_error)[:first]
    return result, results
