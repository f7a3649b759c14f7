"""The Detections container: indexing, labels, exports (JSON, COCO, supervision), drawing, validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rtdetr_edge.detections import Detections
from rtdetr_edge.errors import InputError

NAMES = ("cat", "dog", "remote")


def _dets() -> Detections:
    return Detections(
        np.array([[0, 0, 10, 10], [5, 5, 20, 30], [1, 2, 3, 4]], np.float32),
        np.array([0.9, 0.6, 0.2], np.float32),
        np.array([0, 2, 1]),
        NAMES,
        (100, 50),
    )


def test_detections_index_slice_iterate_and_label_like_a_list() -> None:
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


def test_detections_export_to_json_coco_and_supervision() -> None:
    d = _dets()
    j = json.loads(d.to_json())
    assert j["image_size"] == [100, 50] and j["detections"][0]["label"] == "cat"
    coco = d.to_coco(7, {0: 17, 1: 18}, unmapped="skip")  # class 2 is not mapped
    assert [c["category_id"] for c in coco] == [17, 18]
    assert coco[0]["bbox"] == [0.0, 0.0, 10.0, 10.0]
    kw = d.supervision_kwargs()
    assert kw["xyxy"].shape == (3, 4) and list(kw["data"]["class_name"]) == ["cat", "remote", "dog"]

    class FakeSv:  # duck-typed: whatever has a Detections(**kwargs)
        class Detections:
            def __init__(self, **kwargs):
                self.kwargs = kwargs

    assert d.to_supervision(FakeSv).kwargs["confidence"][0] == pytest.approx(0.9)


def test_draw_returns_annotated_copy() -> None:
    img = np.zeros((50, 100, 3), np.uint8)
    out = _dets().draw(img)
    assert out.shape == img.shape and out.any() and not img.any()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"xyxy": np.zeros((2, 3))}, "expected shape \\(M, 4\\)"),
        ({"scores": np.zeros(5)}, "Detections.scores: expected shape \\(3,\\)"),
        ({"class_ids": np.array([0, 1, 7])}, "expected values in \\[0, 3\\)"),
    ],
)
def test_detections_with_wrong_shapes_or_class_ids_are_refused(kwargs, message: str) -> None:
    base = {"xyxy": np.zeros((3, 4)), "scores": np.zeros(3), "class_ids": np.zeros(3), "class_names": NAMES}
    with pytest.raises(InputError, match=message):
        Detections(**{**base, **kwargs})
