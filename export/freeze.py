"""Freeze size-dependent computations at the export size, so the traced graph holds only supported ops.

RF-DETR's DINOv2 backbone interpolates its position embeddings to the input's patch grid at every
call, bicubically with antialiasing (``aten::_upsample_bicubic2d_aa``, which has no ONNX export and
no TensorRT layer); when tracing, transformers always takes that path to keep the graph dynamic in
H and W. Our graphs have one fixed input size (the contract's), so the interpolated embedding is a
constant: :func:`frozen_position_embeddings` computes it once, in eager PyTorch exactly as the
model would at that size, and makes the module return it while the graph is traced. Roboflow's own
RF-DETR exporter does the same (it fixes the resolution before export).

The patch lives only inside the ``with`` block; verification then compares the graph with the
untouched model, so a wrong constant fails the export like any other disagreement.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from typing import Any

from rtdetr_edge._optional import require
from rtdetr_edge.errors import ExportError


def _interpolating_embeddings(model: Any) -> list[Any]:
    """Modules that interpolate position embeddings per call (DINOv2-style ``interpolate_pos_encoding``)."""
    return [
        m
        for m in model.modules()
        if callable(getattr(m, "interpolate_pos_encoding", None)) and hasattr(m, "position_embeddings")
    ]


@contextlib.contextmanager
def frozen_position_embeddings(model: Any, height: int, width: int) -> Iterator[int]:
    """Within the block, every position-embedding interpolation of ``model`` returns its value at ``height x width``.

    Yields the number of modules frozen (0 for families without such interpolation: a no-op).
    Raises :class:`ExportError` if a frozen module is then asked for another size.
    """
    torch: Any = require("torch", "exporting to ONNX")
    modules = _interpolating_embeddings(model)
    saved = []
    try:
        for module in modules:
            patch = int(module.patch_size if isinstance(module.patch_size, int) else module.patch_size[0])
            dim = int(module.position_embeddings.shape[-1])
            tokens = (height // patch) * (width // patch) + 1  # + the [CLS] token
            probe = torch.zeros(1, tokens, dim, dtype=module.position_embeddings.dtype)
            with torch.no_grad():
                value = module.interpolate_pos_encoding(probe, height, width).detach().clone()

            def fixed(self: Any, embeddings: Any, h: int, w: int, _value: Any = value) -> Any:
                if (int(h), int(w)) != (height, width):
                    raise ExportError(
                        f"position embeddings were frozen at {height}x{width}, the model was asked for {h}x{w}"
                    )
                return _value

            saved.append((module, module.__dict__.get("interpolate_pos_encoding")))
            module.interpolate_pos_encoding = types.MethodType(fixed, module)
        yield len(modules)
    finally:
        for module, before in saved:
            if before is None:
                del module.interpolate_pos_encoding
            else:
                module.interpolate_pos_encoding = before
