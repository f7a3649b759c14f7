"""``<name>_preprocess``: encoded image bytes -> input tensor ``[1,3,H,W]`` + image size ``[1,2]``."""

from __future__ import annotations

from typing import Any

from ...contract import ModelContract
from ...errors import RtdetrEdgeError
from ...preprocess import Preprocessor
from .. import steps
from . import ModelArgs, backend_utils, error_response


class TritonPythonModel:
    """Decodes with :func:`rtdetr_edge.images.decode_image`, preprocesses per the model contract."""

    def initialize(self, args: dict[str, str]) -> None:
        margs = ModelArgs(args)
        contract = ModelContract.from_json((margs.folder / "contract.json").read_text(), str(margs.folder))
        self.preprocessor = Preprocessor(contract.preprocessing)
        self.pb = backend_utils()

    def execute(self, requests: list[Any]) -> list[Any]:
        pb = self.pb
        responses = []
        for request in requests:
            try:
                data = pb.get_input_tensor_by_name(request, "image").as_numpy().reshape(-1)
                if data.size != 1:
                    raise RtdetrEdgeError(f"image: expected one encoded image per request, got {data.size}")
                tensor, size = steps.preprocess(bytes(data[0]), self.preprocessor, "image")
                responses.append(
                    pb.InferenceResponse(output_tensors=[pb.Tensor("images", tensor), pb.Tensor("image_size", size)])
                )
            except RtdetrEdgeError as exc:
                responses.append(error_response(pb, exc))
        return responses
