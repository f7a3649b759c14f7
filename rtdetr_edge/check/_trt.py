"""The TensorRT candidate: Polygraphy's ``TrtRunner`` on an engine built our way (GPU only).

For a bundle precision the engine is built by :func:`rtdetr_edge.engine.cache.build_engine`, from
the ONNX and with the flags ``engine_for_bundle`` would use for deployment (fp16: the fp32 graph +
FP16 flag on TensorRT < 11, ``model.fp16.onnx`` on 11; int8: the Q/DQ graph, or the fp32 graph +
``calib/ranges.json`` in implicit mode), with one difference: the two pre-top-k tensors are
marked as extra outputs (Polygraphy's ``ModifyOutputs``), so they can be compared. Both feed
ops TensorRT does not fuse across (TopK, GatherElements), so the engine is otherwise the deployed
one. A ready ``.engine`` file runs as it is: only its top-k outputs exist, so only ``scores``
(order-free) is compared element-wise, besides the detection-level agreement.

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
    from ..engine.options import EngineBuildOptions

log = logging.getLogger("rtdetr_edge")


def _source_onnx(
    model: ModelSpec, bundle: Bundle, major: int, options: EngineBuildOptions
) -> tuple[Path, str | None, EngineBuildOptions]:
    """(ONNX, implicit INT8 ranges or None, options) the deployed engine of ``model`` is built from."""
    from ..engine import cache

    if not model.from_bundle:
        return model.path, None, options
    if model.label == "int8":
        # the same choice engine_for_bundle makes (the FP16-typed Q/DQ on 10.x+, the FP32-typed one on 8.x)
        onnx, _, ranges, mode = cache.int8_source(bundle, major, options.int8_mode)
        return onnx, ranges, dataclasses.replace(options, int8_mode=mode)
    if model.label == "fp16" and major >= 11:
        return bundle.onnx_path("fp16"), None, options
    return bundle.onnx_path("fp32"), None, options


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
    from ..engine_format import version_tuple

    version = tensorrt_version()
    onnx_path, ranges, options = _source_onnx(model, bundle, version_tuple(version)[0], engine_options)
    tensors = check_tensors(onnx_path)
    outputs = list(dict.fromkeys(list(tensors.values()) + list(read_onnx_facts(onnx_path).outputs)))
    onnx_loaders = polygraphy("polygraphy.backend.onnx")
    marked = workdir / f"{model.label}.marked.onnx"
    with quiet(), polygraphy_errors(f"marking outputs of {onnx_path.name}"):
        onnx_loaders.SaveOnnx(
            onnx_loaders.ModifyOutputs(onnx_loaders.OnnxFromPath(str(onnx_path)), outputs=outputs), path=str(marked)
        )()
    log.info("check: building a TensorRT %s engine from %s (TensorRT %s)", model.precision, onnx_path.name, version)
    engine = cache.build_engine(
        marked, workdir / f"{model.label}.engine", model.precision, options, ranges=ranges, contract=bundle.contract
    )
    runner = trt_backend.TrtRunner(trt_backend.EngineFromBytes(common.BytesFromPath(str(engine))), name=model.name)
    note = (
        f"TensorRT {version} {model.precision} engine built from {onnx_path.name} as for deployment, with "
        f"{', '.join(tensors)} marked as outputs"
    )
    return runner, {v: k for k, v in tensors.items()}, note
