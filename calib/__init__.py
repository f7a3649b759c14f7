"""INT8 calibration on the host, torch-free (installed as ``rtdetr_edge.calib``).

    source (COCO split, COCO json, folder) -> stratified subset + manifest
      -> batches through the runtime's preprocessing (cached on disk)
      -> ONNX Runtime activations -> streaming |x| histograms -> TensorRT entropy thresholds
      -> CalibrationRanges -> TensorRT caches (any 8.x-10.x version), Q/DQ ONNX

Modules: :mod:`.subset`, :mod:`.stream`, :mod:`.collect`, :mod:`.entropy`,
:mod:`.qdq`, :mod:`.int8`, :mod:`.plan`, :mod:`.fp16`, :mod:`.choice`, :mod:`.sensitivity`
(ranges and caches: :mod:`rtdetr_edge.ranges`, :mod:`rtdetr_edge.trt_cache`).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, get_args

from rtdetr_edge.backends.options import check_choice
from rtdetr_edge.contract import ModelContract
from rtdetr_edge.data.sources import ImageSource, open_source
from rtdetr_edge.errors import CalibrationError, InputError
from rtdetr_edge.ranges import CalibrationRanges

from .collect import DEFAULT_MEMORY_MB, DEFAULT_SAMPLES_PER_IMAGE
from .stream import DEFAULT_CACHE_MAX_BYTES, default_cache_dir
from .subset import DEFAULT_CALIB_SIZE, Subset, select_subset

log = logging.getLogger("rtdetr_edge")

__all__ = [
    "DEFAULT_CALIB_SIZE",
    "CalibrationOptions",
    "CalibrationRanges",
    "CalibrationResult",
    "calibrate",
    "check_source",
]

Algorithm = Literal["auto", "entropy2", "percentile", "max"]
Scope = Literal["int8", "all"]
MIN_USABLE_FRACTION = 0.5  # fail when fewer than half of the chosen images could be read


@dataclass
class CalibrationOptions:
    """How to calibrate.

    Attributes:
        calib: ``coco_val``, ``coco_train``, a COCO json, or a folder of images.
        size: images in the subset (default 256).
        seed: subset seed (default 0).
        batch_size: images per batch (default 8).
        coco_root: COCO 2017 root (default ``$RTDETR_COCO_ROOT`` or the user cache).
        images_dir: image folder of a COCO json (default next to it).
        algorithm: ``auto`` (default): ``entropy2`` and ``percentile`` both kept in the result's
            ``candidates`` for :func:`.choice.choose_ranges` to pick on held-out images (``ranges``
            starts as entropy2's); or one of ``entropy2`` (TensorRT's), ``percentile`` (99.999%),
            ``max``.
        cache_dir: preprocessed-batch cache (default ``~/.cache/rtdetr-edge/calib-batches``; None: no cache).
        cache_max_mb: the cache's size limit in MiB (1024): older subsets' batches are removed,
            least recently used first, once a new one is cached.
        allow_download: fetch COCO files when missing.
        holdout: held-out images (disjoint from the subset) kept for accuracy checks.
        samples_per_image: activation values histogrammed per tensor and image (0: all).
        scope: ``int8`` (the tensors INT8 layers read) or ``all`` (every float tensor).
        memory_mb: activation memory (MiB) collecting may hold at once (1024; 0: no limit): the
            graph runs in segments whose fetched activations fit (same ranges, same inference
            work; :mod:`.segments`).
    """

    calib: str
    size: int = DEFAULT_CALIB_SIZE
    seed: int = 0
    batch_size: int = 8
    coco_root: str | None = None
    images_dir: str | None = None
    algorithm: Algorithm = "auto"
    cache_dir: str | None = field(default_factory=lambda: str(default_cache_dir()))
    allow_download: bool = True
    holdout: int = 200
    samples_per_image: int = DEFAULT_SAMPLES_PER_IMAGE
    scope: Scope = "int8"
    cache_max_mb: int = DEFAULT_CACHE_MAX_BYTES >> 20
    memory_mb: int = DEFAULT_MEMORY_MB

    def __post_init__(self) -> None:
        if not isinstance(self.calib, str) or not self.calib:
            raise InputError(
                f"--calib: expected coco_val, coco_train, a COCO json or an image folder, got {self.calib!r}"
            )
        check_choice(self.algorithm, get_args(Algorithm), "--calib-algorithm")
        check_choice(self.scope, get_args(Scope), "--calib-tensors")
        for flag, value, low in (
            ("--calib-size", self.size, 1),
            ("--calib-batch", self.batch_size, 1),
            ("--calib-samples", self.samples_per_image, 0),
            ("holdout", self.holdout, 0),
            ("--calib-cache-max-mb", self.cache_max_mb, 0),
            ("--calib-memory-mb", self.memory_mb, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InputError(f"{flag}: expected an integer >= {low}, got {value!r}")


@dataclass
class CalibrationResult:
    ranges: CalibrationRanges
    subset: Subset
    source: ImageSource
    holdout_ids: list[int] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    candidates: dict[str, dict[str, float]] = field(default_factory=dict)  # algorithm -> ranges ("auto")

    def choose(self, algorithm: str) -> None:
        """Make ``algorithm``'s candidate ranges the result's ranges."""
        self.ranges.ranges = self.candidates[algorithm]
        self.ranges.algorithm = algorithm


def check_source(opts: CalibrationOptions) -> ImageSource:
    """Open ``opts.calib`` and check it has ``opts.size`` images, in seconds, before an export or
    calibration starts (a missing file, a dataset folder instead of its json, too few images)."""
    source = open_source(opts.calib, "--calib", opts.images_dir, opts.coco_root, opts.allow_download)
    if len(source) < opts.size:
        raise InputError(
            f"--calib {opts.calib}: {len(source)} images, fewer than --calib-size {opts.size}; "
            "lower --calib-size or add images"
        )
    return source


def _usable_subset(source: ImageSource, opts: CalibrationOptions) -> Subset:
    """Select the subset, fetching COCO images or skipping missing files, reselecting as needed."""
    exclude: set[int] = set()
    if source.coco_split is None:
        missing = {i for i, p in source.images if not p.is_file()}
        if missing:
            log.warning(
                "--calib %s: %d of %d listed images are missing; skipped", source.spec, len(missing), len(source.images)
            )
        exclude = missing
        return select_subset(source, opts.size, opts.seed, exclude)
    from rtdetr_edge.data.coco_splits import ensure_images

    assert source.dataset is not None
    for _ in range(3):
        subset = select_subset(source, opts.size, opts.seed, exclude)
        failed = ensure_images(source.dataset, subset.ids, source.coco_split, opts.allow_download)
        if not failed:
            return subset
        exclude |= set(failed)
    raise CalibrationError(f"--calib {source.spec}: {len(exclude)} images could not be fetched; check the connection")


def _weight_ranges(fp32_onnx: str | os.PathLike[str]) -> dict[str, float]:
    import onnx

    from .int8 import weight_ranges
    from .qdq import quantizable_nodes

    model = onnx.load(str(fp32_onnx))
    return weight_ranges(model, {n.name for n in quantizable_nodes(model)})


def calibrate(
    fp32_onnx: str | os.PathLike[str],
    contract: ModelContract,
    opts: CalibrationOptions,
    progress: bool = True,
    step: Callable[[str], None] | None = None,
) -> CalibrationResult:
    """Calibrate the fp32 ONNX on a subset of ``opts.calib``; see the module docstring.

    ``step`` is called with each stage's name (the build's progress callback): ``calibration
    subset``, ``collect activations``, ``calibration thresholds``.
    """
    announce = step or (lambda name: None)
    announce("calibration subset")
    from tqdm import tqdm

    from rtdetr_edge.bundle import sha256_file

    from .collect import ActivationCollector
    from .stream import CalibrationBatches

    t0 = time.perf_counter()
    source = open_source(opts.calib, "--calib", opts.images_dir, opts.coco_root, opts.allow_download)
    subset = _usable_subset(source, opts)
    manifest = subset.manifest()
    log.info(
        "calibration subset: %d images from %s (seed %d), coverage %s",
        len(subset.images),
        source.spec,
        opts.seed,
        subset.coverage,
    )
    batches = CalibrationBatches(
        [p for _, p in subset.images],
        contract,
        opts.batch_size,
        opts.cache_dir,
        manifest["sha256"],
        cache_max_bytes=opts.cache_max_mb << 20,
    )
    t1 = time.perf_counter()
    announce("collect activations")
    collector = ActivationCollector(
        fp32_onnx,
        samples_per_image=opts.samples_per_image,
        scope=opts.scope,
        memory_mb=opts.memory_mb,
        batch_size=opts.batch_size,
    )
    with tqdm(total=len(subset.images), desc="calibrating", unit="img", disable=not progress, file=sys.stderr) as bar:
        collector.collect(batches, bar.update)
    collector.release()
    if batches.used < max(1, int(MIN_USABLE_FRACTION * len(subset.images))):
        raise CalibrationError(
            f"--calib {source.spec}: only {batches.used} of {len(subset.images)} chosen images "
            f"could be read ({batches.skipped[:2]}); too few to calibrate"
        )
    t2 = time.perf_counter()
    announce("calibration thresholds")
    algorithms = ["entropy2", "percentile"] if opts.algorithm == "auto" else [opts.algorithm]
    weights = _weight_ranges(fp32_onnx)  # constant MatMul weights: implicit INT8 needs their range too
    candidates = {a: {**collector.ranges(a), **weights} for a in algorithms}
    amax = candidates[algorithms[0]]
    t3 = time.perf_counter()
    chosen = set(subset.ids)
    holdout = [i for i, p in source.images if i not in chosen and p.is_file()] if source.dataset is not None else []
    seconds = {
        "select": round(t1 - t0, 3),
        "collect": round(t2 - t1, 3),
        "thresholds": round(t3 - t2, 3),
        "inference": round(collector.seconds["inference"], 3),
        "histograms": round(collector.seconds["histograms"], 3),
        "cached_batches": float(batches.cached),
    }
    ranges = CalibrationRanges(
        ranges=amax,
        algorithm=algorithms[0],
        images=batches.used,
        model_sha256=sha256_file(fp32_onnx),
        manifest_sha256=manifest["sha256"],
        extra={
            "seconds": seconds,
            "batch_size": opts.batch_size,
            "samples_per_image": opts.samples_per_image,
            "scope": opts.scope,
            "memory_mb": opts.memory_mb,
            "segments": len(collector.segments),
            "aliases": len(collector.aliases),
            "skipped": batches.skipped,
        },
    )
    log.info("calibrated %d tensors on %d images in %.1f s (%s)", len(amax), batches.used, t3 - t0, seconds)
    return CalibrationResult(ranges, subset, source, holdout[: opts.holdout], seconds, batches.skipped, candidates)
