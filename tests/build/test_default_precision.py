"""Which precision a bundle defaults to: int8 only when INT8 passed its check (best: and is
accurate and substantially INT8), else fp16 with one warning naming what failed."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from rtdetr_edge.build import BuildOptions, default_precision
from rtdetr_edge.calib import CalibrationOptions
from rtdetr_edge.calib.plan import PlanEntry, PrecisionPlan

ARTIFACTS: dict[str, Any] = {"fp32": {}, "fp16": {}, "int8": {}}
PASSED = {"passed": True, "int8": {"passed": True, "failures": []}}
FAILED = {"passed": False, "int8": {"passed": False, "failures": ["missed rate 0.08 > 0.05", "AP 0.7 < 0.8"]}}
ACCURATE = {"int8": {"AP_vs_fp32": 0.995}}


def interval(value: float, low: float, high: float) -> dict[str, Any]:
    """A passed check whose INT8 report carries the ground-truth AP ratio's interval."""
    from rtdetr_edge.check.detections import AP_RATIO

    ratio = {"value": value, "low": low, "high": high}
    return {"passed": True, "int8": {"passed": True, "failures": [], "detections": {"intervals": {AP_RATIO: ratio}}}}


def plan(int8_share: float) -> PrecisionPlan:
    n = 1000
    return PrecisionPlan(
        (
            PlanEntry("a", "Conv", "int8", "r", "default rule", int(n * int8_share)),
            PlanEntry("b", "Conv", "fp16", "r", "default rule", n - int(n * int8_share)),
        )
    )


def opts(precision: str) -> BuildOptions:
    return BuildOptions(precision=precision, calibration=CalibrationOptions(calib="data"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "precision, check, accuracy, share, expected, words",
    [
        ("int8", PASSED, None, 0.9, "int8", "passed"),
        ("int8", FAILED, None, 0.9, "fp16", "missed rate 0.08 > 0.05; check: AP 0.7 < 0.8"),
        ("int8", {"skipped": "Polygraphy missing"}, None, 0.9, "fp16", "did not run (Polygraphy missing)"),
        ("int8", None, None, 0.9, "fp16", "did not run (--check-images 0)"),
        ("best", PASSED, ACCURATE, 0.9, "int8", "substantially INT8"),
        ("best", PASSED, {"int8": {"AP_vs_fp32": 0.97}}, 0.9, "fp16", "INT8 AP 0.9700 x fp32 < --int8-target 0.99"),
        ("best", PASSED, ACCURATE, 0.6, "fp16", "only 60.0% of MACs in INT8"),
        # the check's interval of the ground-truth AP ratio decides over the point ratio: a point
        # below the target with an interval reaching it keeps INT8; an interval below it does not
        ("best", interval(0.985, 0.97, 1.001), {"int8": {"AP_vs_fp32": 0.985}}, 0.9, "int8", "substantially INT8"),
        ("best", interval(0.96, 0.94, 0.98), ACCURATE, 0.9, "fp16", "(95% CI upper bound 0.9800) < --int8-target"),
        ("best", PASSED, None, 0.9, "fp16", "no held-out AP"),
        ("fp16", FAILED, None, 0.9, "fp16", "requested"),
    ],
)
def test_default_precision(
    caplog: pytest.LogCaptureFixture,
    precision: str,
    check: dict[str, Any] | None,
    accuracy: dict[str, Any] | None,
    share: float,
    expected: str,
    words: str,
) -> None:
    with caplog.at_level(logging.WARNING, logger="rtdetr_edge"):
        chosen, why = default_precision(opts(precision), ARTIFACTS, check, accuracy, plan(share))
    assert chosen == expected and words in why
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if precision != "fp16" and expected == "fp16":
        assert len(warnings) == 1 and words in warnings[0]
    elif accuracy is not None and check is not None and "detections" in check["int8"] and expected == "int8":
        assert len(warnings) == 1 and "but its 95% CI over the check's images reaches it" in warnings[0]  # said
    else:
        assert not warnings
