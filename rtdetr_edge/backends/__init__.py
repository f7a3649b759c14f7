"""Inference backends behind one interface (:class:`~rtdetr_edge.backends.base.Backend`).

Backends are picked from a table, by name or by the model file's suffix, and imported only when
used, so a machine without TensorRT never imports it.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from ..errors import InputError
from .base import Backend, TensorSpec
from .options import OnnxRuntimeOptions, TensorRTOptions

# name -> (module, class); each backend is one file
BACKENDS: dict[str, tuple[str, str]] = {
    "onnxruntime": ("rtdetr_edge.backends.onnxruntime", "OnnxRuntimeBackend"),
    "tensorrt": ("rtdetr_edge.backends.tensorrt", "TensorRTBackend"),
}
# model file suffix -> backend name
BY_SUFFIX: dict[str, str] = {".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt", ".trt": "tensorrt"}

__all__ = [
    "BACKENDS",
    "BY_SUFFIX",
    "Backend",
    "OnnxRuntimeOptions",
    "TensorRTOptions",
    "TensorSpec",
    "backend_for",
    "open_backend",
]


def backend_for(path: str | os.PathLike[str]) -> str:
    """Backend name for a model file, by suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in BY_SUFFIX:
        raise InputError(
            f"{path}: unknown model file type {suffix!r}; expected a bundle directory, {', '.join(sorted(BY_SUFFIX))}"
        )
    return BY_SUFFIX[suffix]


def open_backend(
    name: str,
    path: str | os.PathLike[str],
    onnxruntime: OnnxRuntimeOptions | None = None,
    tensorrt: TensorRTOptions | None = None,
) -> Backend:
    """Instantiate backend ``name`` on ``path`` with that backend's options."""
    if name not in BACKENDS:
        raise InputError(f"backend {name!r}: expected one of {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name]
    options = tensorrt if name == "tensorrt" else onnxruntime
    backend: Backend = getattr(importlib.import_module(module), cls)(path, options)
    return backend
