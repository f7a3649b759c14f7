"""Collect activation ranges with ONNX Runtime, in one streaming pass over the calibration batches.

The tensors to calibrate (see :data:`SCOPES`) become extra graph outputs, fetched by their ONNX
value names, which TensorRT's parser and the Q/DQ writer use too. Each batch updates one
:class:`~rtdetr_edge.calib.entropy.StreamingHistogram` per tensor; nothing else is kept.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import onnx

from rtdetr_edge._optional import require
from rtdetr_edge.errors import CalibrationError

from .entropy import StreamingHistogram, entropy_amax, percentile_amax

log = logging.getLogger("rtdetr_edge")

# Values histogrammed per tensor and image: a deterministic stride over larger tensors (the
# maximum still sees every value). 8192 per image is 2M values per tensor over 256 images, ample
# for 2048 bins, and halves the cost of a calibration (most of it was histogramming).
DEFAULT_SAMPLES_PER_IMAGE = 8192
ALGORITHMS = ("entropy2", "percentile", "max")
# Which tensors get ranges: "int8" (default), those INT8 layers read (what the Q/DQ model and
# TensorRT's INT8 kernels use; ONNX Runtime may fuse everything else, so collecting costs little
# more than inference), or "all", every float tensor, as TensorRT's own calibrator does (a layer
# TensorRT could run in INT8 but finds no range for runs in FP16/FP32 instead).
SCOPES = ("int8", "all")
_FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16}
# Tensors TensorRT does not run in INT8 and that only carry indices or the postprocessing tail:
# calibrating them would only add lines to the cache.
_SKIP_PRODUCERS = {"Shape", "Constant", "ConstantOfShape", "Range", "TopK", "NonZero"}


def calibration_tensors(model: onnx.ModelProto) -> list[str]:
    """Names of the float activation tensors to calibrate: graph inputs, then node outputs."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {
        v.name: v.type.tensor_type.elem_type
        for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    }
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


# Ops whose output holds exactly the values of their first input, rearranged: the same histogram,
# hence the same range (TensorRT computes it twice; we copy it).
_VALUE_PRESERVING = {"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity"}


def value_aliases(model: onnx.ModelProto, tensors: list[str]) -> dict[str, str]:
    """``{tensor: source}`` for calibrated tensors that only rearrange another calibrated tensor."""
    wanted = set(tensors)
    aliases: dict[str, str] = {}
    for node in model.graph.node:  # topological order: a source's own alias is already resolved
        if node.op_type in _VALUE_PRESERVING and node.output[0] in wanted and node.input[0] in wanted:
            aliases[node.output[0]] = aliases.get(node.input[0], node.input[0])
    return aliases


def int8_layer_tensors(model: onnx.ModelProto) -> list[str]:
    """The tensors INT8 layers read and write: the network input(s), then the activation inputs and
    the outputs of every Conv / Gemm / weight MatMul (the layers the Q/DQ model quantizes).

    Inputs are what the Q/DQ model uses. TensorRT's implicit INT8 (calibration cache or
    ``dynamic_range``) needs more: it runs a layer in INT8 only when every tensor it reads and
    writes has a range, else falls back to FP16/FP32; so the outputs are here too (a Conv fused
    with the activation after it writes what the next Conv reads, which is that Conv's input), and
    constant weights of MatMuls get their range from the weights (:func:`calib.int8.weight_ranges`).
    """
    from .qdq import quantizable_nodes

    floats = set(calibration_tensors(model))
    consts = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name in floats]
    seen = set(names)
    for node in quantizable_nodes(model):
        for name in list(node.input) + list(node.output):
            if name and name in floats and name not in consts and name not in seen:
                names.append(name)
                seen.add(name)
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

    Tensors that only rearrange another one (Reshape, Transpose, ...) are not fetched: they take
    their source's range.

    Args:
        model_path: the fp32 ONNX.
        tensors: tensors to calibrate (default: :func:`calibration_tensors`).
        threads: ONNX Runtime intra-op threads (default: its choice).
        samples_per_image: values histogrammed per tensor and image (see
            :meth:`StreamingHistogram.update`; the maximum always sees all); 0 for all of them.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        tensors: list[str] | None = None,
        threads: int | None = None,
        samples_per_image: int = DEFAULT_SAMPLES_PER_IMAGE,
        scope: str = "int8",
    ) -> None:
        ort = require("onnxruntime", "collecting calibration activations")
        if scope not in SCOPES:
            raise CalibrationError(f"calibration scope {scope!r}: expected one of {', '.join(SCOPES)}")
        model = onnx.load(str(model_path))
        self.input_names = [i.name for i in model.graph.input]
        self.tensors = tensors or (int8_layer_tensors(model) if scope == "int8" else calibration_tensors(model))
        self.aliases = value_aliases(model, self.tensors)
        measured = [t for t in self.tensors if t not in self.aliases]
        extended = with_extra_outputs(model, measured)
        opts = ort.SessionOptions()
        # Fetched tensors are graph outputs, which ONNX Runtime's optimiser keeps by name; with every
        # tensor fetched nothing could fuse anyway, so "all" runs the graph as written.
        opts.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_DISABLE_ALL if scope == "all" else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        )
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(extended.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        self._run_outputs = [t for t in measured if t not in self.input_names]
        self.histograms = {t: StreamingHistogram() for t in measured}
        self.samples_per_image = samples_per_image
        self.scope = scope
        self._buffers: dict[tuple[int, int], list[np.ndarray]] = {}
        self._parity = 0
        self.images = 0
        self.seconds = {"inference": 0.0, "histograms": 0.0}

    def _infer(self, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run a batch; outputs land in reused buffers (two sets, alternating, for the pipeline).

        Hundreds of fetched tensors are hundreds of MB per batch: allocating them afresh every run
        cost more than the inference itself, so after the first run of a batch size ONNX Runtime
        writes into the previous run's arrays through I/O binding.
        """
        t0 = time.perf_counter()
        n = int(next(iter(batch.values())).shape[0])
        key = (n, self._parity)
        self._parity ^= 1
        buffers = self._buffers.get(key)
        outs: list[np.ndarray] | None = None
        if buffers is not None:
            binding = self.session.io_binding()
            for name, value in batch.items():
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
            for name, buf in zip(self._run_outputs, buffers):
                binding.bind_output(name, "cpu", 0, buf.dtype, list(buf.shape), buf.ctypes.data)
            try:
                self.session.run_with_iobinding(binding)
                outs = buffers
            except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises unrelated pybind classes (Fail, RuntimeException, ...); a data-dependent output shape: fall back to plain runs
                log.debug("calibration: I/O binding failed (%s); running without it", exc)
        if outs is None:
            outs = [np.asarray(o) for o in self.session.run(self._run_outputs, batch)]
            self._buffers[key] = outs
        self.seconds["inference"] += time.perf_counter() - t0
        return outs

    def _histogram(self, batch: dict[str, np.ndarray], outs: list[np.ndarray]) -> None:
        t0 = time.perf_counter()
        n = int(next(iter(batch.values())).shape[0])
        cap = self.samples_per_image * n
        for name in self.input_names:
            if name in self.histograms:
                self.histograms[name].update(batch[name], cap)
        for name, value in zip(self._run_outputs, outs):
            self.histograms[name].update(value, cap)
        self.seconds["histograms"] += time.perf_counter() - t0
        self.images += n

    def update(self, batch: dict[str, np.ndarray]) -> None:
        """Run one batch ``{input_name: array}`` and add its activations to the histograms."""
        self._histogram(batch, self._infer(batch))

    def collect(self, batches: Iterable[dict[str, np.ndarray]], progress: Callable[[int], Any] | None = None) -> None:
        """Run every batch; batch k is histogrammed (in a worker thread) while batch k+1 runs.

        ONNX Runtime leaves cores idle on a small model's many small ops, and OpenCV/numpy release
        the GIL, so the two overlap; at most two batches of activations are alive at a time.
        """
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="calib-hist") as pool:
            pending: Future[None] | None = None
            for batch in batches:
                outs = self._infer(batch)
                if pending is not None:
                    pending.result()
                pending = pool.submit(self._histogram, batch, outs)
                if progress is not None:
                    progress(int(next(iter(batch.values())).shape[0]))
            if pending is not None:
                pending.result()
        self.seconds["collect_wall"] = self.seconds.get("collect_wall", 0.0) + time.perf_counter() - t0

    def ranges(self, algorithm: str = "entropy2") -> dict[str, float]:
        """Per-tensor amax by ``algorithm``, one of :data:`ALGORITHMS`.

        ``entropy2``: TensorRT's KL search; ``percentile``: the 99.999th percentile of |x|;
        ``max``: the absolute maximum (TensorRT's MinMax calibrator).
        """
        if self.images == 0:
            raise CalibrationError("no calibration batches were collected")
        t0 = time.perf_counter()
        if algorithm == "entropy2":
            # numpy releases the GIL on the search's large arrays: use every core
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="calib-kl") as pool:
                out = dict(zip(self.histograms, pool.map(entropy_amax, self.histograms.values())))
        elif algorithm == "percentile":
            out = {name: percentile_amax(h) for name, h in self.histograms.items()}
        elif algorithm == "max":
            out = {name: h.max for name, h in self.histograms.items()}
        else:
            raise CalibrationError(
                f"unknown calibration algorithm {algorithm!r}: expected one of {', '.join(ALGORITHMS)}"
            )
        out.update({alias: out[source] for alias, source in self.aliases.items()})
        out = {name: out[name] for name in self.tensors}
        self.seconds["thresholds"] = time.perf_counter() - t0
        return out
