"""Which engine DeepStream runs and how nvinfer builds one itself: both read the engine recipe.

* ``model-engine-file``: the recipe's engine for the DeepStream model folder
  (:func:`rtdetr_edge.engine_recipe.recipe` over its graphs, batch profile 1,N,N), which
  ``rtdetr-engine`` builds on the device (or the recipe's trtexec command, for each TensorRT line).
* ``onnx-file``: what nvinfer builds when that engine is missing. nvinfer's builder takes a
  ``network-mode`` (FP32 / INT8 / FP16 builder flags), per-layer precisions
  (``layer-device-precision``) and, for INT8, a calibration file (``int8-calib-file``), which
  DeepStream documents as required in INT8 mode ("Required only when using INT8 mode",
  NvDsInferContextInitParams::int8CalibrationFilePath, DeepStream SDK API reference); it has no
  documented strongly typed build. So its route is the recipe's weakly typed one: the fp32 graph,
  the FP16 flag with the recipe's FP32 pins as ``layer-device-precision``, and for INT8 the
  bundle's native calibration cache for that exact TensorRT version (implicit INT8, TensorRT
  8.6-10.x only). That engine is not the recipe's INT8 engine (Q/DQ), which is why
  ``model-engine-file`` comes first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..bundle import Bundle
from ..engine.trtexec import line_commands, pinned_layers
from ..engine_format import BatchProfile, version_tuple
from ..engine_recipe import EngineBuildOptions, EngineRecipe, GraphSet, bundle_graphs, recipe

# Gst-nvinfer network-mode: 0 FP32, 1 INT8, 2 FP16
NETWORK_MODE = {"fp32": 0, "int8": 1, "fp16": 2}
# (label, TensorRT version, where): the trtexec command of each line in the README
TENSORRT_LINES: tuple[tuple[str, str, str], ...] = (
    ("TensorRT 10.3", "10.3.0", "JetPack 6.1/6.2, DeepStream 7.1"),
    ("TensorRT 10.16", "10.16.1", "JetPack 7.2, DeepStream 9.2"),
    ("TensorRT 8.6", "8.6.2", "JetPack 6.0, DeepStream 7.0"),
)


@dataclass(frozen=True)
class EngineRoute:
    """``model-engine-file``: the recipe's engine and the commands that build it on the device."""

    recipe: EngineRecipe
    engine_file: str  # relative to the DeepStream folder
    rtdetr_engine: str  # the rtdetr-engine command (prints the engine's path)
    trtexec: tuple[tuple[str, str, str], ...]  # (label, where, command or why not)


@dataclass(frozen=True)
class OnnxRoute:
    """What nvinfer builds from ``onnx-file`` when the engine is missing."""

    onnx_file: str  # relative to the DeepStream folder
    network_mode: int
    layer_precisions: tuple[str, ...]  # layer-device-precision items, NAME:fp32:gpu
    int8_calib_file: str | None
    note: str


def engine_route(ds: Bundle, folder: str, precision: str, streams: int, tensorrt: str) -> EngineRoute:
    """The recipe's engine of ``precision`` for batches up to ``streams`` on ``tensorrt``."""
    graphs = bundle_graphs(ds)
    options = EngineBuildOptions(batch=BatchProfile(1, streams, streams))
    r = recipe(graphs, precision, tensorrt, options)
    engine = f"{folder}/rtdetr_{precision}_b{streams}.engine"
    cmd = f"rtdetr-engine {folder} --precision {precision} --batch 1,{streams},{streams}"
    rows = [
        (c.label, c.where, c.command if c.command is not None else f"(not buildable: {c.refused})")
        for c in line_commands(ds, precision, options, TENSORRT_LINES, folder, engine)
    ]
    return EngineRoute(r, engine, cmd, tuple(rows))


def onnx_route(ds: Bundle, folder: str, precision: str, tensorrt: str) -> OnnxRoute:
    """nvinfer's own build: the recipe's weakly typed route on the fp32 graph (module docstring)."""
    full = bundle_graphs(ds)
    fp32 = full.get("fp32")
    if fp32 is None:  # a bundle always has fp32 (Bundle refuses one without)
        raise RuntimeError(f"internal: {ds.path} has no fp32 graph")
    weak = GraphSet(full.origin, (fp32,), full.batch_bounds)
    r = recipe(weak, "fp32" if precision == "fp32" else "fp16", tensorrt, EngineBuildOptions())
    path = ds.checked_file(fp32.file, fp32.sha256, "fp32 graph")
    pins = pinned_layers(path, r.fp32_pins).precision
    # nvinfer splits the list at ';' and each item at ':' (NAME:PRECISION:DEVICE)
    layers = tuple(f"{n}:fp32:gpu" for n in pins if ";" not in n and ":" not in n)
    calib = None
    note = r.notes[0] if r.notes else ""
    if precision == "int8":
        v = ".".join(str(x) for x in version_tuple(tensorrt))
        recorded = ds.artifact("int8").get("tensorrt_caches") or {}
        caches = {".".join(str(x) for x in version_tuple(k)): str(p) for k, p in recorded.items()}
        calib = f"{folder}/{caches[v]}" if v in caches else None
        note = (
            f"implicit INT8 from the native calibration cache for TensorRT {v}"
            if calib
            else f"no calibration cache for TensorRT {v} in the bundle: nvinfer cannot build INT8 itself"
        )
    return OnnxRoute(f"{folder}/{os.path.basename(fp32.file)}", NETWORK_MODE[precision], layers, calib, note)
