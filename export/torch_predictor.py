"""The PyTorch model as a predictor with the Detector's ``detect_batch`` interface.

Same preprocessing (the runtime's Preprocessor) and the same postprocessing (sigmoid top-k over
queries x classes) as the exported graph, so AP differences between PyTorch and an exported
artifact measure the export, not the glue.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rtdetr_edge._optional import require
from rtdetr_edge.detections import Detections
from rtdetr_edge.postprocess import PostprocessOptions, from_raw
from rtdetr_edge.preprocess import Preprocessor

from .source import LoadedModel, load_model


class TorchPredictor:
    """Runs an RT-DETR in PyTorch (eval mode, no grad) on BGR images.

    Args:
        source: anything :func:`load_model` accepts, or a :class:`LoadedModel`.
        conf, max_det: postprocessing (defaults: keep everything, 300 per image).
        top_k: top-k over queries x classes (default 300, as the exported graph).
        threads: torch intra-op threads (default: torch's choice).
    """

    def __init__(
        self, source: Any, conf: float = 0.0, max_det: int = 300, top_k: int = 300, threads: int | None = None
    ) -> None:
        self.torch = require("torch", "running the PyTorch model")
        if threads:
            self.torch.set_num_threads(threads)
        self.loaded = source if isinstance(source, LoadedModel) else load_model(source)
        self.preprocessor = Preprocessor(self.loaded.preprocessing)
        self.options = PostprocessOptions(conf=conf, max_det=max_det)
        self.top_k = top_k
        self.class_names = self.loaded.class_names

    def raw(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits, pred_boxes) for a preprocessed ``[N,3,H,W]`` batch."""
        with self.torch.no_grad():
            out = self.loaded.model(pixel_values=self.torch.from_numpy(pixels))
        return out.logits.numpy(), out.pred_boxes.numpy()

    def detect_batch(self, bgr_images: list[np.ndarray], opts: PostprocessOptions | None = None) -> list[Detections]:
        pixels, sizes = self.preprocessor.batch(bgr_images)
        logits, boxes = self.raw(pixels)
        return from_raw(logits, boxes, sizes, self.top_k, opts or self.options, self.class_names)

    def close(self) -> None:
        pass
