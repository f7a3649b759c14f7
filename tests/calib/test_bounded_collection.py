"""Calibration in graph segments of bounded activation memory gives the ranges of one run per batch."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import onnx
import pytest

from rtdetr_edge.bundle import Bundle
from rtdetr_edge.calib import CalibrationOptions
from rtdetr_edge.calib.collect import ALGORITHMS, ActivationCollector
from rtdetr_edge.calib.segments import bytes_per_image, group_by_budget, split_for_fetch
from rtdetr_edge.errors import InputError


@pytest.mark.parametrize(
    ("sizes", "budget", "groups"),
    [
        ([], 10, []),
        ([3, 3, 3], 10, [[0, 1, 2]]),
        ([4, 4, 4], 8, [[0, 1], [2]]),
        ([4, 5, 1], 8, [[0], [1, 2]]),
        ([20, 1, 1], 8, [[0], [1, 2]]),  # too big for any group: one of its own
        ([1, 20, 1], 8, [[0], [1], [2]]),
        ([0, 0, 9, 0], 8, [[0, 1], [2], [3]]),
    ],
)
def test_groups_are_consecutive_and_within_budget(sizes: list[int], budget: int, groups: list[list[int]]) -> None:
    assert [list(g) for g in group_by_budget(sizes, budget)] == groups


@pytest.mark.parametrize("seed", range(5))
def test_no_group_exceeds_its_budget_unless_one_tensor_does(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = [int(s) for s in rng.integers(0, 100, 200)]
    budget = int(rng.integers(50, 400))
    groups = group_by_budget(sizes, budget)
    assert [i for g in groups for i in g] == list(range(len(sizes)))
    for g in groups:
        assert sum(sizes[i] for i in g) <= budget or len(g) == 1
    for a, b in itertools.pairwise(groups):  # greedy: the next tensor did not fit
        assert sum(sizes[i] for i in a) + sizes[b[0]] > budget


def _fp32(tiny_bundle: Path) -> Path:
    return Bundle(tiny_bundle).onnx_path("fp32")


@pytest.mark.parametrize("budget_kb", [16, 64, 256])
def test_segments_fetch_each_tensor_once_within_budget(tiny_bundle: Path, budget_kb: int) -> None:
    model = onnx.load(str(_fp32(tiny_bundle)))
    full = ActivationCollector(_fp32(tiny_bundle), memory_mb=0)
    fetched = full.segments[0].fetched
    sizes = {k: v * 4 for k, v in bytes_per_image(model, fetched).items()}
    segments = split_for_fetch(model, fetched, sizes, budget_kb << 10)
    assert len(segments) > 1
    assert sorted(t for s in segments for t in s.fetched) == sorted(fetched)
    for seg in segments:
        assert sum(sizes[t] for t in seg.fetched) <= budget_kb << 10 or len(seg.fetched) == 1
        made = {o for k in seg.nodes for o in model.graph.node[k].output}
        # what a segment reads is a graph input or passed on by an earlier segment
        earlier = {"images"} | {t for s in segments[: segments.index(seg)] for t in s.passed_on}
        assert set(seg.inputs) <= earlier and set(seg.fetched) <= made


def _batches(seed: int, sizes: tuple[int, ...]) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"images": rng.random((n, 3, 64, 64), dtype=np.float32)} for n in sizes]


@pytest.mark.parametrize(("seed", "memory_mb"), [(0, 0.02), (1, 0.2), (2, 1.0)])
def test_segmented_ranges_equal_one_run_per_batch(tiny_bundle: Path, seed: int, memory_mb: float) -> None:
    """Same histograms, hence bit-equal ranges, for every algorithm; several batches (arenas reused
    in turn) and a smaller last batch (a new layout)."""
    batches = _batches(seed, (4, 4, 4, 2))
    one = ActivationCollector(_fp32(tiny_bundle), memory_mb=0, batch_size=4)
    split = ActivationCollector(_fp32(tiny_bundle), memory_mb=memory_mb, batch_size=4)
    assert len(one.segments) == 1 and len(split.segments) > 1
    one.collect(batches)
    split.collect(batches)
    assert one.images == split.images == 14
    for name, hist in one.histograms.items():
        other = split.histograms[name]
        assert (hist.max, hist.range, hist.seen) == (other.max, other.range, other.seen), name
        assert np.array_equal(hist.counts, other.counts), name
    for algorithm in ALGORITHMS:
        assert one.ranges(algorithm) == split.ranges(algorithm), algorithm


def test_segments_run_each_node_at_most_once(tiny_bundle: Path) -> None:
    """The inference is not repeated: no node is in two segments."""
    col = ActivationCollector(_fp32(tiny_bundle), memory_mb=0.2, batch_size=4)
    nodes = [k for seg in col.segments for k in seg.nodes]
    assert len(nodes) == len(set(nodes)) and len(col.segments) > 1


def test_segmented_ranges_equal_one_run_on_real_images(tiny_bundle: Path, shapes_data: Path) -> None:
    from rtdetr_edge.calib.stream import CalibrationBatches
    from rtdetr_edge.data.coco import CocoDataset

    bundle = Bundle(tiny_bundle)
    files = [im.path for im in CocoDataset(shapes_data).images]
    batches = list(CalibrationBatches(files, bundle.contract, 5, None))
    one = ActivationCollector(_fp32(tiny_bundle), memory_mb=0, batch_size=5)
    split = ActivationCollector(_fp32(tiny_bundle), memory_mb=0.05, batch_size=5)
    assert len(split.segments) > 1
    one.collect(batches)
    split.collect(batches)
    for algorithm in ALGORITHMS:
        assert one.ranges(algorithm) == split.ranges(algorithm), algorithm


def test_rtdetr_build_passes_the_memory_limit_on() -> None:
    from rtdetr_edge.cli.build import build_options, parser

    args = parser().parse_args(
        ["--model", "m", "--out", "o", "--precision", "int8", "--calib", "c", "--calib-memory-mb", "256"]
    )
    opts = build_options(args)
    assert opts.calibration is not None and opts.calibration.memory_mb == 256
    default = build_options(parser().parse_args(["--model", "m", "--out", "o", "--precision", "int8", "--calib", "c"]))
    assert default.calibration is not None and default.calibration.memory_mb == 1024


@pytest.mark.parametrize("value", [-1, 1.5, True, "512"])
def test_memory_option_is_validated(value: object) -> None:
    with pytest.raises(InputError, match=r"^--calib-memory-mb: expected an integer >= 0, got "):
        CalibrationOptions("data/calib", memory_mb=value)  # type: ignore[arg-type]
