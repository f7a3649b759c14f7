"""TensorRT engines: options, build plan, builder, sidecar metadata and the per-bundle cache.

Nothing here imports TensorRT (or onnx) at import time. Four modules call TensorRT, each
importing it on first use: :mod:`.builder` and :mod:`.calibrators` here, and
:mod:`rtdetr_edge.backends.trt_runtime` and :mod:`rtdetr_edge.backends.trt_logging` below. Public entry points::

    from rtdetr_edge.engine import BundleEngines, EngineBuildOptions, build_engine, engine_for_bundle
"""

from __future__ import annotations

from ..engine_format import BatchProfile, EngineMetadata
from .cache import BundleEngines, build_engine, engine_for_bundle
from .options import EngineBuildOptions

__all__ = ["BatchProfile", "BundleEngines", "EngineBuildOptions", "EngineMetadata", "build_engine", "engine_for_bundle"]
