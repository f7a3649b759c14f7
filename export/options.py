"""What the exporter makes (no torch needed to build or validate these options)."""

from __future__ import annotations

from dataclasses import dataclass

from rtdetr_edge.errors import InputError

DEFAULT_OPSET = 17
OPSETS = (16, 17)
DEFAULT_TOLERANCE = 1e-4  # max abs difference of scores / normalised boxes, ONNX Runtime vs PyTorch


@dataclass(frozen=True)
class ExportOptions:
    """How to export.

    Attributes:
        top_k: K of the in-graph top-k (300; clamped to queries x classes).
        raw_outputs: export ``logits``/``pred_boxes`` instead of the in-graph top-k.
        opset: 17 (TensorRT >= 8.6, default) or 16 (LayerNorm decomposed, for TensorRT 8.5 tools;
            rtdetr-edge's engine builder needs >= 8.6).
        verify: compare ONNX Runtime with PyTorch and fail on disagreement (default on).
        tolerance: verification tolerance (1e-4).
        revision: hub revision (branch, tag or commit).
        simplify: onnxsim + graphsurgeon passes (default on).
    """

    top_k: int = 300
    raw_outputs: bool = False
    opset: int = DEFAULT_OPSET
    verify: bool = True
    tolerance: float = DEFAULT_TOLERANCE
    revision: str | None = None
    simplify: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1:
            raise InputError(f"--top-k: expected an integer >= 1, got {self.top_k!r}")
        if self.opset not in OPSETS:
            raise InputError(f"--opset: expected one of {', '.join(map(str, OPSETS))}, got {self.opset!r}")
        if not self.tolerance > 0:
            raise InputError(f"--tolerance: expected a number > 0, got {self.tolerance!r}")
