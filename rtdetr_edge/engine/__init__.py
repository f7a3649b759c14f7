"""TensorRT engines: the builder, the per-bundle cache, and the log adapter for NVIDIA's Polygraphy.

What each engine is built from and how is one pure decision, :func:`rtdetr_edge.engine_recipe.recipe`
(in the core layer, so that the runtime's engine lookup follows it too). Nothing here imports
TensorRT (or onnx) at import time: :mod:`.builder` imports it on first use, as
:mod:`rtdetr_edge.backends.trt_runtime` and :mod:`rtdetr_edge.backends.trt_logging` below do.
Public entry points::

    from rtdetr_edge.engine import BundleEngines, EngineBuildOptions, build_engine, engine_for_bundle
"""

from __future__ import annotations

from ..engine_format import BatchProfile, EngineMetadata
from ..engine_recipe import EngineBuildOptions, EngineRecipe, recipe
from .cache import BundleEngines, build_engine, engine_for_bundle

__all__ = [
    "BatchProfile",
    "BundleEngines",
    "EngineBuildOptions",
    "EngineMetadata",
    "EngineRecipe",
    "build_engine",
    "engine_for_bundle",
    "recipe",
]
