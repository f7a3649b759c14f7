"""fp32 against itself under tiny input noise: the scale every INT8 limit is measured against.

The reference runs a second time on the check's images with uniform noise of +-1/255 added to
the preprocessed input (:func:`rtdetr_edge.check.verdict.noise_feeds`) and is compared with its
clean run exactly as an INT8 candidate is (INT8's alignment gates and unmatched-row limit; the
detection-level agreement, with the ground-truth AP ratio on annotated data). Nobody would call
that change a defect, so a candidate's limit is ``max(floor, factor x this)`` (:class:`Fp32Noise`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..contract import ModelContract
from ..detections import Detections
from ._polygraphy import polygraphy
from .compare import TensorComparison, Tolerance, canonical, compare_tensors, onnxrt_runner, run, tolerances_for
from .detections import DEFAULT_THRESHOLDS, DetectionAgreement, GroundTruth, agreement, detections_from_outputs
from .models import ModelSpec
from .queries import DEFAULT_MAX_UNMATCHED
from .verdict import NOISE_AMPLITUDE, QUANTILE, noise_feeds, noise_limit

log = logging.getLogger("rtdetr_edge")


@dataclass
class Fp32Noise:
    """How far fp32 moves under input noise: element-wise (per output) and at detection level."""

    tensors: TensorComparison
    detections: DetectionAgreement
    amplitude: float = NOISE_AMPLITUDE

    def tolerances(
        self, floors: Mapping[str, Tolerance], factor: float, fixed: Set[str] = frozenset()
    ) -> dict[str, Tolerance]:
        """Per output ``atol = max(floor, factor x fp32's p95 of per-image max |d|)``; outputs in ``fixed`` keep theirs."""
        out = {}
        for name, tol in floors.items():
            measured = self.tensors.outputs.get(name)
            if name in fixed or measured is None or not measured.compared:
                out[name] = tol
            else:
                out[name] = Tolerance(noise_limit(tol.atol, measured.quantile, factor), tol.rtol)
        return out

    def annotate(
        self, tensors: TensorComparison, floors: Mapping[str, Tolerance], factor: float, fixed: Set[str] = frozenset()
    ) -> None:
        """Record fp32's noise and the floor on each output of ``tensors`` whose tolerance they set."""
        if factor <= 0:
            return
        for name, stats in tensors.outputs.items():
            measured = self.tensors.outputs.get(name)
            if name not in fixed and measured is not None and measured.compared > 0 and name in floors:
                stats.noise, stats.floor, stats.noise_factor = measured.quantile, floors[name].atol, factor

    def to_dict(self) -> dict[str, Any]:
        return {
            "amplitude": self.amplitude,
            "quantile": QUANTILE,
            "tensors": {n: o.quantile for n, o in self.tensors.outputs.items() if o.compared},
            "detections": {name: value for name, value, _, _ in self.detections.values() if value is not None},
        }


def measure_fp32_noise(
    reference: ModelSpec,
    io: tuple[list[str], dict[str, str]],
    feeds: Sequence[OrderedDict[str, np.ndarray]],
    results: Any,
    ref_dets: Sequence[Detections],
    sizes: Sequence[tuple[int, int]],
    contract: ModelContract,
    truth: GroundTruth | None,
    conf: float,
) -> Fp32Noise:
    """Run ``reference`` on noisy copies of ``feeds`` and compare with its clean ``results`` as INT8 is.

    Args:
        io: (tensors to mark, tensor -> canonical name) of the reference.
        results: canonical ``RunResults`` holding the reference's clean run.
        ref_dets: the reference's detections of the clean run.
    """
    outputs, renames = io
    noisy = dataclasses.replace(reference, role="reference+noise")
    log.info("check: running %s on %d images with input noise +-%.4g", noisy.name, len(feeds), NOISE_AMPLITUDE)
    noisy_run = canonical(run([onnxrt_runner(noisy, outputs)], noise_feeds(feeds), noisy.name), {noisy.name: renames})
    both = polygraphy("polygraphy.comparator").RunResults()
    both.append((reference.name, list(results[reference.name])))
    both.append((noisy.name, list(noisy_run[noisy.name])))
    tensors = compare_tensors(
        both, reference.name, noisy.name, tolerances_for("int8"), DEFAULT_MAX_UNMATCHED["int8"], conf
    )
    dets = detections_from_outputs(list(noisy_run[noisy.name]), sizes, contract)
    detections = agreement(ref_dets, dets, sizes, DEFAULT_THRESHOLDS["int8"], conf, ground_truth=truth, resamples=0)
    return Fp32Noise(tensors, detections)
