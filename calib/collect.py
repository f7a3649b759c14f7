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
from .segments import Segment, bytes_per_image, optimized_graph, split_for_fetch, value_infos

log = logging.getLogger("rtdetr_edge")

# Values histogrammed per tensor and image: a deterministic stride over larger tensors (the
# maximum still sees every value). 8192 per image is 2M values per tensor over 256 images, ample
# for 2048 bins, and halves the cost of a calibration (most of it was histogramming).
DEFAULT_SAMPLES_PER_IMAGE = 8192
ALGORITHMS = ("entropy2", "percentile", "max")
# Activation memory the collector may hold at once (MiB): an r18vd-shaped RT-DETR at 640x640
# fetches ~400 MB per image, 3.2 GB per batch of 8 (see :mod:`.segments`).
DEFAULT_MEMORY_MB = 1024
_ALIGN = 64  # byte alignment of each tensor in the output arenas
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
    their source's range. The graph runs in segments (:mod:`.segments`) whose fetched tensors
    total at most half of ``memory_mb`` per batch: one segment's activations are histogrammed
    while the next segment runs, so about ``memory_mb`` of activations are alive at a time, and
    the inference is done once, as with one run (each tensor still arrives whole for its batch,
    so the histograms, hence the ranges, are those of one run).

    Args:
        model_path: the fp32 ONNX.
        tensors: tensors to calibrate (default: :func:`calibration_tensors`).
        threads: ONNX Runtime intra-op threads (default: its choice).
        samples_per_image: values histogrammed per tensor and image (see
            :meth:`StreamingHistogram.update`; the maximum always sees all); 0 for all of them.
        scope: ``int8`` or ``all`` (see :data:`SCOPES`).
        memory_mb: activation memory (MiB) the collector may hold (default 1024; 0: no limit, one
            run per batch). A tensor larger than half of it still arrives whole.
        batch_size: the batches' size (default 8), which segments are planned for.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        tensors: list[str] | None = None,
        threads: int | None = None,
        samples_per_image: int = DEFAULT_SAMPLES_PER_IMAGE,
        scope: str = "int8",
        memory_mb: float = DEFAULT_MEMORY_MB,
        batch_size: int = 8,
    ) -> None:
        ort = require("onnxruntime", "collecting calibration activations")
        if scope not in SCOPES:
            raise CalibrationError(f"calibration scope {scope!r}: expected one of {', '.join(SCOPES)}")
        model = onnx.load(str(model_path))
        self.input_names = [i.name for i in model.graph.input]
        self.tensors = tensors or (int8_layer_tensors(model) if scope == "int8" else calibration_tensors(model))
        self.aliases = value_aliases(model, self.tensors)
        measured = [t for t in self.tensors if t not in self.aliases]
        run_outputs = [t for t in measured if t not in self.input_names]
        # Fetched tensors are graph outputs, which ONNX Runtime's optimiser keeps by name; with every
        # tensor fetched nothing could fuse anyway, so "all" runs the graph as written.
        level = (
            ort.GraphOptimizationLevel.ORT_DISABLE_ALL if scope == "all" else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        )
        inputs = [i for i in self.input_names if i not in {t.name for t in model.graph.initializer}]
        extended = with_extra_outputs(model, measured)
        sizes = {name: size * max(1, batch_size) for name, size in bytes_per_image(model, run_outputs).items()}
        budget = int(memory_mb * 2**20) // 2  # two runs' tensors are alive: one histogrammed, one running
        opts = ort.SessionOptions()
        opts.graph_optimization_level = level
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        segments: list[Segment] = []
        if memory_mb > 0 and sum(sizes.values()) > budget:
            optimized = optimized_graph(extended, level, threads)
            segments = split_for_fetch(optimized, run_outputs, sizes, budget)
        if len(segments) > 1:  # the optimised graph, cut: each segment runs as it is
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            # Without this, each session's arena keeps what its first run allocated (its outputs,
            # before they are bound to the collector's arenas), one segment's worth per session:
            # together the whole batch's tensors again (8 GB for r18vd at 640 instead of 3.5).
            opts.enable_cpu_mem_arena = False
            known = {i.name: i for i in optimized.graph.input}
            self.sessions = []
            for seg in segments:
                model_k = seg.model(optimized, known).SerializeToString()
                self.sessions.append(ort.InferenceSession(model_k, opts, providers=["CPUExecutionProvider"]))
                known.update(value_infos(self.sessions[-1].get_outputs()))
            self.segments = segments
        else:  # one run per batch
            self.segments = [Segment([], inputs, run_outputs, [])]
            self.sessions = [
                ort.InferenceSession(extended.SerializeToString(), opts, providers=["CPUExecutionProvider"])
            ]
        # after segment k, the passed-on tensors no later segment reads are dropped
        self._drop_after = [
            set[str]().union(*(s.passed_on for s in self.segments[: k + 1]))
            - set[str]().union(*(s.inputs for s in self.segments[k + 1 :]))
            for k in range(len(self.segments))
        ]
        self.histograms = {t: StreamingHistogram() for t in measured}
        self.samples_per_image = samples_per_image
        self.scope = scope
        self._layouts: dict[tuple[int, int], list[tuple[tuple[int, ...], np.dtype[Any]]]] = {}
        self._arenas: list[np.ndarray] = [np.empty(0, np.uint8), np.empty(0, np.uint8)]
        self._parity = 0
        self.images = 0
        self.seconds = {"inference": 0.0, "histograms": 0.0}

    def release(self) -> None:
        """Free the sessions and output arenas once collecting is done (the histograms stay)."""
        self.sessions = []
        self._arenas = [np.empty(0, np.uint8), np.empty(0, np.uint8)]
        self._layouts.clear()

    def _views(self, layout: list[tuple[tuple[int, ...], np.dtype[Any]]]) -> list[np.ndarray]:
        """Arrays for one run's fetched tensors, in one of two reused arenas (alternating)."""
        offsets, total = [], 0
        for shape, dtype in layout:
            offsets.append(total)
            total += -(-int(np.prod(shape, dtype=np.int64)) * dtype.itemsize // _ALIGN) * _ALIGN
        if self._arenas[self._parity].size < total:
            self._arenas[self._parity] = np.empty(total, np.uint8)
        arena = self._arenas[self._parity]
        self._parity ^= 1
        return [
            arena[off : off + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize].view(dtype).reshape(shape)
            for off, (shape, dtype) in zip(offsets, layout)
        ]

    def _infer(self, k: int, feeds: dict[str, np.ndarray], n: int) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
        """Run segment ``k``: (its fetched tensors, the tensors it passes on).

        Hundreds of fetched tensors are hundreds of MB per batch: allocating them afresh every run
        cost more than the inference itself, so after a segment's first run at a batch size ONNX
        Runtime writes them through I/O binding into two arenas reused in turn (the collector
        histograms one run's tensors while the next run fills the other).
        """
        t0 = time.perf_counter()
        seg, session = self.segments[k], self.sessions[k]
        extra = [name for name in seg.passed_on if name not in set(seg.fetched)]
        layout = self._layouts.get((k, n))
        outs: list[np.ndarray] | None = None
        passed: list[np.ndarray] = []
        if layout is not None:
            views = self._views(layout)
            binding = session.io_binding()
            for name in seg.inputs:
                binding.bind_cpu_input(
                    name, np.asarray(feeds[name], order="C")
                )  # keeps 0-d (ascontiguousarray does not)
            for name, view in zip(seg.fetched, views):
                binding.bind_output(name, "cpu", 0, view.dtype, list(view.shape), view.ctypes.data)
            for name in extra:
                binding.bind_output(name, "cpu")
            try:
                session.run_with_iobinding(binding)
                outs = views
                passed = [v.numpy() for v in binding.get_outputs()[len(seg.fetched) :]]
            except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises unrelated pybind classes (Fail, RuntimeException, ...); a data-dependent output shape: fall back to plain runs
                log.debug("calibration: I/O binding failed (%s); running without it", exc)
        if outs is None:
            values = [np.asarray(o) for o in session.run(seg.fetched + extra, {i: feeds[i] for i in seg.inputs})]
            outs, passed = values[: len(seg.fetched)], values[len(seg.fetched) :]
            self._layouts[(k, n)] = [(o.shape, o.dtype) for o in outs]
        by_name = dict(zip(seg.fetched, outs))
        # a fetched tensor lives in an arena that a later run overwrites: later segments get a copy
        carried = {name: np.array(by_name[name]) for name in seg.passed_on if name in by_name}
        carried.update(zip(extra, passed))
        self.seconds["inference"] += time.perf_counter() - t0
        return outs, carried

    def _histogram(self, named: list[tuple[str, np.ndarray]], n: int) -> None:
        t0 = time.perf_counter()
        cap = self.samples_per_image * n
        for name, value in named:
            self.histograms[name].update(value, cap)
        self.seconds["histograms"] += time.perf_counter() - t0

    def update(self, batch: dict[str, np.ndarray]) -> None:
        """Run one batch ``{input_name: array}`` and add its activations to the histograms."""
        self.collect([batch])

    def collect(self, batches: Iterable[dict[str, np.ndarray]], progress: Callable[[int], Any] | None = None) -> None:
        """Run every batch, segment by segment; one segment's tensors are histogrammed (in a worker
        thread) while the next segment runs.

        ONNX Runtime leaves cores idle on a small model's many small ops, and OpenCV/numpy release
        the GIL, so the two overlap; at most two segments' activations are alive at a time.
        """
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="calib-hist") as pool:
            pending: Future[None] | None = None
            for batch in batches:
                n = int(next(iter(batch.values())).shape[0])
                feeds = dict(batch)
                named = [(name, batch[name]) for name in self.input_names if name in self.histograms]
                for k in range(len(self.segments)):
                    outs, carried = self._infer(k, feeds, n)
                    feeds.update(carried)
                    for name in self._drop_after[k]:
                        feeds.pop(name, None)
                    named += list(zip(self.segments[k].fetched, outs))
                    if pending is not None:
                        pending.result()
                    pending = pool.submit(self._histogram, named, n)
                    named = []
                self.images += n
                if progress is not None:
                    progress(n)
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
