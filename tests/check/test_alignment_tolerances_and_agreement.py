"""rtdetr-check's building blocks: decoder-query alignment, tolerances, detection-level agreement, options."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("polygraphy")
pytest.importorskip("faster_coco_eval")

from rtdetr_edge.check import CheckOptions
from rtdetr_edge.check.compare import DEFAULT_TOLERANCES, parse_tolerance_args, tolerances_for
from rtdetr_edge.check.detections import DEFAULT_THRESHOLDS, agreement
from rtdetr_edge.check.models import PRED_BOXES, PROBS, SCORES
from rtdetr_edge.check.queries import align_queries, align_rows
from rtdetr_edge.detections import Detections
from rtdetr_edge.errors import RtdetrEdgeError


def test_query_alignment_undoes_a_permutation() -> None:
    rng = np.random.default_rng(1)
    boxes, probs = rng.random((30, 4)), rng.random((30, 5))
    perm = rng.permutation(30)
    noisy_boxes = boxes[perm] + rng.normal(0, 1e-4, (30, 4))
    found = align_rows(boxes, probs, noisy_boxes, probs[perm])
    np.testing.assert_array_equal(perm[found], np.arange(30))
    np.testing.assert_array_equal(align_rows(boxes, probs, boxes, probs), np.arange(30))


def test_a_replaced_query_is_left_out_within_the_limit() -> None:
    rng = np.random.default_rng(2)
    ref = {PRED_BOXES: rng.random((1, 30, 4)), PROBS: rng.random((1, 30, 5))}
    perm = rng.permutation(30)
    cand = {k: v[:, perm] + 1e-5 for k, v in ref.items()}
    cand[PRED_BOXES][0, 7] = [0.9, 0.9, 0.05, 0.05]  # another query took this place
    gates = {PRED_BOXES: 0.02, PROBS: 0.04}
    aligned, moved, unmatched = align_queries(ref, cand, gates)
    assert moved > 0 and unmatched is not None and unmatched.sum() == 1
    assert np.abs(aligned[PROBS][~unmatched] - ref[PROBS][~unmatched]).max() < 1e-4


def test_detection_agreement_counts_flips_misses_and_extras() -> None:
    names = ("a", "b")
    ref = Detections(
        np.array([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60]], np.float32),
        np.array([0.9, 0.8, 0.7], np.float32),
        np.array([0, 1, 0]),
        names,
    )
    same = agreement([ref], [ref], [(100, 100)], DEFAULT_THRESHOLDS["fp32"])
    assert same.passed and same.ap == pytest.approx(1.0) and same.mean_iou == 1.0
    cand = Detections(
        np.array([[0, 0, 10, 10], [20, 20, 40, 40], [70, 70, 90, 90]], np.float32),
        np.array([0.85, 0.8, 0.6], np.float32),
        np.array([0, 0, 1]),
        names,
    )
    d = agreement([ref], [cand], [(100, 100)], DEFAULT_THRESHOLDS["int8"])
    assert (d.label_flips, d.missed, d.extra, d.matched) == (1, 1, 1, 1)
    assert d.score_drift_max == pytest.approx(0.05) and not d.passed
    assert any("label flip rate" in f for f in d.failures)


@pytest.mark.parametrize(
    "values, expected",
    [
        (None, None),
        (["1e-3"], 1e-3),
        (["post/probs=0.02", "pred_boxes=0.01"], {"post/probs": 0.02, "pred_boxes": 0.01}),
        (["1e-3", "2e-3"], "one bare value"),
        (["post/probs=x"], "expected V or NAME=V"),
    ],
)
def test_tolerance_arguments_parse_one_value_or_per_output_values(values: list[str] | None, expected: object) -> None:
    if isinstance(expected, str):
        with pytest.raises(RtdetrEdgeError, match=expected):
            parse_tolerance_args(values, "atol")
    else:
        assert parse_tolerance_args(values, "atol") == expected


def test_tolerance_overrides_replace_only_the_named_outputs() -> None:
    tol = tolerances_for("int8", atol={"post/probs": 0.2}, rtol=0.01)
    assert (
        tol[PROBS].atol == 0.2
        and tol[PRED_BOXES].atol == DEFAULT_TOLERANCES["int8"][PRED_BOXES].atol
        and tol[SCORES].rtol == 0.01
    )
    with pytest.raises(RtdetrEdgeError, match="unknown output"):
        tolerances_for("fp16", atol={"probs": 0.1})


def test_check_options_refuse_a_confidence_outside_0_1() -> None:
    with pytest.raises(RtdetrEdgeError, match="--conf"):
        CheckOptions(conf=2.0)
