"""Postprocessing model outputs into Detections: in-graph top-k and raw logits/boxes."""

from __future__ import annotations

import numpy as np
import pytest

from rtdetr_edge.postprocess import PostprocessOptions, from_raw, from_topk, topk_raw

NAMES = ("cat", "dog", "remote")


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
