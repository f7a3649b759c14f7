"""``Detections == Detections`` compares content (it used to raise on numpy arrays)."""

from __future__ import annotations

import numpy as np
import pytest

from rtdetr_edge.detections import Detections


def _dets(
    score: float = 0.5, names: tuple[str, ...] = ("a", "b"), size: tuple[int, int] | None = (4, 4), cls: int = 1
) -> Detections:
    return Detections(np.array([[0, 0, 2, 2]]), np.array([score]), np.array([cls]), names, size)


def test_equal_content_is_equal() -> None:
    assert _dets() == _dets()
    assert Detections.empty(("a",)) == Detections.empty(("a",))


@pytest.mark.parametrize(
    "other",
    [_dets(score=0.6), _dets(names=("a", "c")), _dets(size=None), _dets(cls=0), Detections.empty(("a", "b"), (4, 4))],
)
def test_any_difference_is_unequal(other: Detections) -> None:
    assert _dets() != other


def test_not_equal_to_other_types_and_not_hashable() -> None:
    assert _dets() != "detections"
    with pytest.raises(TypeError):
        hash(_dets())
