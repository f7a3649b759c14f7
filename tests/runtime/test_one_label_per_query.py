"""One detection per object (issue 24, item 2): the best label of each query, drawn on top, clipped.

The model's top-k runs over queries x classes, so one query can come out with several labels and
the same box. What a person sees (the Detector's default) keeps each query's best label; COCO AP
(``rtdetr-eval``) and transformers' post-processing keep them all.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rtdetr_edge.detections import Detections, _colour
from rtdetr_edge.postprocess import PostprocessOptions, from_raw, from_topk

NAMES = ("cross", "star", "ring")
SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "images"


def _topk(opts: PostprocessOptions) -> Detections:
    # query A (box a) is "star 0.78" and "cross 0.53"; query B (box b) is "ring 0.6"
    a, b = [0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]
    scores = np.array([[0.78, 0.6, 0.53]], np.float32)
    labels = np.array([[1, 2, 0]], np.int32)
    boxes = np.array([[a, b, a]], np.float32)
    return from_topk(scores, labels, boxes, [(100, 100)], opts, NAMES)[0]


def _raw(opts: PostprocessOptions) -> Detections:
    logits = np.full((1, 2, 3), -10, np.float32)
    logits[0, 0, 1], logits[0, 0, 0], logits[0, 1, 2] = 1.27, 0.12, 0.41  # sigmoid 0.78, 0.53, 0.60
    boxes = np.array([[[0.3, 0.3, 0.4, 0.4], [0.75, 0.75, 0.3, 0.3]]], np.float32)
    return from_raw(logits, boxes, [(100, 100)], 10, opts, NAMES)[0]


@pytest.mark.parametrize(
    ("make", "all_labels", "expected"),
    [
        (_topk, False, ["star", "ring"]),
        (_topk, True, ["star", "ring", "cross"]),
        (_raw, False, ["star", "ring"]),
        (_raw, True, ["star", "ring", "cross"]),
    ],
)
def test_one_label_per_query_unless_all_labels(make, all_labels: bool, expected: list[str]) -> None:
    dets = make(PostprocessOptions(conf=0.3, all_labels=all_labels))
    assert dets.labels == expected


def test_class_filter_and_max_det_count_objects_not_labels() -> None:
    # the duplicate label of query A does not take a max_det slot of its own
    assert _topk(PostprocessOptions(conf=0.3, all_labels=False, max_det=2)).labels == ["star", "ring"]
    assert _topk(PostprocessOptions(conf=0.3, all_labels=False, classes=[2])).labels == ["ring"]


def _duplicate_pairs(dets: Detections) -> int:
    """Pairs of detections with the very same box (one query, several labels)."""
    boxes = [tuple(b) for b in dets.xyxy.tolist()]
    return len(boxes) - len(set(boxes))


def test_detector_default_is_one_label_per_query_clipped(reference_bundle: Path) -> None:
    from rtdetr_edge import Detector

    files = sorted(str(p) for p in SAMPLES.glob("*.jpg"))
    with Detector(reference_bundle) as det:
        seen = det(files)
    with Detector(reference_bundle, all_labels=True, clip=False) as det:
        raw = det(files)
    assert sum(_duplicate_pairs(d) for d in raw) > 0  # the model does give one query several labels
    assert sum(_duplicate_pairs(d) for d in seen) == 0
    for d in seen:
        assert d.image_size is not None
        w, h = d.image_size
        assert (d.xyxy >= 0).all() and (d.xyxy[:, [0, 2]] <= w).all() and (d.xyxy[:, [1, 3]] <= h).all()
    assert any((d.xyxy < 0).any() for d in raw)  # the quick start's y = -2.2, kept only on request


def test_evaluation_keeps_every_label_and_the_model_boxes() -> None:
    from rtdetr_edge.evaluate.runner import EVAL_OPTIONS

    assert EVAL_OPTIONS.all_labels and not EVAL_OPTIONS.clip and EVAL_OPTIONS.conf == 0.0


def test_draw_puts_the_best_label_on_top() -> None:
    box = [10, 30, 60, 80]
    dets = Detections(np.array([box, box], np.float32), np.array([0.78, 0.53], np.float32), np.array([1, 0]), NAMES)
    canvas = dets.draw(np.zeros((100, 100, 3), np.uint8))
    # the label patch sits just above the box's top-left corner, filled with the class colour
    patch = canvas[20:29, 12:40].reshape(-1, 3)
    colours, counts = np.unique(patch, axis=0, return_counts=True)
    assert tuple(int(v) for v in colours[counts.argmax()]) == _colour(1) != _colour(0)


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((20, 20, 3), np.float32), "uint8"),
        (np.zeros((20, 20), np.uint8), "HxWx3"),
        ("scene.jpg", "got str"),
    ],
)
def test_draw_refuses_what_is_not_a_bgr_image(image: object, match: str) -> None:
    from rtdetr_edge.errors import InputError

    dets = Detections(np.array([[1, 1, 5, 5]], np.float32), np.array([0.9]), np.array([0]), NAMES)
    with pytest.raises(InputError, match=match):
        dets.draw(image)  # type: ignore[arg-type]


def test_draw_skips_boxes_it_cannot_place() -> None:
    xyxy = np.array([[np.nan, 0, 5, 5], [-1e12, -1e12, 1e12, 1e12]], np.float32)
    out = Detections(xyxy, np.array([0.9, 0.8]), np.array([0, 1]), NAMES).draw(np.zeros((10, 10, 3), np.uint8))
    assert out.shape == (10, 10, 3)
    assert cv2.countNonZero(out[..., 0]) > 0
