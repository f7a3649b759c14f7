""":class:`CheckReport`: everything one comparison found, as a dict (JSON) and as readable text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .compare import OutputStats, TensorComparison
from .criteria import Criterion
from .detections import AP_RATIO, DetectionAgreement
from .layerwise import LayerwiseResult
from .models import ModelSpec
from .pairs import ImagePairs
from .queries import GATE_FACTOR


@dataclass
class CheckReport:
    """The result of checking one candidate against the reference.

    ``passed`` is True when every compared tensor is within tolerance and the detection-level
    agreement meets its thresholds (see :mod:`rtdetr_edge.check.compare` and
    :mod:`rtdetr_edge.check.detections`). ``--layerwise`` only explains; it never fails a check.
    """

    bundle: str
    reference: ModelSpec
    candidate: ModelSpec
    data: dict[str, Any]
    tensors: TensorComparison
    detections: DetectionAgreement
    layerwise: LayerwiseResult | None = None
    notes: list[str] = field(default_factory=list)
    saved: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)
    pairs: ImagePairs | None = field(default=None, repr=False)  # per-image detections, for the HTML report

    @property
    def passed(self) -> bool:
        return self.tensors.passed and self.detections.passed

    def criteria(self) -> list[Criterion]:
        """Every criterion of the verdict: each compared output, the unmatched rows, the detection level."""
        out = []
        t = self.tensors
        for name, o in t.outputs.items():
            out.append(_output_criterion(name, o, t.images))
        if t.foreground_rows:
            ok = t.unmatched_fraction <= t.max_unmatched
            words = (
                f"foreground query rows without a counterpart: {t.unmatched_rows}/{t.foreground_rows} "
                f"({100 * t.unmatched_fraction:.1f}% {'<=' if ok else '>'} {100 * t.max_unmatched:g}%)"
            )
            out.append(
                Criterion(
                    "tensors", "unmatched foreground rows", t.unmatched_fraction, t.max_unmatched, "<=", ok, words
                )
            )
        return out + self.detections.criteria()

    @property
    def failures(self) -> list[str]:
        return [c.words for c in self.criteria() if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failures": self.failures,
            "criteria": [c.to_dict() for c in self.criteria()],
            "bundle": self.bundle,
            "reference": self.reference.to_dict(),
            "candidate": self.candidate.to_dict(),
            "data": self.data,
            "tensors": self.tensors.to_dict(),
            "detections": self.detections.to_dict(),
            "layerwise": self.layerwise.to_dict() if self.layerwise else None,
            "notes": list(self.notes),
            "saved": dict(self.saved),
            "seconds": round(self.seconds, 2),
            "versions": dict(self.versions),
        }

    def format(self) -> str:
        """A readable multi-line report (what ``rtdetr-check`` prints)."""
        c, r, t, d = self.candidate, self.reference, self.tensors, self.detections
        runner = {"onnxruntime": "ONNX Runtime", "tensorrt": "TensorRT"}
        lines = [
            f"{self.bundle}: candidate {c.label} ({runner[c.runner]}, {c.path.name}) vs reference {r.label} "
            f"({runner[r.runner]}, {r.path.name})",
            f"  data: {self.data.get('description', '')}",
        ]
        moved = f"; {t.rows_reordered} of {t.query_rows} query rows re-aligned" if t.rows_reordered else ""
        lines.append(f"  tensors ({t.images} images, Polygraphy elemwise, {c.precision} tolerances{moved}):")
        if t.outputs:
            rows = (
                f"{t.foreground_rows} foreground query rows of {t.query_rows} (reference max probability >= "
                f"{t.conf:g}), "
                if t.query_rows
                else ""
            )
            lines.append(f"    compared: {rows}{t.score_entries} scores >= {t.conf:g}")
        if t.unmatched_rows:
            lines.append(
                f"    {t.unmatched_rows} foreground rows ({100 * t.unmatched_fraction:.2f}%) have no counterpart "
                f"within {GATE_FACTOR:g}x atol (another query selected; <= {100 * t.max_unmatched:g}% allowed"
                f"{', left out below' if t.unmatched_excluded else ''})"
            )
        if t.outputs and t.nothing_to_judge:
            lines.append(
                f"    no foreground query row and no score >= {t.conf:g} in the reference: nothing element-wise "
                "to judge"
            )
        for name, o in t.outputs.items():
            if not o.compared and not o.note.startswith("shapes"):
                lines.append(f"    {name:<11} {o.note}")
                continue
            noise = f" (= {o.noise_factor:g} x fp32 noise {o.noise:.3g})" if o.noise is not None else ""
            lines.append(
                f"    {name:<11} max |d| {o.statistic} {o.quantile:<9.3g} worst {o.max_abs:<9.3g} "
                f"mean |d| {o.mean_abs:<9.3g} atol {o.tolerance.atol:<7.3g}{noise} rtol {o.tolerance.rtol:<5g} "
                f"{'ok' if o.passed else 'FAIL'} ({o.failed_images}/{t.images} images beyond atol)"
                f"{f' ({o.note})' if o.note else ''}"
            )
        if not t.outputs:
            lines.append("    (no tensor in common to compare)")
        for name in t.skipped:
            lines.append(f"    {name:<11} only on one side, not compared")
        th = d.thresholds
        lines.append(
            f"  detections (conf {d.conf:g}; reference {d.reference_detections}, candidate {d.candidate_detections}):"
        )
        if d.reference_detections == 0:
            lines.append("    the reference has no detection at this confidence: AP, IoU and rates not measured")
        else:
            if d.ap_ratio is not None:
                iv = d.intervals.get(AP_RATIO)
                ci = f" (95% CI {iv.low:.4g}-{iv.high:.4g})" if iv else ""
                lines.append(f"    AP vs fp32 against the data's ground truth {d.ap_ratio:.4g}{ci}")
            lines.append(
                f"    AP {_num(d.ap)} (>= {th.min_ap:g})  AP50 {_num(d.ap50)}  mean IoU {_num(d.mean_iou)} "
                f"(>= {th.min_mean_iou:g})"
            )
            lines.append(
                f"    score drift mean {_num(d.score_drift_mean)} (<= {th.max_mean_score_drift:g}) max "
                f"{_num(d.score_drift_max)}"
            )
            lines.append(
                f"    label flips {d.label_flips} ({_pct(d.rate(d.label_flips))})  missed {d.missed} "
                f"({_pct(d.rate(d.missed))})  extra {d.extra} ({_pct(d.rate(d.extra))})"
            )
        if self.layerwise is not None:
            lw = self.layerwise
            reordered = f", + {lw.reordered} in another query order" if lw.reordered else ""
            lines.append(
                f"  layerwise ({lw.compared} tensors in both, {lw.images} image(s), relative error > "
                f"{lw.tolerance:g}: {lw.diverged}{reordered}):"
            )
            if lw.first:
                for k, diff in enumerate(lw.first):
                    lines.append(
                        f"    {'first' if k == 0 else 'then ':<5} {diff.node} [{diff.op}] -> {diff.tensor}: "
                        f"rel. error {diff.rel_error:.3g}, max |d| {diff.max_abs:.3g}"
                    )
            else:
                lines.append("    no tensor diverges beyond the tolerance")
            if lw.integer_changes:
                lines.append(
                    f"    index tensors that changed (near-tied queries swapped; {lw.reordered} diverging "
                    f"tensors computed from them not named): {', '.join(lw.integer_changes[:3])}"
                    f"{' ...' if len(lw.integer_changes) > 3 else ''}"
                )
            lines.append("    equivalent Polygraphy commands:")
            lines += [f"      {cmd}" for cmd in lw.commands]
        lines += [f"  note: {n}" for n in self.notes]
        for what, path in self.saved.items():
            lines.append(f"  saved {what}: {path}")
        if not self.passed:
            lines.append("  FAIL: " + "; ".join(self.failures))
        elif t.nothing_to_judge and d.reference_detections == 0:
            lines.append(f"  PASS (nothing to judge: the reference shows nothing at conf {d.conf:g})")
        else:
            lines.append("  PASS")
        return "\n".join(lines)


def _output_criterion(name: str, o: OutputStats, images: int) -> Criterion:
    """An output's element-wise criterion: the p95 over images of each image's max |d| within atol."""
    q = o.statistic
    limit = o.tolerance.atol
    if o.shape_mismatch:
        return Criterion("tensors", name, None, limit, "<=", False, f"{name}: {o.note}")
    where = f"over {len(o.per_image)}/{images} images"
    words = f"{name}: max |d| {q} {o.quantile:.3g} {where} {'<=' if o.passed else '>'} atol {limit:g}"
    detail = f"worst image {o.max_abs:.3g}; {o.failed_images} images beyond atol"
    if o.noise is not None:
        detail += f"; atol = max(floor {o.floor:g}, {o.noise_factor:g} x fp32 under input noise {o.noise:.3g})"
    return Criterion("tensors", name, o.quantile, limit, "<=", o.passed, words, detail)


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"
