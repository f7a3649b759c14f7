"""What the Python-backend models compute, without Triton: bytes -> tensors -> detections.

The three models of a generated repository (``*_preprocess``, the Python variant of
``*_detector``, ``*_postprocess``) are thin wrappers over these functions, so the server computes
exactly what :class:`~rtdetr_edge.Detector` computes: the same decoding
(:func:`rtdetr_edge.images.decode_image`), :class:`~rtdetr_edge.preprocess.Preprocessor`,
backend and :mod:`rtdetr_edge.postprocess`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .. import images as image_io
from ..contract import OUTPUT_RAW, ModelContract
from ..detections import Detections
from ..detector import Detector
from ..errors import InputError
from ..postprocess import PostprocessOptions, from_raw, from_topk
from ..preprocess import Preprocessor


def preprocess(data: bytes, preprocessor: Preprocessor, name: str = "image") -> tuple[np.ndarray, np.ndarray]:
    """Encoded image bytes -> (input tensor float32 ``[1,3,H,W]``, image size int32 ``[1,2]`` (w, h))."""
    image = image_io.decode_image(data, name)
    tensor, sizes = preprocessor.batch([image])
    return tensor, np.asarray(sizes, np.int32).reshape(1, 2)


class TensorStep:
    """The detector step on preprocessed tensors, through a :class:`~rtdetr_edge.Detector`'s backend.

    The Detector resolves the model (bundle or ``.onnx``; TensorRT where usable, else ONNX Runtime),
    checks it against its contract and knows its batch range; this runs its backend on tensors that
    were preprocessed elsewhere (the preprocess model), in chunks of at most ``max_batch``.

    Args:
        detector: an open Detector (closed by :meth:`close`).
    """

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.output_names = detector.contract.output_names

    @classmethod
    def open(
        cls, model: str | os.PathLike[str], threads: int | None = None, max_batch: int | None = None
    ) -> TensorStep:
        from ..backends.options import OnnxRuntimeOptions

        return cls(Detector(model, onnxruntime=OnnxRuntimeOptions(threads=threads), max_batch=max_batch))

    def __call__(self, tensors: np.ndarray) -> dict[str, np.ndarray]:
        """``[N,3,H,W]`` float32 -> the model's outputs (``[N,...]`` each), copied out of the backend."""
        det = self.detector
        shape = det.preprocessor.input_shape(1)[1:]
        if tensors.ndim != 4 or tuple(tensors.shape[1:]) != tuple(shape):
            raise InputError(f"images: expected float32 [N,{','.join(map(str, shape))}], got {list(tensors.shape)}")
        # Triton runs one execute() at a time per model instance (each instance is its own process),
        # so the backend's buffers need no lock here
        chunks: list[dict[str, np.ndarray]] = []
        for start in range(0, len(tensors), det.max_batch):
            part = tensors[start : start + det.max_batch]
            n = len(part)
            run_n = max(n, det.min_batch)  # static-batch engines: pad with copies of the last image
            buf = det.backend.input_buffer(run_n)
            buf[:n] = part
            buf[n:run_n] = part[n - 1]
            out = det.backend.infer(run_n)
            chunks.append({k: np.array(out[k][:n]) for k in self.output_names})
        return {k: np.concatenate([c[k] for c in chunks]) for k in self.output_names}

    def close(self) -> None:
        self.detector.close()


def postprocess(
    outputs: dict[str, np.ndarray],
    image_sizes: np.ndarray,
    contract: ModelContract,
    options: PostprocessOptions,
) -> list[Detections]:
    """The model's outputs ``[N,...]`` and image sizes ``[N,2]`` (w, h) -> Detections per image."""
    sizes: Sequence[tuple[int, int]] = [(int(w), int(h)) for w, h in np.asarray(image_sizes).reshape(-1, 2)]
    names = contract.output_names
    if contract.output_kind == OUTPUT_RAW:
        return from_raw(outputs[names[0]], outputs[names[1]], sizes, contract.top_k, options, contract.class_names)
    return from_topk(outputs[names[0]], outputs[names[1]], outputs[names[2]], sizes, options, contract.class_names)
