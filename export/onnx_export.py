"""PyTorch RT-DETR (or a supported relative) -> raw ONNX (``images`` -> ``logits``, ``pred_boxes``), batch dynamic.

Opset 17 by default: it is the newest opset TensorRT 8.6 (JetPack 6.0) parses, and at 17
``LayerNormalization`` is one node that TensorRT >= 8.6 maps to its normalisation layer (and
that precision tools can keep in FP32 as a unit). ``opset=16`` decomposes ``LayerNormalization``
into primitive ops, for other tools on TensorRT 8.5 (JetPack 5), which cannot parse it; rtdetr-edge's
own engine builder needs TensorRT >= 8.6 (docs/support.md).

The legacy TorchScript exporter is used on purpose: the dynamo exporter forces opset 18 and bakes
the batch size in (``batch_size = len(source_flatten)`` in ``RTDetrModel.forward``). We trace
with batch 2 so that a dimension wrongly fixed to the batch shows up in verification at other
batch sizes instead of hiding behind batch 1.
"""

from __future__ import annotations

import io
import logging
import warnings
from typing import Any

import onnx

from rtdetr_edge._optional import require
from rtdetr_edge.errors import ExportError

from .freeze import frozen_position_embeddings
from .options import DEFAULT_OPSET

log = logging.getLogger("rtdetr_edge")

MIN_OPSET, MAX_OPSET = 16, 17
RAW_OUTPUTS = ("logits", "pred_boxes")


def export_raw(
    model: Any, height: int, width: int, opset: int = DEFAULT_OPSET, trace_batch: int = 2
) -> onnx.ModelProto:
    """Trace ``model`` into an ONNX graph with input ``images`` [N,3,H,W] and raw outputs.

    Args:
        model: eval-mode model of a supported family (``export.source.FAMILIES``); RF-DETR's
            position-embedding interpolation is frozen at ``height x width`` (:mod:`.freeze`).
        height, width: the fixed input size (from the preprocessing contract).
        opset: 17 (TensorRT >= 8.6) or 16 (LayerNorm decomposed, for TensorRT 8.5 tools).
        trace_batch: batch of the tracing input.
    """
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(
            f"--opset {opset}: supported are {MIN_OPSET} (LayerNorm decomposed) and {MAX_OPSET} (TensorRT >= 8.6)"
        )
    torch: Any = require("torch", "exporting to ONNX")  # a module object: its classes are only known at runtime

    class RawOutputs(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, images: Any) -> tuple[Any, Any]:
            out = self.inner(pixel_values=images)
            return out.logits, out.pred_boxes

    wrapper = RawOutputs(model).eval()
    dummy = torch.rand(trace_batch, 3, height, width, generator=torch.Generator().manual_seed(0))
    buf = io.BytesIO()
    dyn = {"images": {0: "batch"}, "logits": {0: "batch"}, "pred_boxes": {0: "batch"}}
    with torch.no_grad(), warnings.catch_warnings(), frozen_position_embeddings(model, height, width) as frozen:
        warnings.simplefilter("ignore")  # TracerWarnings about python ints in shapes: checked by verification
        if frozen:
            log.info("position-embedding interpolation frozen at %dx%d in %d module(s)", height, width, frozen)
        try:
            torch.onnx.export(
                wrapper,
                (dummy,),
                buf,
                dynamo=False,
                opset_version=opset,
                input_names=["images"],
                output_names=list(RAW_OUTPUTS),
                dynamic_axes=dyn,
                do_constant_folding=True,
            )
        except Exception as exc:  # torch raises many kinds for unsupported ops
            raise ExportError(f"torch.onnx.export failed: {type(exc).__name__}: {exc}") from exc
    return onnx.load_from_string(buf.getvalue())
