"""Collect activation ranges with ONNX Runtime, in one streaming pass over the calibration batches.

Every float tensor of the fp32 graph (the network input included) becomes an extra graph output;
ONNX Runtime runs with graph optimisations off, so tensor names are exactly the ONNX value names
that TensorRT's parser will use (and that the Q/DQ writer refers to). Each batch updates one
:class:`~rtdetr_edge.calib.entropy.StreamingHistogram` per tensor; nothing else is kept.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from rtdetr_edge._optional import require
from rtdetr_edge.errors import CalibrationError

from .entropy import StreamingHistogram, entropy_amax

log = logging.getLogger("rtdetr_edge")

_FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16}
# Tensors TensorRT does not run in INT8 and that only carry indices or the postprocessing tail:
# calibrating them would only add lines to the cache.
_SKIP_PRODUCERS = {"Shape", "Constant", "ConstantOfShape", "Range", "TopK", "NonZero"}


def calibration_tensors(model: onnx.ModelProto) -> list[str]:
    """Names of the float activation tensors to calibrate: graph inputs, then node outputs."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type
             for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
    initializers = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in initializers and types.get(i.name) in _FLOATS]
    seen = set(names)
    for node in model.graph.node:
        if node.op_type in _SKIP_PRODUCERS:
            continue
        for out in node.output:
            if out and out not in seen and types.get(out) in _FLOATS:
                names.append(out)
                seen.add(out)
    return names


def with_extra_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of ``model`` whose outputs also include ``names`` (typed from shape inference)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = {v.name: v for v in inferred.graph.value_info}
    out = onnx.ModelProto()
    out.CopyFrom(model)
    existing = {o.name for o in out.graph.output}
    inputs = {i.name for i in out.graph.input}
    for name in names:
        if name in existing or name in inputs:
            continue
        if name in infos:
            out.graph.output.append(infos[name])
        else:
            out.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return out


class ActivationCollector:
    """Streams calibration batches through ONNX Runtime and histograms every float tensor.

    Args:
        model_path: the fp32 ONNX.
        tensors: tensors to calibrate (default: :func:`calibration_tensors`).
        threads: ONNX Runtime intra-op threads (default: its choice).
    """

    def __init__(self, model_path: str | os.PathLike[str], tensors: list[str] | None = None,
                 threads: int | None = None) -> None:
        ort = require("onnxruntime", "collecting calibration activations")
        model = onnx.load(str(model_path))
        self.input_names = [i.name for i in model.graph.input]
        self.tensors = tensors or calibration_tensors(model)
        extended = with_extra_outputs(model, self.tensors)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep ONNX names
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(extended.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        self._run_outputs = [t for t in self.tensors if t not in self.input_names]
        self.histograms = {t: StreamingHistogram() for t in self.tensors}
        self.images = 0
        self.seconds = {"inference": 0.0, "histograms": 0.0}

    def update(self, batch: dict[str, np.ndarray]) -> None:
        """Run one batch ``{input_name: array}`` and add its activations to the histograms."""
        t0 = time.perf_counter()
        outs = self.session.run(self._run_outputs, batch)
        t1 = time.perf_counter()
        for name in self.input_names:
            if name in self.histograms:
                self.histograms[name].update(batch[name])
        for name, value in zip(self._run_outputs, outs):
            self.histograms[name].update(value)
        self.seconds["inference"] += t1 - t0
        self.seconds["histograms"] += time.perf_counter() - t1
        self.images += int(next(iter(batch.values())).shape[0])

    def collect(self, batches: Iterable[dict[str, np.ndarray]], progress: Callable[[int], Any] | None = None) -> None:
        for batch in batches:
            self.update(batch)
            if progress is not None:
                progress(int(next(iter(batch.values())).shape[0]))

    def ranges(self, algorithm: str = "entropy2") -> dict[str, float]:
        """Per-tensor amax: ``"entropy2"`` (TensorRT's KL search) or ``"max"`` (absolute max)."""
        if self.images == 0:
            raise CalibrationError("no calibration batches were collected")
        t0 = time.perf_counter()
        if algorithm == "entropy2":
            out = {name: entropy_amax(h) for name, h in self.histograms.items()}
        elif algorithm == "max":
            out = {name: h.max for name, h in self.histograms.items()}
        else:
            raise CalibrationError(f"unknown calibration algorithm {algorithm!r}: expected entropy2 or max")
        self.seconds["thresholds"] = time.perf_counter() - t0
        return out


def collect_ranges(model_path: str | Path, batches: Iterable[dict[str, np.ndarray]], algorithm: str = "entropy2",
                   progress: Callable[[int], Any] | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """Convenience: ranges for ``batches`` and the time spent per phase."""
    collector = ActivationCollector(model_path)
    collector.collect(batches, progress)
    ranges = collector.ranges(algorithm)
    log.info("calibrated %d tensors on %d images: inference %.1f s, histograms %.1f s, thresholds %.1f s",
             len(ranges), collector.images, collector.seconds["inference"], collector.seconds["histograms"],
             collector.seconds.get("thresholds", 0.0))
    return ranges, dict(collector.seconds)
