"""The verdict's statistics: COCO AP with resampling, bootstrap intervals, quantile gates, fp32-noise limits."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rtdetr_edge.check.compare import OutputStats, TensorComparison, Tolerance
from rtdetr_edge.check.detections import DEFAULT_THRESHOLDS, agreement
from rtdetr_edge.check.noise import Fp32Noise
from rtdetr_edge.check.verdict import (
    ImageAP,
    Interval,
    bootstrap,
    image_quantile,
    noise_feeds,
    noise_limit,
    ratio_of_sums,
)
from rtdetr_edge.detections import Detections


def _scenes(n: int, seed: int) -> tuple[list[Any], list[Any], list[Any], list[Any], list[Any]]:
    """Random ground truth (3 classes) and detections near it, with misses, extras and label noise."""
    rng = np.random.default_rng(seed)
    gtb: list[Any] = []
    gtl: list[Any] = []
    dtb: list[Any] = []
    dts: list[Any] = []
    dtl: list[Any] = []
    for _ in range(n):
        k, m = int(rng.integers(0, 6)), int(rng.integers(0, 8))
        xy = rng.uniform(0, 200, (k, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(5, 60, (k, 2))], 1)
        labels = rng.integers(0, 3, k)
        src = np.concatenate([boxes, rng.uniform(0, 200, (m, 4))])
        det = src + rng.normal(0, 4, src.shape)
        det[:, 2:] = np.maximum(det[:, 2:], det[:, :2] + 1)
        det_labels = np.concatenate([labels, rng.integers(0, 3, m)])
        flip = rng.random(det_labels.size) < 0.1
        det_labels[flip] = rng.integers(0, 3, int(flip.sum()))
        gtb.append(boxes)
        gtl.append(labels)
        dtb.append(det)
        dts.append(rng.random(det.shape[0]))
        dtl.append(det_labels)
    return gtb, gtl, dtb, dts, dtl


def test_image_ap_is_faster_coco_evals_ap_and_a_resample_counts_repeated_images(tmp_path: Path) -> None:
    pytest.importorskip("faster_coco_eval")
    from rtdetr_edge.data.coco import CocoDataset
    from rtdetr_edge.evaluate.coco_map import ImagePrediction, coco_map

    n = 60
    gtb, gtl, dtb, dts, dtl = _scenes(n, 1)
    images = [{"id": i + 1, "file_name": f"{i}.jpg", "width": 300, "height": 300} for i in range(n)]
    anns = [
        {
            "id": len(images) * 100 + 10 * i + j,
            "image_id": i + 1,
            "category_id": int(lab) + 1,
            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
            "area": float((b[2] - b[0]) * (b[3] - b[1])),
            "iscrowd": 0,
        }
        for i in range(n)
        for j, (b, lab) in enumerate(zip(gtb[i], gtl[i]))
    ]
    cats = [{"id": c + 1, "name": f"c{c}"} for c in range(3)]
    (tmp_path / "gt.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    preds = [ImagePrediction(i + 1, dtb[i], dts[i], dtl[i]) for i in range(n)]
    per_class: dict[str, float] = {}
    expected = coco_map(
        CocoDataset(tmp_path / "gt.json", tmp_path), preds, ["c0", "c1", "c2"], list(range(1, n + 1)), None, per_class
    )
    # COCO's AP is the mean of the per-category APs (the report's per-class chart reads those)
    assert sorted(per_class) == ["c0", "c1", "c2"] and len(set(per_class.values())) == 3
    assert np.mean(list(per_class.values())) == pytest.approx(expected["AP"], abs=1e-9)
    ap = ImageAP(gtb, gtl, dtb, dts, dtl)
    assert 0.05 < ap.ap() < 0.5
    assert ap.ap() == pytest.approx(expected["AP"], abs=1e-12)
    idx = np.random.default_rng(5).integers(0, n, n)
    copies = [[column[i] for i in idx] for column in (gtb, gtl, dtb, dts, dtl)]
    assert ap.ap(idx) == pytest.approx(ImageAP(copies[0], copies[1], copies[2], copies[3], copies[4]).ap(), abs=1e-12)


def test_bootstrap_interval_of_an_identical_candidate_is_exactly_1_and_a_shift_is_detected() -> None:
    gtb, gtl, dtb, dts, dtl = _scenes(80, 2)
    reference = ImageAP(gtb, gtl, dtb, dts, dtl)
    same = ImageAP(gtb, gtl, dtb, dts, dtl)

    def ratio(candidate: ImageAP) -> Interval:
        return bootstrap(lambda idx: candidate.ap(idx) / reference.ap(idx), 80)

    iv = ratio(same)
    assert iv.value == iv.low == iv.high == 1.0
    shifted = ImageAP(gtb, gtl, [d + 3.0 for d in dtb], dts, dtl)  # every box 3 px off: AP drops
    iv = ratio(shifted)
    assert iv.low <= iv.value <= iv.high < 0.97
    assert bootstrap(lambda idx: 1.0, 5, resamples=0).high == 1.0
    again = ratio(shifted)
    assert (again.low, again.high) == (iv.low, iv.high)  # seeded: a verdict is reproducible


def test_ratio_of_sums_interval_covers_the_rate_and_narrows_with_more_images() -> None:
    rng = np.random.default_rng(3)
    widths = []
    for n in (30, 300):
        dets = rng.integers(5, 15, n)
        flips = rng.binomial(dets, 0.02)
        iv = bootstrap(ratio_of_sums(flips, dets), n)
        assert iv.low <= flips.sum() / dets.sum() <= iv.high
        widths.append(iv.high - iv.low)
    assert widths[1] < widths[0] / 2


def _stats(per_image: list[float], atol: float) -> OutputStats:
    return OutputStats("post/probs", Tolerance(atol), max_abs=max(per_image), per_image=per_image)


def test_quantile_gate_passes_one_outlier_image_and_fails_many() -> None:
    good = [0.05] * 99
    assert _stats([*good, 0.9], 0.1).passed  # one image where a near-tied query moved
    assert image_quantile([*good, 0.9]) == pytest.approx(0.05)
    assert not _stats([0.05] * 90 + [0.9] * 10, 0.1).passed  # a tenth of the images: a real defect
    assert not _stats([0.2] * 100, 0.1).passed
    assert image_quantile([]) == 0.0


def test_tolerance_is_the_floor_or_a_multiple_of_fp32s_noise() -> None:
    assert noise_limit(0.1, 0.05, 8.0) == pytest.approx(0.4)
    assert noise_limit(0.1, 0.005, 8.0) == 0.1  # fp32 barely moves: the floor
    assert noise_limit(0.1, 0.05, 0.0) == 0.1  # fp16/fp32: fixed gates
    assert noise_limit(0.1, None, 8.0) == 0.1
    noise_t = TensorComparison(
        outputs={
            "post/probs": OutputStats("post/probs", Tolerance(0.1), per_image=[0.04] * 20, compared=20),
            "pred_boxes": OutputStats("pred_boxes", Tolerance(0.02), per_image=[], compared=0),
        }
    )
    noise = Fp32Noise(noise_t, agreement([], [], [], DEFAULT_THRESHOLDS["int8"]))
    floors = {"post/probs": Tolerance(0.1), "pred_boxes": Tolerance(0.02, 0.5)}
    tol = noise.tolerances(floors, 8.0)
    assert tol["post/probs"].atol == pytest.approx(0.32) and tol["pred_boxes"] == floors["pred_boxes"]
    assert noise.tolerances(floors, 8.0, {"post/probs"})["post/probs"].atol == 0.1  # --atol stays as given
    feeds = noise_feeds([OrderedDict(x=np.zeros((1, 3, 4, 4), np.float32))])
    assert feeds[0]["x"].dtype == np.float32 and 0 < np.abs(feeds[0]["x"]).max() <= 1 / 255 + 1e-7


def _dets(boxes: np.ndarray, labels: list[int], scores: float = 0.9) -> Detections:
    return Detections(boxes.astype(np.float32), np.full(len(labels), scores, np.float32), np.array(labels), ("a", "b"))


def test_label_flips_on_one_image_pass_and_on_many_fail_and_fp32_noise_raises_the_limit() -> None:
    box = np.array([[10, 10, 50, 50], [60, 60, 90, 90]], np.float32)
    reference = [_dets(box, [0, 1]) for _ in range(100)]
    sizes = [(100, 100)] * 100
    one = [*reference[:99], _dets(box, [1, 0])]  # 2 flips of 200 detections, on a single image
    d = agreement(reference, one, sizes, DEFAULT_THRESHOLDS["int8"])
    assert d.rate(d.label_flips) == 0.01 and d.intervals["label flip rate"].low == 0.0 and d.passed, d.failures
    many = [_dets(box, [1, 0]) if i % 10 == 0 else r for i, r in enumerate(reference)]  # 20 of 200
    d = agreement(reference, many, sizes, DEFAULT_THRESHOLDS["int8"])
    assert not d.passed and any(f.startswith("label flip rate 0.1 ") for f in d.failures), d.failures
    shaky = agreement(
        reference,
        [_dets(box, [1, 0]) if i % 20 == 0 else r for i, r in enumerate(reference)],
        sizes,
        DEFAULT_THRESHOLDS["int8"],
    )
    loose = agreement(reference, many, sizes, DEFAULT_THRESHOLDS["int8"], noise=shaky, noise_factor=4.0)
    assert loose.limits["label flip rate"] == pytest.approx(0.2) and loose.noise["label flip rate"] == 0.05
    assert not any(f.startswith("label flip rate") for f in loose.failures), loose.failures


def test_an_fp32_candidate_is_judged_on_point_values_one_flipped_image_fails() -> None:
    from rtdetr_edge.check.verdict import RESAMPLES_BY_PRECISION

    box = np.array([[10, 10, 50, 50], [60, 60, 90, 90]], np.float32)
    reference = [_dets(box, [0, 1]) for _ in range(100)]
    one = [*reference[:99], _dets(box, [1, 0])]
    fp32 = RESAMPLES_BY_PRECISION["fp32"]
    d = agreement(reference, one, [(100, 100)] * 100, DEFAULT_THRESHOLDS["fp32"], resamples=fp32)
    assert all(iv.low == iv.value == iv.high for iv in d.intervals.values())  # no resampling: point values
    assert not d.passed and any(f.startswith("label flip rate 0.01") for f in d.failures), d.failures


def test_the_gate_quantile_decides_whether_a_few_bad_images_fail() -> None:
    from rtdetr_edge.check.verdict import GATE_QUANTILE

    per_image = [0.0] * 96 + [10.0] * 4  # four images far beyond the tolerance
    p95 = OutputStats("post/probs", Tolerance(1e-4), per_image=per_image, q=GATE_QUANTILE["int8"])
    worst = OutputStats("post/probs", Tolerance(1e-4), per_image=per_image, q=GATE_QUANTILE["fp32"])
    assert p95.passed and p95.statistic == "p95"
    assert not worst.passed and worst.statistic == "max" and worst.quantile == 10.0
