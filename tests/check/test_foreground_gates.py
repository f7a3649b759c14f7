"""What the element-wise gates judge: the foreground query rows and the shown scores, nothing else.

Synthetic Polygraphy ``RunResults`` (no model): each test changes one thing on one side and shows
the gate that must (or must not) notice it.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("polygraphy")
pytest.importorskip("faster_coco_eval")

from rtdetr_edge.check import CheckOptions, run_check
from rtdetr_edge.check.compare import DEFAULT_TOLERANCES, compare_tensors
from rtdetr_edge.check.detections import AP_MIN_MAX_DETS, DEFAULT_THRESHOLDS, agreement, pseudo_ap
from rtdetr_edge.check.models import PRED_BOXES, PROBS, SCORES
from rtdetr_edge.check.queries import DEFAULT_MAX_UNMATCHED
from rtdetr_edge.detections import Detections
from rtdetr_edge.errors import InputError

REF, CAND = "reference:onnxrt-fp32", "candidate:onnxrt-int8"
INT8 = DEFAULT_TOLERANCES["int8"]
FOREGROUND = 10  # rows 0..9 score 0.8 for class 0; rows 10..39 are background (max 0.1)


def _outputs(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    q = 40
    probs = rng.uniform(0.0, 0.1, (1, q, 3))
    probs[0, :FOREGROUND, 0] = 0.8
    boxes = np.concatenate([rng.uniform(0.2, 0.8, (1, q, 2)), rng.uniform(0.05, 0.2, (1, q, 2))], axis=-1)
    scores = np.sort(probs.reshape(1, -1), axis=-1)[:, ::-1][:, :20].copy()
    return {PROBS: probs.astype(np.float32), PRED_BOXES: boxes.astype(np.float32), SCORES: scores.astype(np.float32)}


def _results(ref: dict[str, np.ndarray], cand: dict[str, np.ndarray]) -> Any:
    from polygraphy.comparator import IterationResult, RunResults

    results = RunResults()
    results.append((REF, [IterationResult(OrderedDict(ref), runner_name=REF)]))
    results.append((CAND, [IterationResult(OrderedDict(cand), runner_name=CAND)]))
    return results


def _compare(
    cand: dict[str, np.ndarray], max_unmatched: float = DEFAULT_MAX_UNMATCHED["int8"], conf: float = 0.3
) -> Any:
    return compare_tensors(_results(_outputs(), cand), REF, CAND, INT8, max_unmatched, conf)


def test_background_rows_are_not_judged_but_foreground_rows_are() -> None:
    cand = _outputs()
    cand[PRED_BOXES][0, FOREGROUND:, :2] += 0.3  # every background query moved far: nobody sees them
    cand[PROBS][0, FOREGROUND:] += 0.15
    t = _compare(cand)
    assert t.passed, t.to_dict()
    assert (t.query_rows, t.foreground_rows, t.unmatched_rows) == (40, FOREGROUND, 0)
    assert t.outputs[PRED_BOXES].compared == FOREGROUND and t.outputs[PRED_BOXES].max_abs == 0.0
    # the same candidate judged over every row (conf 0: all rows foreground) fails: what the old gate did
    everything = _compare(cand, conf=0.0)
    assert not everything.passed and everything.foreground_rows == 40
    # a visible row moved by twice the tolerance (within the 4x gate: the same query, computed worse) fails
    cand[PRED_BOXES][0, 3, 0] += 2 * INT8[PRED_BOXES].atol
    moved = _compare(cand)
    assert not moved.outputs[PRED_BOXES].passed and moved.unmatched_rows == 0, moved.to_dict()
    assert moved.outputs[PRED_BOXES].max_abs == pytest.approx(2 * INT8[PRED_BOXES].atol, rel=1e-3)


def test_unmatched_fraction_counts_foreground_rows_only() -> None:
    cand = _outputs()
    cand[PRED_BOXES][0, FOREGROUND:, :2] = 0.95  # every background row replaced by another query: not counted
    assert _compare(cand).unmatched_rows == 0
    cand[PRED_BOXES][0, 4] = [0.05, 0.05, 0.01, 0.01]  # one visible row has no counterpart: 1/10 foreground rows
    t = _compare(cand)
    assert (t.unmatched_rows, t.foreground_rows) == (1, FOREGROUND) and t.unmatched_fraction == pytest.approx(0.1)
    assert not t.passed and not t.unmatched_excluded
    assert not t.outputs[PRED_BOXES].passed  # beyond the limit the row is compared, and fails too
    lenient = _compare(cand, max_unmatched=0.1)
    assert lenient.passed and lenient.unmatched_excluded and lenient.outputs[PRED_BOXES].compared == FOREGROUND - 1


def test_scores_are_compared_where_the_reference_shows_them() -> None:
    ref = _outputs()
    cand = _outputs()
    shown = int((ref[SCORES] >= 0.3).sum())
    assert shown == FOREGROUND
    cand[SCORES][0, shown:] = np.linspace(0.29, 0.25, cand[SCORES].shape[1] - shown)  # below conf on the reference
    t = _compare(cand)
    assert t.passed and t.score_entries == shown and t.outputs[SCORES].max_abs == 0.0, t.to_dict()
    cand[SCORES][0, shown - 1] -= 1.5 * INT8[SCORES].atol  # a shown score dropped
    assert not _compare(cand).outputs[SCORES].passed


def test_no_foreground_row_is_reported_as_nothing_to_judge(tiny_bundle: Path) -> None:
    ref = _outputs()
    t = compare_tensors(_results(ref, _outputs(1)), REF, CAND, INT8, 0.02, conf=0.95)
    assert t.foreground_rows == 0 and t.score_entries == 0 and t.nothing_to_judge and t.passed
    assert all(o.compared == 0 and "nothing to compare" in o.note for o in t.outputs.values())
    report = run_check(tiny_bundle, "fp32", CheckOptions(num_images=2, conf=1.0))
    text = report.format()
    assert report.tensors.nothing_to_judge and "nothing element-wise to judge" in text, text
    assert "the reference has no detection at this confidence" in text
    assert text.splitlines()[-1] == "  PASS (nothing to judge: the reference shows nothing at conf 1)", text


def _crowd(seed: int, per_image: int = 300) -> Detections:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 280, (per_image, 2))
    wh = rng.uniform(8, 40, (per_image, 2))
    scores = np.sort(rng.uniform(0.31, 0.99, per_image))[::-1]
    return Detections(
        np.concatenate([xy, xy + wh], 1).astype(np.float32),
        scores.astype(np.float32),
        np.zeros(per_image, np.int64),  # one class: COCO caps detections per image and category
        ("a",),
    )


def test_self_agreement_ap_counts_every_detection() -> None:
    """300 detections per image, all above conf (a random model's top-k): against itself AP is exactly 1.
    COCO's default cut at 100 detections per image (what the check did) scores the same outputs far lower."""
    dets = [_crowd(0), _crowd(1)]
    sizes = [(320, 320)] * 2
    same = agreement(dets, dets, sizes, DEFAULT_THRESHOLDS["fp32"])
    assert same.reference_detections == 600 and same.ap == 1.0 and same.ap50 == 1.0 and same.passed, same.failures
    assert pseudo_ap(dets, dets, sizes, max_dets=AP_MIN_MAX_DETS)["AP"] < 0.5
    with pytest.raises(InputError, match="max_dets"):
        pseudo_ap(dets, dets, sizes, max_dets=0)
