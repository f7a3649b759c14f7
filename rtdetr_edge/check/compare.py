"""Tensor-level comparison with Polygraphy: runners, query alignment, per-output tolerances.

The reference (the bundle's fp32 ONNX on ONNX Runtime) and the candidate run through Polygraphy's
``Comparator.run``; the pre-top-k tensors are marked as extra outputs with Polygraphy's
``ModifyOutputs`` (see :func:`rtdetr_edge.check.models.check_tensors`) and renamed to canonical
names (``post/probs``, ``pred_boxes``; ``logits`` for raw-output graphs), so the saved
``RunResults`` JSON reads the same for every precision.

The pre-top-k tensors are in the order of the model's own query selection (a top-k too), so the
candidate's query rows are aligned to the reference's first, and rows that another query took
at the selection boundary are left out within a limit (:mod:`rtdetr_edge.check.queries`).
``scores`` (the sorted top-k scores) needs no alignment: sorting is order-free and never moves
values apart more than the probabilities moved.

Tolerances are Polygraphy's ``elemwise`` check: an element fails when it exceeds both ``atol``
and ``rtol``. Defaults (:data:`DEFAULT_TOLERANCES`, ``rtol`` 0 so ``atol`` alone decides, since
probabilities and normalised boxes are already on a 0..1 scale):

=============  ======  ======  ======  ====================================================
output         fp32    fp16    int8    why
=============  ======  ======  ======  ====================================================
post/probs     1e-4    1e-2    0.1     fp32: export verification's 1e-4; FP16: about 2^-7 of
                                       accumulated rounding; INT8: a score moving by 0.1
                                       crosses a typical 0.3 threshold only from 0.2..0.4
scores         1e-4    1e-2    0.1     as post/probs (the sorted top of it)
pred_boxes     1e-4    1e-2    5e-2    normalised, the worst of all queries (background
                                       included): 1e-2 is 6 px at 640 (the reference model's
                                       FP16 reached 5.9e-3), 5e-2 is 32 px (box heads stay fp32
                                       in our INT8)
logits         4e-4    4e-2    0.4     raw graphs: 4 x post/probs (the sigmoid's slope is <= 1/4)
=============  ======  ======  ======  ====================================================

INT8 tolerances are loose on purpose: the element-wise maximum over every query includes
background queries nobody sees; the detection-level thresholds
(:mod:`rtdetr_edge.check.detections`) judge what users see.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ._polygraphy import CheckError, polygraphy, polygraphy_errors, quiet
from .models import LOGITS, PRED_BOXES, PROBS, SCORES, ModelSpec
from .queries import GATE_FACTOR, PER_QUERY, align_queries


@dataclass(frozen=True)
class Tolerance:
    """Polygraphy ``elemwise`` tolerance of one output: fails where |d| > atol and |d|/|candidate| > rtol."""

    atol: float
    rtol: float = 0.0


DEFAULT_TOLERANCES: dict[str, dict[str, Tolerance]] = {
    "fp32": {PROBS: Tolerance(1e-4), SCORES: Tolerance(1e-4), PRED_BOXES: Tolerance(1e-4), LOGITS: Tolerance(4e-4)},
    "fp16": {PROBS: Tolerance(1e-2), SCORES: Tolerance(1e-2), PRED_BOXES: Tolerance(1e-2), LOGITS: Tolerance(4e-2)},
    "int8": {PROBS: Tolerance(0.1), SCORES: Tolerance(0.1), PRED_BOXES: Tolerance(5e-2), LOGITS: Tolerance(0.4)},
}
COMPARED = (PROBS, LOGITS, PRED_BOXES, SCORES)


def tolerances_for(
    precision: str, atol: float | Mapping[str, float] | None = None, rtol: float | Mapping[str, float] | None = None
) -> dict[str, Tolerance]:
    """Default tolerances of ``precision`` with overrides (a number for every output, or name -> value)."""
    base = dict(DEFAULT_TOLERANCES[precision])

    def override(values: float | Mapping[str, float] | None, flag: str) -> dict[str, float]:
        if values is None:
            return {}
        if isinstance(values, Mapping):
            unknown = sorted(set(values) - set(COMPARED))
            if unknown:
                raise InputError(f"--{flag} {unknown[0]}=...: unknown output; expected one of {', '.join(COMPARED)}")
            out = dict(values)
        else:
            out = {name: float(values) for name in COMPARED}
        bad = {k: v for k, v in out.items() if not (float(v) >= 0)}
        if bad:
            raise InputError(f"--{flag}: tolerances must be >= 0, got {bad}")
        return out

    atols, rtols = override(atol, "atol"), override(rtol, "rtol")
    return {
        name: Tolerance(float(atols.get(name, tol.atol)), float(rtols.get(name, tol.rtol)))
        for name, tol in base.items()
    }


def parse_tolerance_args(values: Sequence[str] | None, flag: str) -> float | dict[str, float] | None:
    """CLI ``--atol 1e-3`` (every output) or ``--atol post/probs=0.02 --atol pred_boxes=0.01``."""
    if not values:
        return None
    per_name: dict[str, float] = {}
    for text in values:
        name, sep, value = text.rpartition("=")
        try:
            number = float(value)
        except ValueError:
            raise InputError(f"--{flag} {text!r}: expected V or NAME=V with a number V") from None
        if not sep:
            if len(values) > 1:
                raise InputError(f"--{flag} {text!r}: give one bare value, or NAME=V for each output")
            return number
        per_name[name] = number
    return per_name


# ---------------------------------------------------------------------------------------------
# runners


def onnxrt_runner(model: ModelSpec, outputs: list[str] | str) -> Any:
    """Polygraphy's ONNX Runtime runner for ``model`` with ``outputs`` marked (or ``MARK_ALL``).

    CPU execution: the reference must not depend on a GPU provider's kernels.
    """
    onnx_loaders = polygraphy("polygraphy.backend.onnx")
    ort_backend = polygraphy("polygraphy.backend.onnxrt")
    marked = onnx_loaders.ModifyOutputs(onnx_loaders.OnnxFromPath(str(model.path)), outputs=outputs)
    session = ort_backend.SessionFromOnnx(onnx_loaders.BytesFromOnnx(marked), providers=["cpu"])
    return ort_backend.OnnxrtRunner(session, name=model.name)


def run(runners: list[Any], feeds: list[OrderedDict[str, np.ndarray]], what: str) -> Any:
    """``Comparator.run`` of ``runners`` on ``feeds`` (quietly); returns Polygraphy ``RunResults``."""
    comparator = polygraphy("polygraphy.comparator")
    try:
        with quiet(), polygraphy_errors(f"running {what}"):
            return comparator.Comparator.run(runners, data_loader=feeds)
    except (RuntimeError, ValueError) as exc:  # ONNX Runtime / TensorRT refusing a model or an input
        raise CheckError(f"running {what}: {type(exc).__name__}: {' '.join(str(exc).split())[:600]}") from exc


def canonical(run_results: Any, renames: Mapping[str, Mapping[str, str]]) -> Any:
    """A copy of ``run_results`` whose tensors are renamed per runner (graph name -> canonical)."""
    comparator = polygraphy("polygraphy.comparator")
    out = comparator.RunResults()
    for runner_name, iterations in run_results.items():
        rename = renames.get(runner_name, {})
        new = [
            comparator.IterationResult(
                OrderedDict((rename.get(k, k), it[k]) for k in it), runtime=it.runtime, runner_name=runner_name
            )
            for it in iterations
        ]
        out.append((runner_name, new))
    return out


# ---------------------------------------------------------------------------------------------
# element-wise comparison


@dataclass
class OutputStats:
    """One compared output over all images."""

    name: str
    tolerance: Tolerance
    max_abs: float = 0.0
    mean_abs: float = 0.0
    max_rel: float = 0.0
    failed_images: int = 0
    worst_image: int = -1
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.failed_images == 0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "atol": self.tolerance.atol,
            "rtol": self.tolerance.rtol,
            "max_abs": self.max_abs,
            "mean_abs": self.mean_abs,
            "max_rel": self.max_rel,
            "failed_images": self.failed_images,
            "worst_image": self.worst_image,
            "passed": self.passed,
        }
        if self.note:
            d["note"] = self.note
        return d


@dataclass
class TensorComparison:
    """Element-wise agreement of the compared outputs (:data:`COMPARED` present on both sides).

    ``query_rows``/``unmatched_rows`` count decoder-query rows over all images; unmatched rows
    (another query took the place, see :mod:`rtdetr_edge.check.queries`) are left out of the
    per-output numbers while they are at most ``max_unmatched`` of all rows.
    """

    outputs: dict[str, OutputStats] = field(default_factory=dict)
    images: int = 0
    rows_reordered: int = 0
    query_rows: int = 0
    unmatched_rows: int = 0
    max_unmatched: float = 0.0
    skipped: list[str] = field(default_factory=list)

    @property
    def unmatched_fraction(self) -> float:
        return self.unmatched_rows / self.query_rows if self.query_rows else 0.0

    @property
    def unmatched_excluded(self) -> bool:
        return self.unmatched_rows > 0 and self.unmatched_fraction <= self.max_unmatched

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs.values()) and self.unmatched_fraction <= self.max_unmatched

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "images": self.images,
            "rows_reordered": self.rows_reordered,
            "query_rows": self.query_rows,
            "unmatched_rows": self.unmatched_rows,
            "max_unmatched_fraction": self.max_unmatched,
            "unmatched_excluded": self.unmatched_excluded,
            "gate_factor": GATE_FACTOR,
            "outputs": {k: v.to_dict() for k, v in self.outputs.items()},
            "not_compared": self.skipped,
        }


def _compare_func(tolerances: Mapping[str, Tolerance]) -> Any:
    comparator = polygraphy("polygraphy.comparator")
    atol = {name: t.atol for name, t in tolerances.items()}
    rtol = {name: t.rtol for name, t in tolerances.items()}
    simple = getattr(comparator, "SimpleCompareFunc", None)  # 0.53+; CompareFunc.simple before (deprecated after)
    factory = simple if simple is not None else comparator.CompareFunc.simple
    return factory(atol=atol, rtol=rtol, check_error_stat="elemwise")


def compare_tensors(
    run_results: Any, reference: str, candidate: str, tolerances: Mapping[str, Tolerance], max_unmatched: float = 0.0
) -> TensorComparison:
    """Align the candidate's query rows, then Polygraphy's ``compare_accuracy`` per output.

    Args:
        run_results: canonical-named ``RunResults`` holding both runners.
        reference, candidate: runner names.
        tolerances: per canonical output name.
        max_unmatched: fraction of query rows that may lack a counterpart (left out of the comparison).
    """
    comparator = polygraphy("polygraphy.comparator")
    ref_iters, cand_iters = list(run_results[reference]), list(run_results[candidate])
    if len(ref_iters) != len(cand_iters) or not ref_iters:
        raise CheckError(f"{candidate} produced {len(cand_iters)} results for {len(ref_iters)} reference images")
    names = [n for n in COMPARED if n in tolerances and n in ref_iters[0] and n in cand_iters[0]]
    result = TensorComparison(images=len(ref_iters), max_unmatched=max_unmatched)
    result.skipped = [n for n in COMPARED if n in tolerances and (n in ref_iters[0]) != (n in cand_iters[0])]
    if not names:
        return result
    gates = {n: GATE_FACTOR * tolerances[n].atol for n in names}
    pairs = []
    for r, c in zip(ref_iters, cand_iters):
        ref_out = {n: np.asarray(r[n]) for n in names}
        cand_out, moved, unmatched = align_queries(ref_out, {n: c[n] for n in names}, gates)
        result.rows_reordered += moved
        if unmatched is not None:
            result.query_rows += unmatched.size
            result.unmatched_rows += int(unmatched.sum())
        pairs.append((ref_out, cand_out, unmatched))
    drop = result.unmatched_excluded
    filtered = comparator.RunResults()
    ref_new, cand_new = [], []
    for ref_out, cand_out, unmatched in pairs:
        if drop and unmatched is not None and unmatched.shape[0] == 1 and unmatched.any():
            keep = ~unmatched[0]  # one image per feed: drop its unmatched rows on both sides
            for n in names:
                if n in PER_QUERY:
                    ref_out[n], cand_out[n] = ref_out[n][:, keep], cand_out[n][:, keep]
        ref_new.append(comparator.IterationResult(OrderedDict(ref_out), runner_name=reference))
        cand_new.append(comparator.IterationResult(OrderedDict((n, cand_out[n]) for n in names), runner_name=candidate))
    filtered.append((reference, ref_new))
    filtered.append((candidate, cand_new))
    with quiet(), polygraphy_errors(f"comparing {candidate} with {reference}"):
        accuracy = comparator.Comparator.compare_accuracy(filtered, compare_func=_compare_func(tolerances))
    if not hasattr(accuracy, "keys"):  # 0.53+: AccuracyResults, one AccuracyResult per compare function
        accuracy = accuracy[0]
    per_iteration = accuracy[(reference, candidate)]
    for name in names:
        result.outputs[name] = _output_stats(name, tolerances[name], per_iteration)
    return result


def _output_stats(name: str, tolerance: Tolerance, per_iteration: list[Any]) -> OutputStats:
    """Fold Polygraphy's per-image ``OutputCompareResult`` of ``name`` into one :class:`OutputStats`."""
    stats = OutputStats(name, tolerance)
    means = []
    for index, matches in enumerate(per_iteration):
        res = matches.get(name)
        if res is None:
            continue
        if isinstance(res, bool):  # Polygraphy returns a bare False for a shape mismatch
            if not res:
                stats.failed_images += 1
                stats.note = "shapes differ"
            continue
        if res.max_absdiff > stats.max_abs or stats.worst_image < 0:
            stats.max_abs, stats.worst_image = float(res.max_absdiff), index
        stats.max_rel = max(stats.max_rel, float(res.max_reldiff))
        means.append(float(res.mean_absdiff))
        stats.failed_images += 0 if bool(res) else 1
    stats.mean_abs = float(np.mean(means)) if means else 0.0
    return stats


def save_run_results(run_results: Any, path: str | os.PathLike[str]) -> Path:
    """Polygraphy's own JSON (``polygraphy inspect data``, ``polygraphy run --load-outputs``)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with quiet(), polygraphy_errors(f"saving {target}"):
        run_results.save(str(target))
    return target


def save_inputs(feeds: list[OrderedDict[str, np.ndarray]], path: str | os.PathLike[str]) -> Path:
    """The fed inputs as Polygraphy JSON (``polygraphy run --load-inputs``)."""
    pg_json = polygraphy("polygraphy.json")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with quiet(), polygraphy_errors(f"saving {target}"):
        pg_json.save_json(feeds, str(target), description="rtdetr-check inputs")
    return target
