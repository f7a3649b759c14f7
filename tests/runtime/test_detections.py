"""Detections dataclass and postprocessing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rtdetr_edge.detections import Detections
from rtdetr_edge.errors import InputError
from rtdetr_edge.postprocess import PostprocessOptions, from_raw, from_topk, topk_raw

NAMES = ("cat", "dog", "remote")


def _dets() -> Detections:
    return Detections(np.array([[0, 0, 10, 10], [5, 5, 20, 30], [1, 2, 3, 4]], np.float32),
                      np.array([0.9, 0.6, 0.2], np.float32), np.array([0, 2, 1]), NAMES, (100, 50))


def test_container_behaviour() -> None:
    d = _dets()
    assert len(d) == 3 and d.labels == ["cat", "remote", "dog"]
    strong = d[d.scores > 0.5]
    assert len(strong) == 2 and strong.class_names == NAMES
    assert len(d[1]) == 1 and d[1].labels == ["remote"]
    assert len(d[:2]) == 2
    first = next(iter(d))
    assert first.label == "cat" and first.xyxy == (0.0, 0.0, 10.0, 10.0)
    assert len(Detections.empty(NAMES)) == 0
    assert np.allclose(d.area, [100, 375, 4])
    assert "cat 0.90" in repr(d)


def test_exports() -> None:
    d = _dets()
    j = json.loads(d.to_json())
    assert j["image_size"] == [100, 50] and j["detections"][0]["label"] == "cat"
    coco = d.to_coco(7, {0: 17, 1: 18})
    assert [c["category_id"] for c in coco] == [17, 18]
    assert coco[0]["bbox"] == [0.0, 0.0, 10.0, 10.0]
    kw = d.supervision_kwargs()
    assert kw["xyxy"].shape == (3, 4) and list(kw["data"]["class_name"]) == ["cat", "remote", "dog"]

    class FakeSv:  # duck-typed: whatever has a Detections(**kwargs)
        class Detections:
            def __init__(self, **kwargs):  # type: ignore[no-untyped-def]
                self.kwargs = kwargs

    assert d.to_supervision(FakeSv).kwargs["confidence"][0] == pytest.approx(0.9)


def test_draw_returns_annotated_copy() -> None:
    img = np.zeros((50, 100, 3), np.uint8)
    out = _dets().draw(img)
    assert out.shape == img.shape and out.any() and not img.any()


@pytest.mark.parametrize("kwargs, message", [
    ({"xyxy": np.zeros((2, 3))}, "expected shape \\(M, 4\\)"),
    ({"scores": np.zeros(5)}, "Detections.scores: expected shape \\(3,\\)"),
    ({"class_ids": np.array([0, 1, 7])}, "expected values in \\[0, 3\\)"),
])
def test_validation(kwargs, message: str) -> None:  # type: ignore[no-untyped-def]
    base = {"xyxy": np.zeros((3, 4)), "scores": np.zeros(3), "class_ids": np.zeros(3), "class_names": NAMES}
    with pytest.raises(InputError, match=message):
        Detections(**{**base, **kwargs})


def test_from_topk_threshold_scale_clip_filter() -> None:
    scores = np.array([[0.9, 0.5, 0.1]], np.float32)
    labels = np.array([[1, 0, 1]], np.int32)
    boxes = np.array([[[0.1, 0.1, 0.5, 0.5], [-0.1, 0.2, 1.2, 0.4], [0, 0, 1, 1]]], np.float32)
    d = from_topk(scores, labels, boxes, [(200, 100)], PostprocessOptions(conf=0.3), NAMES)[0]
    assert len(d) == 2 and np.allclose(d.xyxy[0], [20, 10, 100, 50])
    assert d.xyxy[1][0] < 0  # unclipped by default, as the model predicts
    clipped = from_topk(scores, labels, boxes, [(200, 100)], PostprocessOptions(conf=0.3, clip=True), NAMES)[0]
    assert clipped.xyxy[1][0] == 0 and clipped.xyxy[1][2] == 200
    only0 = from_topk(scores, labels, boxes, [(200, 100)], PostprocessOptions(conf=0.0, classes=(0,)), NAMES)[0]
    assert only0.class_ids.tolist() == [0]
    top1 = from_topk(scores, labels, boxes, [(200, 100)], PostprocessOptions(conf=0.0, max_det=1), NAMES)[0]
    assert top1.scores.tolist() == [pytest.approx(0.9)]


def test_raw_topk_matches_full_sort() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(300, 80)).astype(np.float32)
    scores, labels, queries = topk_raw(logits, 100)
    flat = logits.reshape(-1)
    full = np.argsort(-flat, kind="stable")[:100]
    assert np.array_equal(queries * 80 + labels, full)
    assert np.allclose(scores, 1 / (1 + np.exp(-flat[full])))


def test_from_raw_converts_cxcywh() -> None:
    logits = np.full((1, 2, 3), -10, np.float32)
    logits[0, 1, 2] = 5
    boxes = np.array([[[0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 0.5, 1.0]]], np.float32)
    d = from_raw(logits, boxes, [(100, 100)], 6, PostprocessOptions(conf=0.5), NAMES)[0]
    assert len(d) == 1 and d.labels == ["remote"] and np.allclose(d.xyxy[0], [25, 0, 75, 100])
