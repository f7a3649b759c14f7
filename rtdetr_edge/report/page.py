"""The report page's view model: typed rows the template shows, assembled from a build and its checks.

Everything the template prints is here, already in words and numbers: the verdict per candidate
(from :meth:`CheckReport.criteria`, whatever criteria and fields come), AP per precision, per-class
agreement, the disagreement images, the precision plan, the image sets and the versions.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..check.criteria import Criterion
from ..check.report import CheckReport
from . import charts
from .images import COLOURS, css_colour, worst_pairs

log = logging.getLogger("rtdetr_edge")

SHOWN_PAIRS = 4  # disagreement images per candidate
SHOWN_CLASSES = 8  # classes in the per-class chart (those where the candidates agree least)
SHOWN_LAYERS = 10  # sensitive layers / groups listed
# Criterion fields the verdict table has columns for; any other field is shown by name next to them
CRITERION_COLUMNS = ("level", "name", "value", "limit", "op", "passed", "words")


@dataclass(frozen=True)
class ReportInputs:
    """What a page is made from.

    Attributes:
        bundle: the bundle's name or path, as shown.
        metadata: the bundle's ``metadata.json`` (contract, artifacts, versions, default precision).
        build: the bundle's ``report.json`` (accuracy, calibration, plan, sensitivity; {} if none).
        plan: the INT8 precision plan (``calib/plan.json``), if the bundle has INT8.
        checks: one :class:`CheckReport` per candidate checked.
        check_skipped: why no check ran, when none did.
    """

    bundle: str
    metadata: Mapping[str, Any]
    build: Mapping[str, Any]
    plan: Any = None
    checks: Sequence[CheckReport] = ()
    check_skipped: str | None = None


@dataclass(frozen=True)
class CriterionRow:
    passed: bool
    level: str
    name: str
    words: str
    value: str
    limit: str
    more: tuple[tuple[str, str], ...] = ()  # fields beyond CRITERION_COLUMNS, by name


@dataclass(frozen=True)
class PairView:
    name: str
    words: str
    reference_uri: str
    candidate_uri: str


@dataclass(frozen=True)
class CandidateView:
    label: str
    file: str
    runner: str
    reference: str
    passed: bool
    failures: tuple[str, ...]
    criteria: tuple[CriterionRow, ...]
    data: str
    notes: tuple[str, ...]
    pairs: tuple[PairView, ...] = ()
    disagreeing: int = 0
    images: int = 0
    layerwise: tuple[tuple[str, ...], ...] = ()  # (node, op, tensor, rel. error)


@dataclass(frozen=True)
class KeptGroup:
    """Layers kept out of INT8 for one reason: how many, which ops, their share of the MACs, their names."""

    precision: str
    reason: str
    source: str
    ops: str
    share: str
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class PlanView:
    shares_uri: str
    gmacs: str
    shares: tuple[tuple[str, str], ...]
    kept: tuple[KeptGroup, ...]


@dataclass(frozen=True)
class Page:
    title: str
    created: str
    verdict: str  # PASS, FAIL or NOT CHECKED
    candidates: tuple[CandidateView, ...]
    check_skipped: str | None
    default_precision: str
    accuracy_uri: str | None
    accuracy_rows: tuple[tuple[str, ...], ...]
    accuracy_note: str
    class_uri: str | None
    class_note: str
    truth_class_uri: str | None
    truth_class_note: str
    plan: PlanView | None
    sensitivity: tuple[tuple[str, ...], ...]
    sensitivity_note: str
    image_sets: tuple[tuple[str, str, str], ...]
    versions: tuple[tuple[str, str], ...]
    legend: tuple[tuple[str, str, str], ...] = field(default=())  # (status, CSS colour, meaning)


LEGEND_WORDS = {
    "matched": "matched (same label, IoU >= 0.5)",
    "missed": "missed: the reference has it, the candidate does not",
    "extra": "extra: the candidate has it, the reference does not",
    "flipped": "label flip: the same box with another label",
}


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def criterion_row(c: Criterion) -> CriterionRow:
    """A criterion as a row; fields added to :class:`Criterion` later are shown by their names."""
    values = {f.name: getattr(c, f.name) for f in dataclasses.fields(c)}
    more = tuple((k, _fmt(v)) for k, v in values.items() if k not in CRITERION_COLUMNS and v not in (None, ""))
    limit = f"{c.op} {_fmt(c.limit)}" if c.limit is not None else ""
    return CriterionRow(c.passed, c.level, c.name, c.words, _fmt(c.value), limit, more)


def candidate_view(report: CheckReport) -> CandidateView:
    criteria = tuple(criterion_row(c) for c in report.criteria())
    pairs: tuple[PairView, ...] = ()
    disagreeing = 0
    if report.pairs is not None:
        from .images import rank_disagreements

        ranked = rank_disagreements(report.pairs)
        disagreeing = sum(1 for d in ranked if d.count)
        pairs = tuple(
            PairView(p.disagreement.name, p.disagreement.words(), p.reference_uri, p.candidate_uri)
            for p in worst_pairs(report.pairs, ranked, SHOWN_PAIRS)
        )
    layerwise: tuple[tuple[str, ...], ...] = ()
    if report.layerwise is not None:
        layerwise = tuple((d.node, d.op, d.tensor, f"{d.rel_error:.3g}") for d in report.layerwise.first[:SHOWN_LAYERS])
    return CandidateView(
        label=report.candidate.label,
        file=report.candidate.path.name,
        runner=report.candidate.runner,
        reference=report.reference.label,
        passed=report.passed,
        failures=tuple(report.failures),
        criteria=criteria,
        data=str(report.data.get("description", "")),
        notes=tuple(report.notes),
        pairs=pairs,
        disagreeing=disagreeing,
        images=len(report.pairs) if report.pairs is not None else 0,
        layerwise=layerwise,
    )


def class_agreement(checks: Sequence[CheckReport]) -> dict[str, dict[str, float]]:
    """AP of each candidate against the reference's detections, per class (the check's pseudo ground
    truth), for the :data:`SHOWN_CLASSES` classes where the candidates agree least."""
    from ..check.detections import pseudo_ap

    per: dict[str, dict[str, float]] = {}
    for report in checks:
        pairs = report.pairs
        if pairs is None:
            continue
        names = next((d.class_names for d in pairs.reference if d.class_names), ())
        ids = sorted({int(c) for d in pairs.reference for c in d.class_ids[d.scores >= pairs.conf]})
        for cid in ids:
            ref = [d[d.class_ids == cid] for d in pairs.reference]
            cand = [d[d.class_ids == cid] for d in pairs.candidate]
            name = names[cid] if cid < len(names) else str(cid)
            per.setdefault(report.candidate.label, {})[name] = pseudo_ap(ref, cand, pairs.sizes, pairs.conf)["AP"]
    worst = sorted({c for v in per.values() for c in v}, key=lambda c: min(v.get(c, 1.0) for v in per.values()))
    keep = worst[:SHOWN_CLASSES]
    return {cand: {c: v[c] for c in keep if c in v} for cand, v in per.items()}


def class_accuracy(build: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """AP per class of each precision against the ground truth of the build's report images
    (``report.json``'s ``accuracy``), for the :data:`SHOWN_CLASSES` classes where a candidate's AP
    differs most from fp32's."""
    acc = build.get("accuracy") or {}
    per = {p: dict(v["per_class"]) for p, v in acc.items() if isinstance(v, dict) and v.get("per_class")}
    base = per.get("fp32")
    if not base or len(per) < 2:
        return {}

    def gap(name: str) -> float:
        return max(abs(v.get(name, 0.0) - base[name]) for p, v in per.items() if p != "fp32")

    keep = sorted(base, key=gap, reverse=True)[:SHOWN_CLASSES]
    return {p: {c: v[c] for c in keep if c in v} for p, v in per.items()}


def _accuracy(build: Mapping[str, Any]) -> tuple[str | None, tuple[tuple[str, ...], ...], str]:
    acc = build.get("accuracy") or {}
    precisions = {k: v for k, v in acc.items() if isinstance(v, dict) and "AP" in v}
    if not precisions:
        why = acc.get("skipped") or "the build had no annotated held-out images (--calib COCO json, --check-images)"
        return None, (), f"no AP on ground truth: {why}"
    rows = tuple(
        (
            p,
            f"{v['AP']:.3f}",
            f"{v['AP50']:.3f}",
            f"{v.get('AP75', 0.0):.3f}",
            _fmt(v.get("AP_vs_fp32", 1.0 if p == "fp32" else None)),
        )
        for p, v in precisions.items()
    )
    note = f"COCO AP against the annotations of {acc.get('images')} held-out report images of {acc.get('data')}"
    return charts.ap_chart(precisions), rows, note


def _plan(plan: Any) -> PlanView | None:
    if plan is None:
        return None
    shares = plan.shares()
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for e in plan.entries:
        if e.precision != "int8":
            groups.setdefault((e.precision, e.reason, e.source), []).append(e)
    total = max(plan.total_macs, 1)
    kept = tuple(
        KeptGroup(
            precision,
            reason,
            source,
            ", ".join(f"{op} x{n}" for op, n in Counter(e.op_type for e in entries).most_common()),
            f"{100 * sum(e.macs for e in entries) / total:.1f}%" if any(e.macs for e in entries) else "-",
            tuple(e.node for e in entries),
        )
        for (precision, reason, source), entries in sorted(
            groups.items(), key=lambda kv: (kv[0][0] != "fp32", -sum(e.macs for e in kv[1]))
        )
    )
    size = plan.image_size
    return PlanView(
        charts.share_chart(shares),
        f"{plan.total_macs / 1e9:.3g} GMAC per image at {size[1]}x{size[0]}",
        tuple((p, f"{100 * s:.1f}%") for p, s in shares.items()),
        kept,
    )


def _sensitivity(build: Mapping[str, Any]) -> tuple[tuple[tuple[str, ...], ...], str]:
    sens = build.get("int8_sensitivity")
    if not sens:
        return (), "no sensitivity search in this build (rtdetr-build --int8-sensitivity)"
    base = float(sens.get("int8_ap_default", 0.0))
    kept = {k["group"] for k in sens.get("kept_in_float", [])}
    groups = sorted(
        (sens.get("groups") or {}).items(), key=lambda kv: -float(kv[1].get("int8_ap_with_group_in_float", 0.0))
    )
    rows = tuple(
        (
            name,
            str(g.get("nodes", "")),
            f"{float(g['int8_ap_with_group_in_float']):.4f}",
            f"{float(g['int8_ap_with_group_in_float']) - base:+.4f}",
            "kept in float" if name in kept else "",
        )
        for name, g in groups[:SHOWN_LAYERS]
    )
    note = (
        f"fp32 AP {float(sens.get('fp32_ap', 0.0)):.4f}, INT8 AP {base:.4f} with every group in INT8, "
        f"{float(sens.get('int8_ap_final', base)):.4f} after the search (target {sens.get('target')} x fp32), "
        f"on {sens.get('images')} range-choice images"
    )
    return rows, note


def _image_sets(inputs: ReportInputs) -> tuple[tuple[str, str, str], ...]:
    build = inputs.build
    rows: list[tuple[str, str, str]] = []
    calib = build.get("calibration") or {}
    if calib:
        rows.append(("calibration", str(calib.get("images", "")), f"INT8 ranges measured on {calib.get('source')}"))
    sets = (build.get("accuracy") or {}).get("image_sets") or {}
    if sets.get("range_choice"):
        rows.append(("range choice", str(sets["range_choice"]), "held-out images that chose the range algorithm"))
    acc = build.get("accuracy") or {}
    if acc.get("images"):
        rows.append(("accuracy report", str(acc["images"]), f"held-out annotated images of {acc.get('data')}"))
    for report in inputs.checks[:1]:
        d = report.data
        rows.append(
            (
                "check",
                str(d.get("images", "")),
                f"{d.get('description', '')}; {d.get('excluded_calibration', 0)} calibration / decision images left out",
            )
        )
    return tuple(rows)


def _versions(inputs: ReportInputs) -> tuple[tuple[str, str], ...]:
    from importlib import metadata as md

    out = {f"build: {k}": str(v) for k, v in (inputs.metadata.get("versions") or {}).items()}
    for report in inputs.checks[:1]:
        out.update({f"check: {k}": str(v) for k, v in report.versions.items()})
    for dist in ("jinja2", "matplotlib"):
        try:
            out[f"report: {dist}"] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return tuple(out.items())


def build_page(inputs: ReportInputs) -> Page:
    """The page for ``inputs`` (charts and images rendered here, as data URIs)."""
    candidates = tuple(candidate_view(r) for r in inputs.checks)
    verdict = "NOT CHECKED" if not candidates else ("PASS" if all(c.passed for c in candidates) else "FAIL")
    accuracy_uri, accuracy_rows, accuracy_note = _accuracy(inputs.build)
    per_class = class_agreement(inputs.checks)
    class_uri = charts.class_chart(per_class, "AP against the reference's detections") if per_class else None
    conf = inputs.checks[0].detections.conf if inputs.checks else None
    class_note = (
        f"per class, AP of each candidate against the reference's detections at conf {conf:g} on the check's images "
        f"(the classes where they agree least, at most {SHOWN_CLASSES})"
        if per_class
        else "no per-class comparison (no check ran or the reference found nothing)"
    )
    truth = class_accuracy(inputs.build)
    truth_uri = charts.class_chart(truth, "COCO AP per class (ground truth)") if truth else None
    truth_note = (
        f"per class, COCO AP of each precision against the annotations of the report images (the classes where "
        f"a candidate differs most from fp32, at most {SHOWN_CLASSES})"
        if truth
        else ""
    )
    sensitivity, sensitivity_note = _sensitivity(inputs.build)
    default = inputs.metadata.get("default_precision") or ""
    why = (inputs.build.get("default_precision") or {}).get("reason")
    return Page(
        title=f"rtdetr-edge report: {inputs.bundle}",
        created=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        verdict=verdict,
        candidates=candidates,
        check_skipped=inputs.check_skipped,
        default_precision=f"{default} ({why})" if why else str(default),
        accuracy_uri=accuracy_uri,
        accuracy_rows=accuracy_rows,
        accuracy_note=accuracy_note,
        class_uri=class_uri,
        class_note=class_note,
        truth_class_uri=truth_uri,
        truth_class_note=truth_note,
        plan=_plan(inputs.plan),
        sensitivity=sensitivity,
        sensitivity_note=sensitivity_note,
        image_sets=_image_sets(inputs),
        versions=_versions(inputs),
        legend=tuple((k, css_colour(k), LEGEND_WORDS[k]) for k in COLOURS),
    )
