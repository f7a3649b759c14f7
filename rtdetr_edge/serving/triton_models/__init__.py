"""Triton Python-backend models (``TritonPythonModel`` classes) of a generated repository.

Each generated ``<model>/1/model.py`` re-exports one of these classes, so the code that runs in
the server is this installed package (rtdetr-edge must be importable by the Python that runs
Triton's Python backend stub: the serve environment, or ``pip install rtdetr-edge`` in the
Triton container). They import only rtdetr-edge's runtime, numpy and Triton's
``triton_python_backend_utils`` (which exists only inside the stub, so it is imported on use).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..._optional import require
from ...contract import ModelContract
from ...errors import RtdetrEdgeError


def backend_utils() -> Any:
    """Triton's ``triton_python_backend_utils`` (present only inside the Python backend stub)."""
    return require("triton_python_backend_utils", "a Triton Python-backend model (it runs inside tritonserver)")


class ModelArgs:
    """What Triton passes to ``initialize``: the model's config, its folder and its version folder."""

    def __init__(self, args: dict[str, str]) -> None:
        self.config: dict[str, Any] = json.loads(args["model_config"])
        self.folder = Path(args["model_repository"])
        self.version_folder = self.folder / str(args["model_version"])

    def contract(self) -> ModelContract:
        """The model contract ``rtdetr-triton`` wrote next to the config (``contract.json``)."""
        return ModelContract.from_json((self.folder / "contract.json").read_text(), str(self.folder))

    def parameter(self, key: str, default: str = "") -> str:
        params = self.config.get("parameters") or {}
        entry = params.get(key)
        return str(entry["string_value"]) if isinstance(entry, dict) and "string_value" in entry else default


def error_response(pb: Any, exc: BaseException) -> Any:
    """A response carrying ``exc`` as the request's error (the client sees the one-line message)."""
    return pb.InferenceResponse(output_tensors=[], error=pb.TritonError(str(exc)))


def respond_each(pb: Any, requests: list[Any], answer: Callable[[Any], Any]) -> list[Any]:
    """``answer(request)`` for each request; our errors become that request's error response only."""
    responses = []
    for request in requests:
        try:
            responses.append(answer(request))
        except RtdetrEdgeError as exc:
            responses.append(error_response(pb, exc))
    return responses
