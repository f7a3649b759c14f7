"""rtdetr-edge: RT-DETR from PyTorch to fast inference on NVIDIA edge GPUs.

The runtime needs numpy, OpenCV and one inference backend (ONNX Runtime or TensorRT); it never
imports torch. ``Detector`` is imported lazily so that ``import rtdetr_edge`` stays cheap.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .errors import (
    BundleError,
    CalibrationError,
    CheckError,
    EngineError,
    ExportError,
    InputError,
    MissingDependencyError,
    ModelSourceError,
    RtdetrEdgeError,
    VerificationError,
)

__version__ = "0.1.0"

logging.getLogger("rtdetr_edge").addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from .detections import Detections
    from .detector import Detector

__all__ = [
    "BundleError",
    "CalibrationError",
    "CheckError",
    "Detections",
    "Detector",
    "EngineError",
    "ExportError",
    "InputError",
    "MissingDependencyError",
    "ModelSourceError",
    "RtdetrEdgeError",
    "VerificationError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # Lazy: keeps `import rtdetr_edge` free of cv2/onnxruntime start-up cost until needed.
    if name == "Detector":
        from .detector import Detector

        return Detector
    if name == "Detections":
        from .detections import Detections

        return Detections
    raise AttributeError(f"module 'rtdetr_edge' has no attribute {name!r}")
