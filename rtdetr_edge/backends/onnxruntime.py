"""ONNX Runtime backend: CPU anywhere, CUDA or TensorRT execution providers where installed."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..errors import BundleError, InputError
from .base import Backend, TensorSpec
from .options import OnnxRuntimeOptions

log = logging.getLogger("rtdetr_edge")

# Best first: ONNX Runtime picks the first provider that can run each node.
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")

_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
}


def default_providers(available: list[str]) -> list[str]:
    """The preferred providers that this onnxruntime build has, best first."""
    chosen = [p for p in PREFERRED_PROVIDERS if p in available]
    return chosen or ["CPUExecutionProvider"]


class OnnxRuntimeBackend(Backend):
    """Runs an ONNX file with ONNX Runtime.

    Args:
        path: the ``.onnx`` file.
        options: :class:`~rtdetr_edge.backends.options.OnnxRuntimeOptions` (providers, threads,
            graph optimisation level).
    """

    name = "onnxruntime"

    def __init__(self, path: str | os.PathLike[str], options: OnnxRuntimeOptions | None = None) -> None:
        opt = options or OnnxRuntimeOptions()
        ort = require("onnxruntime", "running ONNX models")
        self.path = Path(path)
        if not self.path.is_file():
            raise BundleError(f"{self.path}: no such ONNX file")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        levels = {
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        }
        opts.graph_optimization_level = levels[opt.optimization]
        if opt.threads:
            opts.intra_op_num_threads = int(opt.threads)
        available = ort.get_available_providers()
        wanted = list(opt.providers) if opt.providers else default_providers(available)
        unknown = [p for p in wanted if p not in available]
        if unknown:
            raise InputError(f"providers {unknown} are not in this onnxruntime build (available: {available})")
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=wanted)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise BundleError(f"{self.path}: ONNX Runtime cannot load it: {exc}") from exc
        self._inputs = [
            TensorSpec(
                i.name,
                tuple(d if isinstance(d, int) else -1 for d in i.shape),
                np.dtype(_ORT_DTYPES.get(i.type, np.float32)),
            )
            for i in self.session.get_inputs()
        ]
        self._outputs = [
            TensorSpec(
                o.name,
                tuple(d if isinstance(d, int) else -1 for d in o.shape),
                np.dtype(_ORT_DTYPES.get(o.type, np.float32)),
            )
            for o in self.session.get_outputs()
        ]
        self._buffer: np.ndarray | None = None
        self._output_names = [o.name for o in self._outputs]
        log.debug("onnxruntime %s on %s", self.path.name, self.session.get_providers())

    @property
    def inputs(self) -> list[TensorSpec]:
        return list(self._inputs)

    @property
    def outputs(self) -> list[TensorSpec]:
        return list(self._outputs)

    @property
    def batch_range(self) -> tuple[int, int]:
        n = self._inputs[0].shape[0]
        return (n, n) if n > 0 else (1, 0)

    def input_buffer(self, batch: int) -> np.ndarray:
        spec = self._inputs[0]
        if self._buffer is None or self._buffer.shape[0] < batch:
            self._buffer = np.empty((batch, *spec.shape[1:]), spec.dtype)
        return self._buffer[:batch]

    def infer(self, batch: int) -> dict[str, np.ndarray]:
        if self._buffer is None or self._buffer.shape[0] < batch:
            raise InputError(f"infer({batch}): call input_buffer({batch}) and fill it first")
        return self.run({self._inputs[0].name: self._buffer[:batch]})

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = self.session.run(self._output_names, feeds)
        return dict(zip(self._output_names, outs))

    def metadata(self) -> dict[str, str]:
        """The model's ``metadata_props`` (the rtdetr-edge contract lives there)."""
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "file": str(self.path), "providers": self.session.get_providers()}

    def close(self) -> None:
        self.session = None
        self._buffer = None
