"""``<name>_detector`` (Python variant): the model's tensors through :class:`~rtdetr_edge.Detector`.

Used where the server has no TensorRT or ONNX Runtime backend (the ``nvidia-pytriton`` wheel's
server has only the Python backend): Triton's dynamic batcher hands ``execute`` several requests
at once, which run as one batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import RtdetrEdgeError
from .. import steps
from . import ModelArgs, backend_utils, error_response


class TritonPythonModel:
    """Runs ``1/model.onnx`` (or the file named by the ``model_file`` parameter)."""

    def initialize(self, args: dict[str, str]) -> None:
        margs = ModelArgs(args)
        threads = int(margs.parameter("threads", "0")) or None
        max_batch = int(margs.config.get("max_batch_size") or 0) or None
        model = margs.version_folder / margs.parameter("model_file", "model.onnx")
        self.step = steps.TensorStep.open(model, threads=threads, max_batch=max_batch)
        self.input_name = str(margs.config["input"][0]["name"])  # the graph's own input name
        self.pb = backend_utils()

    def execute(self, requests: list[Any]) -> list[Any]:
        pb = self.pb
        inputs = [pb.get_input_tensor_by_name(r, self.input_name).as_numpy() for r in requests]
        try:
            outputs = self.step(np.concatenate(inputs) if len(inputs) > 1 else inputs[0])
        except RtdetrEdgeError as exc:
            return [error_response(pb, exc) for _ in requests]
        responses, start = [], 0
        for x in inputs:
            stop = start + len(x)
            tensors = [
                pb.Tensor(name, np.ascontiguousarray(outputs[name][start:stop])) for name in self.step.output_names
            ]
            responses.append(pb.InferenceResponse(output_tensors=tensors))
            start = stop
        return responses

    def finalize(self) -> None:
        self.step.close()
