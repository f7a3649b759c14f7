"""INT8 activation ranges: TensorRT's entropy (KL) threshold search, streaming histograms, percentiles."""

from __future__ import annotations

import numpy as np
import pytest

from rtdetr_edge import trt_cache
from rtdetr_edge.calib.entropy import FINE_BINS, StreamingHistogram, entropy_amax, kl_threshold_bin, percentile_amax


def _brute_kl_bin(h: np.ndarray, nq: int = 128) -> int:
    """The GTC-2017 / pytorch-quantization loop, written plainly, as the reference."""
    h = h.astype(np.float64)
    h[0] = h[1]
    best = (np.inf, len(h))
    for i in range(nq, len(h) + 1):
        p = h[:i].copy()
        p[i - 1] += h[i:].sum()
        level = np.digitize(np.arange(i), np.linspace(0, i, nq + 1)) - 1  # pytorch-quantization's levels
        q = np.zeros(i)
        for lv in range(nq):
            idx = (level == lv) & (h[:i] > 0)
            if idx.any():
                q[idx] = h[:i][level == lv].sum() / idx.sum()
        p, q = p / p.sum(), q / q.sum()
        with np.errstate(divide="ignore"):
            kl = float((p[p > 0] * np.log(p[p > 0] / q[p > 0])).sum())
        if kl <= best[0] + 1e-12:
            best = (min(kl, best[0]), i)
    return best[1]


@pytest.mark.parametrize("seed", range(4))
def test_vectorised_kl_search_equals_the_plain_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = [
        np.abs(rng.standard_t(3, 30000)),
        np.abs(rng.normal(size=30000)) ** 1.5,
        rng.exponential(size=4000),
        np.abs(rng.laplace(size=30000)),
    ][seed]
    hist, _ = np.histogram(x, bins=2048, range=(0, x.max()))
    assert kl_threshold_bin(hist) == _brute_kl_bin(hist)


def test_known_tensorrt_result_for_a_softmax_output() -> None:
    """A confident classifier's softmax (max exactly 1.0): TensorRT's caches hold 3c010a14."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4000, 20)).astype(np.float32)
    logits[np.arange(4000), rng.integers(0, 20, 4000)] += rng.uniform(4, 30, 4000).astype(np.float32)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    assert probs.max() == np.float32(1.0)
    h = StreamingHistogram()
    for chunk in np.array_split(probs, 7):
        h.update(chunk)
    amax = entropy_amax(h)
    assert amax == pytest.approx(2048.5 / 2048)
    assert trt_cache.scale_hex(amax) == "3c010a14"


def test_streaming_histogram_matches_numpy_and_grows_exactly() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=100_000).astype(np.float32)
    one = StreamingHistogram()
    one.update(x)
    bins, width = one.tensorrt_bins()
    ref, _ = np.histogram(np.abs(x), bins=2048, range=(0, np.abs(x).max()))
    assert width == pytest.approx(np.abs(x).max() / 2048)
    assert np.abs(bins - ref).sum() <= 2  # float edge rounding only
    grown = StreamingHistogram()
    grown.update(x[:100] * 0.01)  # tiny first batch: the range doubles many times later
    grown.update(x)
    assert grown.counts.sum() == 100_100 and grown.range >= np.abs(x).max()
    assert entropy_amax(grown) == pytest.approx(entropy_amax(one), rel=0.02)
    zeros = StreamingHistogram()
    zeros.update(np.zeros(10))
    assert entropy_amax(zeros) == 0.0 and zeros.counts[0] == 10 and zeros.counts.size == FINE_BINS


def test_sampled_histogram_keeps_max_and_thresholds() -> None:
    """Histogramming a strided sample (the default) moves the range little; the max sees all."""
    rng = np.random.default_rng(2)
    x = (rng.standard_t(4, size=(8, 32, 64, 64)) * rng.uniform(0.5, 2, (1, 32, 1, 1))).astype(np.float32)
    full, sampled = StreamingHistogram(), StreamingHistogram()
    for batch in np.array_split(x, 4):
        full.update(batch)
        sampled.update(batch, sample_cap=65536)
    assert sampled.max == full.max == np.abs(x).max()
    assert sampled.seen == x.size and 4 * 65536 >= sampled.histogrammed > 0.5 * 4 * 65536  # prime stride
    assert entropy_amax(sampled) == pytest.approx(entropy_amax(full), rel=0.05)
    assert percentile_amax(sampled) == pytest.approx(percentile_amax(full), rel=0.1)


def test_percentile_amax_of_a_uniform_ramp() -> None:
    x = np.linspace(-10, 10, 2_000_001, dtype=np.float32)
    h = StreamingHistogram()
    h.update(x)
    assert percentile_amax(h, 99.0) == pytest.approx(9.9, abs=0.01)
    assert percentile_amax(h, 100.0) == pytest.approx(10.0, abs=1e-6)
