"""The TensorRT candidate: Polygraphy's ``TrtRunner`` on the engine the recipe makes (GPU only).

A bundle precision's engine is built as :func:`rtdetr_edge.engine_recipe.recipe` says for the running
TensorRT, exactly as ``rtdetr-engine`` deploys it (same source graph, typing, flags, FP32 pins, TF32),
with one difference: the two pre-top-k tensors are marked as extra outputs (Polygraphy's
``ModifyOutputs``) on a copy of the source graph, so they can be compared. Both feed ops TensorRT
does not fuse across (TopK, GatherElements), so the engine is otherwise the deployed one. A ready
``.engine`` file runs as it is: only its top-k outputs exist, so only ``scores`` (order-free) is
compared element-wise, besides the detection-level agreement.

Untested in CI (no TensorRT there); its test is marked ``gpu``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..bundle import Bundle
from ..onnx_facts import read_onnx_facts
from ._polygraphy import polygraphy, polygraphy_errors, quiet
from .models import ModelSpec, check_tensors

if TYPE_CHECKING:
    from ..engine_recipe import EngineBuildOptions, EngineRecipe

log = logging.getLogger("rtdetr_edge")


def deployed_recipe(
    model: ModelSpec, bundle: Bundle, options: EngineBuildOptions, tensorrt_version: str
) -> EngineRecipe:
    """The recipe ``rtdetr-engine`` follows for ``model`` (a bundle precision, or a lone ONNX)."""
    from ..engine import cache

    if model.from_bundle:
        r = cache.bundle_recipe(bundle, model.precision, options, tensorrt_version)
        cache.checked_source(bundle, r)
        return r
    return cache.onnx_recipe(model.path, model.precision, options, tensorrt_version, bundle.contract)


def trt_runner(
    model: ModelSpec, bundle: Bundle, workdir: Path, engine_options: EngineBuildOptions
) -> tuple[Any, dict[str, str], str]:
    """(Polygraphy TrtRunner, tensor -> canonical renames, a note for the report) for ``model``."""
    common = polygraphy("polygraphy.backend.common")
    trt_backend = polygraphy("polygraphy.backend.trt")
    if model.kind == "engine":
        runner = trt_backend.TrtRunner(
            trt_backend.EngineFromBytes(common.BytesFromPath(str(model.path))), name=model.name
        )
        return runner, {}, f"{model.path.name} runs as built: only its top-k outputs can be compared"
    from ..backends.trt_logging import tensorrt_version
    from ..engine import cache

    version = tensorrt_version()
    r = deployed_recipe(model, bundle, engine_options, version)
    onnx_path = r.source.path
    tensors = check_tensors(onnx_path)
    outputs = list(dict.fromkeys(list(tensors.values()) + list(read_onnx_facts(onnx_path).outputs)))
    onnx_loaders = polygraphy("polygraphy.backend.onnx")
    marked = workdir / f"{model.label}.marked.onnx"
    with quiet(), polygraphy_errors(f"marking outputs of {onnx_path.name}"):
        onnx_loaders.SaveOnnx(
            onnx_loaders.ModifyOutputs(onnx_loaders.OnnxFromPath(str(onnx_path)), outputs=outputs), path=str(marked)
        )()
    source = dataclasses.replace(r.source, file=str(marked), path=marked, sha256="")
    log.info("check: building a TensorRT %s engine from %s (TensorRT %s)", model.precision, onnx_path.name, version)
    engine = cache.build_from_recipe(
        dataclasses.replace(r, source=source),
        workdir / f"{model.label}.engine",
        contract_json=bundle.contract.to_json(),
    )
    runner = trt_backend.TrtRunner(trt_backend.EngineFromBytes(common.BytesFromPath(str(engine))), name=model.name)
    note = (
        f"TensorRT {version} {model.precision} engine built as the recipe deploys it ({'; '.join(r.notes)}) from "
        f"{onnx_path.name}, with {', '.join(tensors)} marked as outputs"
    )
    return runner, {v: k for k, v in tensors.items()}, note
