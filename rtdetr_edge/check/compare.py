"""Tensor-level comparison with Polygraphy: runners, query alignment, per-output tolerances.

The reference (the bundle's fp32 ONNX on ONNX Runtime) and the candidate run through Polygraphy's
``Comparator.run``; the pre-top-k tensors are marked as extra outputs with Polygraphy's
``ModifyOutputs`` (see :func:`rtdetr_edge.check.models.check_tensors`) and renamed to canonical
names (``post/probs``, ``pred_boxes``; ``logits`` for raw-output graphs), so the saved
``RunResults`` JSON reads the same for every precision.

The pre-top-k tensors are in the order of the model's own query selection (a top-k too), so the
candidate's query rows are aligned to the reference's first, and rows that another query took
at the selection boundary are left out within a limit (:mod:`rtdetr_edge.check.queries`).

Only what users can see is judged. After the alignment, the compared query rows are the
*foreground* rows: reference rows whose highest class probability is at least the check's
``conf`` (:attr:`~rtdetr_edge.check.api.CheckOptions.conf`, default 0.3, the Detector's default
threshold), each with the candidate row aligned to it. Background queries (most of them; they
move freely under INT8 and nobody sees them) are not compared. ``scores`` (the sorted top-k
scores, no alignment needed: sorting is order-free) is compared where the reference score is at
least ``conf``, at the same positions on both sides. The report says how many rows and entries
were compared; with none (no reference query at ``conf``) it says there was nothing
element-wise to judge, and the detection level reports the missing reference detections.

Tolerances are Polygraphy's ``elemwise`` check: an element fails when it exceeds both ``atol``
and ``rtol`` (``rtol`` 0 by default, so ``atol`` alone decides: probabilities and normalised boxes
are already on a 0..1 scale). An FP16 or INT8 output passes when the p95 over images of each
image's max |d| is within ``atol`` (:attr:`OutputStats.quantile`; an image within Polygraphy's
tolerance counts as at most ``atol``), so one image where a near-tied query moved cannot fail a
build; an fp32 candidate (another runtime of the same graph) passes only when every image is
(:data:`~rtdetr_edge.check.verdict.GATE_QUANTILE`).

fp32 and FP16 use fixed tolerances (:data:`DEFAULT_TOLERANCES`; FP16 measured on the reference
model ``models/rtdetr-shapes``, 200 held-out generated images of seed 3, worst |d| 0.0151 probs,
0.014 scores, 0.0033 boxes, 0.0625 logits: gates about twice that). INT8's ``atol`` is
``max(floor, 8 x fp32's own p95 under +-1/255 input noise)`` (:mod:`rtdetr_edge.check.noise`;
the floor is :data:`DEFAULT_TOLERANCES`' int8 row, for models that barely move under the noise).
Measured by ``benchmarks/int8_verdict.py`` (reference model, INT8 built as the README does on 500
generated images of each of six seeds, checked on the 100 held-out ones; p95 of per-image max |d|):

==========  =====  ============  ==========  ============  =========  ==========  =========
output      floor  fp32 noise    INT8 limit  good INT8     act x0.05  one layer   class
                                                                      x20         head noise
==========  =====  ============  ==========  ============  =========  ==========  =========
post/probs  0.1    0.038-0.054   0.30-0.44   0.113-0.168   0.94       0.72-0.82   0.63-0.64
scores      0.1    0.035-0.047   0.28-0.38   0.080-0.136   0.76-0.77  0.36        0.22-0.24
pred_boxes  0.02   0.0036-0.0088 0.029-0.070 0.0095-0.024  0.92-0.94  0.82-0.84   0.61-0.71
logits      0.75   --            --          --            --         --          --
==========  =====  ============  ==========  ============  =========  ==========  =========

Good INT8 moves about 3x as far as fp32 does under the noise; every broken copy fails
``post/probs`` and ``pred_boxes`` (``logits``: raw-output graphs, not measured here; its floor is
a quarter of the former fixed 3.0). The detection-level criteria
(:mod:`rtdetr_edge.check.detections`) judge the finer damage users see.
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
from .detections import DEFAULT_CONF
from .models import LOGITS, PRED_BOXES, PROBS, SCORES, ModelSpec
from .queries import GATE_FACTOR, PER_QUERY, align_queries
from .verdict import QUANTILE, image_quantile


@dataclass(frozen=True)
class Tolerance:
    """Polygraphy ``elemwise`` tolerance of one output: fails where |d| > atol and |d|/|candidate| > rtol."""

    atol: float
    rtol: float = 0.0


DEFAULT_TOLERANCES: dict[str, dict[str, Tolerance]] = {
    "fp32": {PROBS: Tolerance(1e-4), SCORES: Tolerance(1e-4), PRED_BOXES: Tolerance(1e-4), LOGITS: Tolerance(4e-4)},
    "fp16": {PROBS: Tolerance(3e-2), SCORES: Tolerance(3e-2), PRED_BOXES: Tolerance(1e-2), LOGITS: Tolerance(0.12)},
    "int8": {PROBS: Tolerance(0.1), SCORES: Tolerance(0.1), PRED_BOXES: Tolerance(2e-2), LOGITS: Tolerance(0.75)},
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
    """One compared output over all images (foreground rows / entries only, see :func:`compare_tensors`).

    ``compared`` counts what was compared: query rows for the per-query tensors, entries for
    ``scores``. ``per_image`` is each compared image's max |d|, where an image within Polygraphy's
    elemwise tolerance (atol *or* rtol) counts as at most atol; the output passes when the
    :data:`~rtdetr_edge.check.verdict.QUANTILE` of it over images (:attr:`quantile`) is within
    atol. ``noise`` is the same quantile for fp32 against itself under input noise, where it
    set the tolerance (:mod:`rtdetr_edge.check.verdict`), and ``floor`` the tolerance it could
    not go below.
    """

    name: str
    tolerance: Tolerance
    max_abs: float = 0.0
    mean_abs: float = 0.0
    max_rel: float = 0.0
    failed_images: int = 0
    worst_image: int = -1
    compared: int = 0
    note: str = ""
    per_image: list[float] = field(default_factory=list)
    shape_mismatch: bool = False
    noise: float | None = None
    floor: float | None = None
    noise_factor: float = 0.0
    q: float = QUANTILE  # the quantile over images the gate holds (1.0: the worst image)

    @property
    def quantile(self) -> float:
        return image_quantile(self.per_image, self.q)

    @property
    def statistic(self) -> str:
        """``"p95"``, or ``"max"`` where the worst image decides."""
        return "max" if self.q >= 1.0 else f"p{100 * self.q:g}"

    @property
    def passed(self) -> bool:
        return not self.shape_mismatch and self.quantile <= self.tolerance.atol

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "atol": self.tolerance.atol,
            "rtol": self.tolerance.rtol,
            "max_abs": self.max_abs,
            "mean_abs": self.mean_abs,
            "max_rel": self.max_rel,
            "failed_images": self.failed_images,
            "worst_image": self.worst_image,
            "compared": self.compared,
            "images_compared": len(self.per_image),
            "quantile": self.q,
            "quantile_abs": self.quantile,
            "p50_abs": image_quantile(self.per_image, 0.5),
            "p90_abs": image_quantile(self.per_image, 0.9),
            "fp32_noise_abs": self.noise,
            "atol_floor": self.floor,
            "noise_factor": self.noise_factor,
            "passed": self.passed,
        }
        if self.note:
            d["note"] = self.note
        return d


@dataclass
class TensorComparison:
    """Element-wise agreement of the compared outputs (:data:`COMPARED` present on both sides).

    Only what users can see is compared: the *foreground* query rows (reference rows whose highest
    class probability is at least ``conf``) and the ``scores`` entries whose reference value is at
    least ``conf``. ``query_rows`` counts every decoder-query row over all images,
    ``foreground_rows`` the foreground ones, ``unmatched_rows`` the foreground rows whose aligned
    candidate row is beyond the gate (another query took the place, see
    :mod:`rtdetr_edge.check.queries`). Unmatched rows are left out of the per-output numbers while
    they are at most ``max_unmatched`` of the foreground rows; beyond that they are compared too,
    and the check fails on the fraction as well.
    """

    outputs: dict[str, OutputStats] = field(default_factory=dict)
    images: int = 0
    conf: float = DEFAULT_CONF
    rows_reordered: int = 0
    query_rows: int = 0
    foreground_rows: int = 0
    unmatched_rows: int = 0
    score_entries: int = 0
    max_unmatched: float = 0.0
    skipped: list[str] = field(default_factory=list)

    @property
    def unmatched_fraction(self) -> float:
        return self.unmatched_rows / self.foreground_rows if self.foreground_rows else 0.0

    @property
    def unmatched_excluded(self) -> bool:
        return self.unmatched_rows > 0 and self.unmatched_fraction <= self.max_unmatched

    @property
    def nothing_to_judge(self) -> bool:
        """No foreground row and no reference score at ``conf``: the element-wise check compared nothing."""
        return not any(o.compared for o in self.outputs.values())

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs.values()) and self.unmatched_fraction <= self.max_unmatched

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "images": self.images,
            "conf": self.conf,
            "rows_reordered": self.rows_reordered,
            "query_rows": self.query_rows,
            "foreground_rows": self.foreground_rows,
            "unmatched_rows": self.unmatched_rows,
            "unmatched_fraction": self.unmatched_fraction,
            "score_entries": self.score_entries,
            "max_unmatched_fraction": self.max_unmatched,
            "unmatched_excluded": self.unmatched_excluded,
            "nothing_to_judge": self.nothing_to_judge,
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


def _select_rows(
    ref_out: dict[str, np.ndarray], cand_out: dict[str, np.ndarray], names: Sequence[str], keep: np.ndarray
) -> None:
    """Keep only the query rows ``keep`` (``[Q]`` bool) of the per-query outputs, on both sides (in place)."""
    for n in names:
        if n in PER_QUERY and np.shape(ref_out[n]) == np.shape(cand_out[n]) and ref_out[n].shape[1] == keep.size:
            ref_out[n], cand_out[n] = ref_out[n][:, keep], cand_out[n][:, keep]


def compare_tensors(
    run_results: Any,
    reference: str,
    candidate: str,
    tolerances: Mapping[str, Tolerance],
    max_unmatched: float = 0.0,
    conf: float = DEFAULT_CONF,
    quantile: float = QUANTILE,
) -> TensorComparison:
    """Align the candidate's query rows, keep the foreground ones, then Polygraphy's ``compare_accuracy``.

    Args:
        run_results: canonical-named ``RunResults`` holding both runners.
        reference, candidate: runner names.
        tolerances: per canonical output name.
        max_unmatched: fraction of the foreground query rows that may lack a counterpart (left out
            of the comparison).
        conf: a reference query row is foreground when its highest class probability is at least
            this (the Detector's default threshold, 0.3); ``scores`` entries likewise.
    """
    comparator = polygraphy("polygraphy.comparator")
    ref_iters, cand_iters = list(run_results[reference]), list(run_results[candidate])
    if len(ref_iters) != len(cand_iters) or not ref_iters:
        raise CheckError(f"{candidate} produced {len(cand_iters)} results for {len(ref_iters)} reference images")
    names = [n for n in COMPARED if n in tolerances and n in ref_iters[0] and n in cand_iters[0]]
    result = TensorComparison(images=len(ref_iters), max_unmatched=max_unmatched, conf=conf)
    result.skipped = [n for n in COMPARED if n in tolerances and (n in ref_iters[0]) != (n in cand_iters[0])]
    if not names:
        return result
    gates = {n: GATE_FACTOR * tolerances[n].atol for n in names}
    pairs = []
    for r, c in zip(ref_iters, cand_iters):
        ref_out = {n: np.asarray(r[n]) for n in names}
        cand_out, moved, unmatched = align_queries(ref_out, {n: c[n] for n in names}, gates)
        foreground = foreground_rows(ref_out, conf)
        result.rows_reordered += moved
        if foreground is not None:
            result.query_rows += foreground.size
            result.foreground_rows += int(foreground.sum())
            if unmatched is not None and unmatched.shape == foreground.shape:
                unmatched = unmatched & foreground
                result.unmatched_rows += int(unmatched.sum())
            else:
                unmatched = None
        pairs.append((ref_out, cand_out, foreground, unmatched))
    drop = result.unmatched_excluded
    ref_new, cand_new, image_of = [], [], []
    compared = dict.fromkeys(names, 0)
    for index, (ref_out, cand_out, foreground, unmatched) in enumerate(pairs):
        if foreground is not None and foreground.shape[0] == 1:  # one image per feed
            keep = foreground[0] & ~unmatched[0] if drop and unmatched is not None else foreground[0]
            _select_rows(ref_out, cand_out, names, keep)
        if SCORES in names and np.shape(ref_out[SCORES]) == np.shape(cand_out[SCORES]):
            shown = np.asarray(ref_out[SCORES]) >= conf  # sorted on both sides: the same positions
            ref_out[SCORES], cand_out[SCORES] = ref_out[SCORES][shown], np.asarray(cand_out[SCORES])[shown]
            result.score_entries += int(shown.sum())
        present = [n for n in names if ref_out[n].size or np.shape(ref_out[n]) != np.shape(cand_out[n])]
        for n in present:
            compared[n] += ref_out[n].shape[1] if n in PER_QUERY and ref_out[n].ndim == 3 else ref_out[n].size
        if not present:
            continue  # nothing this user would see in this image
        image_of.append(index)
        ref_new.append(comparator.IterationResult(OrderedDict((n, ref_out[n]) for n in present), runner_name=reference))
        cand_new.append(
            comparator.IterationResult(OrderedDict((n, cand_out[n]) for n in present), runner_name=candidate)
        )
    per_iteration: list[Any] = []
    if ref_new:
        filtered = comparator.RunResults()
        filtered.append((reference, ref_new))
        filtered.append((candidate, cand_new))
        with quiet(), polygraphy_errors(f"comparing {candidate} with {reference}"):
            accuracy = comparator.Comparator.compare_accuracy(filtered, compare_func=_compare_func(tolerances))
        if not hasattr(accuracy, "keys"):  # 0.53+: AccuracyResults, one AccuracyResult per compare function
            accuracy = accuracy[0]
        per_iteration = list(accuracy[(reference, candidate)])
    for name in names:
        stats = _output_stats(name, tolerances[name], per_iteration, image_of)
        stats.q = quantile
        stats.compared = compared[name]
        if not stats.compared:
            stats.note = f"nothing to compare: no reference {'score' if name == SCORES else 'query row'} >= {conf:g}"
        result.outputs[name] = stats
    return result


def foreground_rows(outputs: Mapping[str, np.ndarray], conf: float) -> np.ndarray | None:
    """``[N,Q]`` mask of the query rows whose highest class probability is at least ``conf`` (None: no probabilities)."""
    if PROBS in outputs:
        probs = np.asarray(outputs[PROBS], np.float64)
    elif LOGITS in outputs:
        probs = 1.0 / (1.0 + np.exp(-np.asarray(outputs[LOGITS], np.float64)))
    else:
        return None
    if probs.ndim != 3:
        return None
    return probs.max(axis=-1) >= conf


def _output_stats(name: str, tolerance: Tolerance, per_iteration: list[Any], image_of: Sequence[int]) -> OutputStats:
    """Fold Polygraphy's per-image ``OutputCompareResult`` of ``name`` into one :class:`OutputStats`."""
    stats = OutputStats(name, tolerance)
    sums, counts = 0.0, 0
    for index, matches in zip(image_of, per_iteration):
        res = matches.get(name)
        if res is None:
            continue
        if isinstance(res, bool):  # Polygraphy returns a bare False for a shape mismatch
            if not res:
                stats.failed_images += 1
                stats.shape_mismatch = True
                stats.note = "shapes differ"
            continue
        if res.max_absdiff > stats.max_abs or stats.worst_image < 0:
            stats.max_abs, stats.worst_image = float(res.max_absdiff), index
        stats.max_rel = max(stats.max_rel, float(res.max_reldiff))
        sums += float(res.mean_absdiff)
        counts += 1
        stats.failed_images += 0 if bool(res) else 1
        worst = float(res.max_absdiff)
        stats.per_image.append(worst if not bool(res) else min(worst, tolerance.atol))
    stats.mean_abs = sums / counts if counts else 0.0
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
