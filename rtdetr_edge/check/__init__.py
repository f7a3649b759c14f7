"""Accuracy checks with Polygraphy: is an FP16 / INT8 / TensorRT build as good as fp32? (``rtdetr-check``)

    images (held-out, our preprocessing)  ->  Polygraphy Comparator.run
        reference: fp32 ONNX on ONNX Runtime (CPU)
        candidate: fp16 / int8 Q/DQ ONNX on ONNX Runtime, a TensorRT engine (TrtRunner), any .onnx
    ->  element-wise, per-output tolerances, on the pre-top-k tensors (query rows aligned)
    ->  detection level: AP against the reference's detections, IoU, score drift, label flips
    ->  optional layerwise: every tensor marked, the first diverging layers named
    ->  CheckReport (dict/JSON, readable text); Polygraphy RunResults JSON on request

Torch-free; Polygraphy is imported on first use (``pip install "rtdetr-edge[check]"``).

Modules: :mod:`.models` (bundle view, which tensors), :mod:`.data` (images, data loader),
:mod:`.compare` (runners, tolerances), :mod:`.detections`, :mod:`.layerwise`, :mod:`.report`,
:mod:`.api` (:func:`run_check`, :func:`run_checks`, :func:`check_bundle_dir`).
"""

from __future__ import annotations

from ._polygraphy import CheckError
from .api import CheckOptions, check_bundle_dir, run_check, run_checks
from .compare import DEFAULT_TOLERANCES, Tolerance
from .data import CheckDataLoader, ImageSource, resolve_images
from .detections import DEFAULT_THRESHOLDS, DetectionThresholds
from .report import CheckReport

__all__ = [
    "DEFAULT_THRESHOLDS",
    "DEFAULT_TOLERANCES",
    "CheckDataLoader",
    "CheckError",
    "CheckOptions",
    "CheckReport",
    "DetectionThresholds",
    "ImageSource",
    "Tolerance",
    "check_bundle_dir",
    "resolve_images",
    "run_check",
    "run_checks",
]
