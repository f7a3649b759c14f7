"""``<name>_preprocess``: encoded image bytes -> input tensor ``[1,3,H,W]`` + image size ``[1,2]``."""

from __future__ import annotations

from typing import Any

from ...errors import RtdetrEdgeError
from ...preprocess import Preprocessor
from .. import steps
from . import ModelArgs, backend_utils, respond_each


class TritonPythonModel:
    """Decodes with :func:`rtdetr_edge.images.decode_image`, preprocesses per the model contract."""

    def initialize(self, args: dict[str, str]) -> None:
        self.preprocessor = Preprocessor(ModelArgs(args).contract().preprocessing)
        self.pb = backend_utils()

    def execute(self, requests: list[Any]) -> list[Any]:
        return respond_each(self.pb, requests, self._answer)

    def _answer(self, request: Any) -> Any:
        pb = self.pb
        data = pb.get_input_tensor_by_name(request, "image").as_numpy().reshape(-1)
        if data.size != 1:
            raise RtdetrEdgeError(f"image: expected one encoded image per request, got {data.size}")
        tensor, size = steps.preprocess(bytes(data[0]), self.preprocessor, "image")
        return pb.InferenceResponse(output_tensors=[pb.Tensor("images", tensor), pb.Tensor("image_size", size)])
