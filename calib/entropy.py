"""TensorRT-style entropy calibration: streaming |x| histograms and the KL threshold search.

TensorRT's ``EntropyCalibration2`` builds, per tensor, a 2048-bin histogram of |x| over
[0, max|x|], then for every candidate ``i`` in 128..2048 compares the distribution P (the first
``i`` bins, with everything beyond added to the last one) with Q (P merged into 128 levels and
spread back over the non-empty bins of each level), and picks the ``i`` with the smallest
KL(P||Q). The range is ``amax = (i + 0.5) * bin_width``. A softmax output (max exactly 1.0,
spread evenly) gives i = 2048 -> amax = 2048.5/2048, the ``3c010a14`` seen in TensorRT's own
caches.

Two things make this fast enough to run on a CPU next to inference:

* **One pass over the data.** The global max is unknown until the end, so each tensor keeps a
  finer histogram (``FINE_BINS``) whose range doubles (pairs of bins merge, exactly) whenever a
  batch exceeds it; at the end it is re-binned onto TensorRT's 2048 bins over [0, max]
  (exact when the range never grew, proportional splitting of fine bins otherwise).
* **A closed-form search.** Q is constant on the non-empty bins of each level, so
  KL(P||Q) = (sum_j P_j log P_j - sum_L P_L log(S_L / n_L)) / N + log(K / N), with S_L the level
  sums, n_L their non-empty bin counts, P_L the mass of P on those bins, N = sum(P) and
  K = sum(Q) before normalising; prefix sums give every term for all 1921 candidates at once
  (the 127 fixed-size levels are shared by all candidates with the same bins-per-level) instead of
  a Python loop over candidates: well under a millisecond per tensor.
"""

from __future__ import annotations

import numpy as np

NUM_BINS = 2048
NUM_QUANT_BINS = 128
FINE_BINS = 8192  # 4x TensorRT's resolution, so re-binning after range growth stays accurate


class StreamingHistogram:
    """Histogram of |x| over [0, range) that grows its range by doubling as data arrives."""

    __slots__ = ("counts", "range", "max")

    def __init__(self) -> None:
        self.counts = np.zeros(FINE_BINS, np.int64)
        self.range = 0.0
        self.max = 0.0

    def update(self, values: np.ndarray) -> None:
        """Add |values| (any shape, float) to the histogram."""
        a = np.abs(np.asarray(values, np.float32).ravel())
        if a.size == 0:
            return
        m = float(a.max())
        if not np.isfinite(m):
            a = a[np.isfinite(a)]
            if a.size == 0:
                return
            m = float(a.max())
        self.max = max(self.max, m)
        if m == 0.0:
            self.counts[0] += a.size
            return
        if self.range == 0.0:
            self.range = m
        while m > self.range:
            # double the range: bins 2k and 2k+1 become bin k (exact)
            self.counts = np.concatenate([self.counts.reshape(-1, 2).sum(1), np.zeros(FINE_BINS // 2, np.int64)])
            self.range *= 2.0
        idx = (a * (FINE_BINS / self.range)).astype(np.int64)
        np.minimum(idx, FINE_BINS - 1, out=idx)
        self.counts += np.bincount(idx, minlength=FINE_BINS)

    def tensorrt_bins(self, num_bins: int = NUM_BINS) -> tuple[np.ndarray, float]:
        """The histogram TensorRT would build: ``num_bins`` bins over [0, max]; returns (counts, width)."""
        if self.max == 0.0:
            return np.zeros(num_bins, np.float64), 0.0
        fine_width = self.range / FINE_BINS
        edges = np.arange(FINE_BINS + 1) * fine_width
        target = np.linspace(0.0, self.max, num_bins + 1)
        # mass of each fine bin spread uniformly over its extent, then integrated per target bin
        cum = np.concatenate([[0.0], np.cumsum(self.counts, dtype=np.float64)])
        at = np.interp(target, edges, cum)
        at[-1] = cum[-1]  # everything up to max belongs to the last bin (the max itself included)
        return np.diff(at), self.max / num_bins


def kl_threshold_bin(hist: np.ndarray, num_quant_bins: int = NUM_QUANT_BINS, start: int | None = None) -> int:
    """The candidate ``i`` (number of kept bins) minimising KL(P||Q), TensorRT-style.

    P is ``hist[:i]`` with the outliers ``hist[i:]`` added to its last bin. Q is ``hist[:i]``
    *without* the outliers, merged into ``num_quant_bins`` levels of ``i // num_quant_bins``
    bins (the last level takes the remainder) and spread evenly back over each level's
    non-empty bins. Both are normalised. This is the algorithm of NVIDIA's "8-bit Inference with
    TensorRT" (GTC 2017) as implemented by MXNet and pytorch-quantization; a candidate whose last
    bin is empty while outliers exist has infinite divergence (Q = 0 where P > 0).

    Before the search the first bin takes the count of the second, as NVIDIA's
    pytorch-quantization does: bin 0 is dominated by exact zeros (ReLU) and underflowed values
    (softmax), and a spike there would otherwise make every merged level look lossy and push the
    range down to 128 bins (for a softmax output that would clip every confident probability).

    Args:
        hist: counts of the ``len(hist)`` bins of |x| over [0, max] (non-negative).
        num_quant_bins: INT8 levels on one side (128).
        start: first candidate (default ``num_quant_bins``).

    Returns:
        ``i`` in [start, len(hist)]; ties go to the largest ``i`` (the wider range).
    """
    h = np.array(hist, np.float64)
    if h.size > 1:
        h[0] = h[1]
    nb = h.size
    start = num_quant_bins if start is None else start
    total = h.sum()
    if total <= 0 or nb <= start:
        return nb
    cands = np.arange(start, nb + 1)  # i: bins [0, i) kept
    s = np.concatenate([[0.0], np.cumsum(h)])  # s[k] = sum h[:k]
    z = np.concatenate([[0], np.cumsum(h > 0)])  # non-empty bin counts
    hlogh = np.where(h > 0, h * np.log(np.where(h > 0, h, 1.0)), 0.0)
    c = np.concatenate([[0.0], np.cumsum(hlogh)])
    outliers = total - s[cands]
    tail = h[cands - 1] + outliers  # P[i-1]
    # sum_j P_j log P_j
    a = c[cands - 1] + np.where(tail > 0, tail * np.log(np.where(tail > 0, tail, 1.0)), 0.0)

    # Levels 0..L-2 depend only on m = i // L (bins per level), not on i itself: compute their
    # sum of P_L log(S_L / n_L) once per m; only the last level (which takes the remainder and
    # the outliers) varies with i.
    merged = cands // num_quant_bins
    full = np.zeros(merged.max() + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        for m in np.unique(merged):
            lo = m * np.arange(num_quant_bins - 1)
            ls, nz = s[lo + m] - s[lo], (z[lo + m] - z[lo]).astype(np.float64)
            full[m] = np.where(ls > 0, ls * np.log(ls / np.maximum(nz, 1.0)), 0.0).sum()
        start_last = merged * (num_quant_bins - 1)
        last_sum = s[cands] - s[start_last]  # Q's mass in the last level (no outliers)
        last_nz = (z[cands] - z[start_last]).astype(np.float64)
        last_p = last_sum + np.where(h[cands - 1] > 0, outliers, 0.0)  # P's mass on those bins
        last_term = np.where(last_sum > 0, last_p * np.log(last_sum / np.maximum(last_nz, 1.0)), 0.0)
        kl = (a - full[merged] - last_term) / total + np.log(s[cands] / total)
    kl = np.where((h[cands - 1] == 0) & (outliers > 0), np.inf, kl)
    return int(cands[len(kl) - 1 - int(np.argmin(kl[::-1]))])


def entropy_amax(histogram: StreamingHistogram) -> float:
    """TensorRT EntropyCalibration2 range for one tensor's histogram (0.0 for all-zero data)."""
    bins, width = histogram.tensorrt_bins()
    if width == 0.0:
        return 0.0
    i = kl_threshold_bin(bins)
    return (i + 0.5) * width
