"""``<name>_postprocess``: the detector's outputs + image size -> ``boxes``, ``scores``, ``class_ids``.

Thresholds with the repository's ``conf`` / ``max_det`` / ``clip`` parameters (rtdetr-edge's
defaults unless ``rtdetr-triton`` was told otherwise); boxes are pixels (xyxy) of the original image.
Each query keeps its best label, as the local ``Detector`` does by default (an ``all_labels``
parameter of ``true`` keeps every label, as COCO AP uses), so served and local results agree.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...postprocess import PostprocessOptions
from .. import steps
from . import ModelArgs, backend_utils, respond_each

# inputs are the detector's outputs under these names (``detector_scores``, ...): the model's own
# outputs are ``boxes``/``scores``, and a model's input and output names stay distinct
INPUT_PREFIX = "detector_"


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        margs = ModelArgs(args)
        self.contract = margs.contract()
        self.options = PostprocessOptions(
            conf=float(margs.parameter("conf", "0.3")),
            max_det=int(margs.parameter("max_det", "300")),
            clip=margs.parameter("clip", "false") == "true",
            all_labels=margs.parameter("all_labels", "false") == "true",
        )
        self.pb = backend_utils()

    def execute(self, requests: list[Any]) -> list[Any]:
        return respond_each(self.pb, requests, self._answer)

    def _answer(self, request: Any) -> Any:
        pb = self.pb
        outputs = {
            name: pb.get_input_tensor_by_name(request, INPUT_PREFIX + name).as_numpy()
            for name in self.contract.output_names
        }
        size = pb.get_input_tensor_by_name(request, "image_size").as_numpy()
        (dets,) = steps.postprocess(outputs, size, self.contract, self.options)
        return pb.InferenceResponse(
            output_tensors=[
                pb.Tensor("boxes", np.ascontiguousarray(dets.xyxy, np.float32).reshape(-1, 4)),
                pb.Tensor("scores", np.ascontiguousarray(dets.scores, np.float32)),
                pb.Tensor("class_ids", np.ascontiguousarray(dets.class_ids, np.int32)),
                pb.Tensor("image_size", np.asarray(size, np.int32).reshape(2)),
            ]
        )
