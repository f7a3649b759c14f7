"""Engine batch profiles (MIN,OPT,MAX): parsing, coercion, clamping, shapes."""

from __future__ import annotations

from typing import Any

import pytest

from rtdetr_edge.engine_format import (
    BatchProfile,
    resolve_shape,
    volume,
)
from rtdetr_edge.errors import EngineError, InputError


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1,1,8", (1, 1, 8)),
        ("4", (4, 4, 4)),
        (" 1, 2, 16", (1, 2, 16)),
        ("2,2,2", (2, 2, 2)),
        ("8,1,1", "MIN <= OPT <= MAX"),
        ("0,1,1", "MIN <= OPT"),
        ("1,2", "three numbers"),
        ("a,b,c", "integers"),
        ("", "integers"),
    ],
)
def test_batch_profile_parses_min_opt_max_text(text: str, expected: Any) -> None:
    if isinstance(expected, tuple):
        assert BatchProfile.parse(text).as_tuple() == expected
    else:
        with pytest.raises(InputError, match=expected):
            BatchProfile.parse(text)


@pytest.mark.parametrize(
    "value, expected",
    [
        (BatchProfile(1, 2, 4), (1, 2, 4)),
        ("1,1,8", (1, 1, 8)),
        (3, (3, 3, 3)),
        ((1, 4, 8), (1, 4, 8)),
        ([2], (2, 2, 2)),
    ],
)
def test_batch_profile_coerces_profiles_text_ints_and_sequences(value: Any, expected: tuple[int, int, int]) -> None:
    assert BatchProfile.coerce(value).as_tuple() == expected


def test_batch_profile_coerce_rejects_other_types() -> None:
    with pytest.raises(InputError):
        BatchProfile.coerce(1.5)
    with pytest.raises(InputError):
        BatchProfile.coerce(True)


@pytest.mark.parametrize(
    "profile, bounds, expected",
    [
        ((1, 1, 8), (1, 0), (1, 1, 8)),  # dynamic graph, unbounded contract
        ((1, 1, 8), (1, 1), (1, 1, 1)),  # static batch-1 graph
        ((1, 4, 8), (1, 4), (1, 4, 4)),  # contract max 4
        ((1, 1, 8), (2, 0), (2, 2, 8)),  # contract min 2
        ((1, 1, 1), (4, 4), (4, 4, 4)),  # static batch-4 graph
    ],
)
def test_batch_profile_clamps_to_graph_and_contract_bounds(
    profile: tuple[int, int, int], bounds: tuple[int, int], expected: tuple[int, int, int]
) -> None:
    assert BatchProfile(*profile).clamp(*bounds).as_tuple() == expected


def test_profile_shapes_and_dynamic_error() -> None:
    lo, opt, hi = BatchProfile(1, 2, 4).shapes((3, 64, 64))
    assert (lo, opt, hi) == ((1, 3, 64, 64), (2, 3, 64, 64), (4, 3, 64, 64))
    assert BatchProfile(1, 1, 8).static is False and BatchProfile(2, 2, 2).static
    with pytest.raises(EngineError, match="only the batch may be dynamic"):
        BatchProfile(1, 1, 2).shapes((3, -1, 64))


def test_dynamic_batch_axis_resolves_and_volume_multiplies() -> None:
    assert resolve_shape((-1, 300, 4), 3) == (3, 300, 4)
    assert resolve_shape((2, 300), 5) == (2, 300)
    with pytest.raises(EngineError, match="dynamic axes"):
        resolve_shape((-1, -1), 2, "boxes")
    assert volume((2, 3, 4)) == 24 and volume(()) == 1
