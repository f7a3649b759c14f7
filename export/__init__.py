"""Host-side exporter (installed as ``rtdetr_edge.export``): PyTorch RT-DETR -> verified ONNX.

Needs the ``export`` extra (torch, transformers, onnxsim, onnx-graphsurgeon). The steps, each a
small module: :mod:`.source` (load), :mod:`.onnx_export` (trace), :mod:`.graph_passes`
(simplify, clean, add top-k), :mod:`.verify` (ONNX Runtime vs PyTorch).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import onnx

from rtdetr_edge.contract import METADATA_KEY, OUTPUT_RAW, OUTPUT_TOPK, ModelContract, Preprocessing

from . import graph_passes
from .onnx_export import RAW_OUTPUTS, export_raw
from .options import DEFAULT_OPSET, ExportOptions
from .source import LoadedModel, load_model
from .verify import VerificationReport, verification_runs, verify

log = logging.getLogger("rtdetr_edge")

# the export's steps that can take minutes on a large model (tracing, onnxsim), and their bars
LONG_STEPS = {"export": "exporting (torch.onnx)", "simplify": "simplifying (onnxsim)"}

__all__ = ["DEFAULT_OPSET", "ExportOptions", "ExportResult", "LoadedModel", "export_onnx", "load_model"]


@contextlib.contextmanager
def progress_bar(desc: str, total: int | None = None) -> Iterator[Any]:
    """A tqdm bar on stderr for a long step, like the calibration and evaluation bars: counting
    ``total`` units, or (None) showing the time spent so far, refreshed twice a second."""
    from tqdm import tqdm

    fmt = None if total is not None else "{desc}: {elapsed} elapsed"
    bar = tqdm(total=total, desc=desc, file=sys.stderr, bar_format=fmt, unit="run", leave=True)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(0.5):
            bar.refresh()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield bar
    finally:
        stop.set()
        ticker.join()
        bar.close()


@dataclass
class ExportResult:
    """The final graph (contract in its ``metadata_props``) and what was measured on the way."""

    model: onnx.ModelProto
    contract: ModelContract
    source: dict[str, Any]
    report: dict[str, Any] = field(default_factory=dict)
    verification: VerificationReport | None = None
    loaded: LoadedModel | None = None


def export_onnx(
    source: Any, options: ExportOptions | None = None, *, preprocessing: Preprocessing | None = None, step: Any = None
) -> ExportResult:
    """Load an RT-DETR, export it to ONNX, clean it and verify it against PyTorch.

    Args:
        source: hub id, ``save_pretrained`` folder, or model object (see :func:`load_model`).
        options: :class:`ExportOptions` (top-k, raw outputs, opset, verification, revision).
        preprocessing: contract for in-memory models without a processor config.
        step: optional callable ``step(name)`` announcing each stage (progress display).
    """
    opts = options or ExportOptions()
    top_k, raw_outputs, opset, simplify, revision = (
        opts.top_k,
        opts.raw_outputs,
        opts.opset,
        opts.simplify,
        opts.revision,
    )
    verify_export, tolerance = opts.verify, opts.tolerance
    announce = step or (lambda name: None)
    timings: dict[str, float] = {}

    def timed(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        announce(name)
        t0 = time.perf_counter()
        if name in LONG_STEPS:  # minutes on large models: show that it is moving
            with progress_bar(LONG_STEPS[name]):
                result = fn(*args, **kwargs)
        else:
            result = fn(*args, **kwargs)
        timings[name] = round(time.perf_counter() - t0, 3)
        log.info("%s: %.2f s", name, timings[name])
        return result

    loaded: LoadedModel = timed("load", load_model, source, revision=revision, preprocessing=preprocessing)
    config = loaded.model.config
    pre = loaded.preprocessing
    num_queries, num_classes = int(config.num_queries), len(loaded.class_names)
    k = min(int(top_k), num_queries * num_classes)
    graph = timed("export", export_raw, loaded.model, pre.height, pre.width, opset)
    counts = {"exported": graph_passes.op_counts(graph)}
    if simplify:
        graph = timed("simplify", graph_passes.simplify, graph)
        graph = timed("cleanup", graph_passes.cleanup, graph)
        counts["simplified"] = graph_passes.op_counts(graph)
    if not raw_outputs:
        graph = timed("add_topk", graph_passes.add_topk, graph, k, num_classes)
    graph = graph_passes.infer_shapes(graph)
    counts["final"] = graph_passes.op_counts(graph)
    contract = ModelContract(
        preprocessing=pre,
        class_names=loaded.class_names,
        input_name="images",
        output_kind=OUTPUT_RAW if raw_outputs else OUTPUT_TOPK,
        output_names=RAW_OUTPUTS if raw_outputs else graph_passes.TOPK_OUTPUTS,
        top_k=k,
        num_queries=num_queries,
        box_format="cxcywh_norm" if raw_outputs else "xyxy_norm",
        extra={"model_type": config.model_type, "opset": opset},
    )
    graph_passes.set_metadata(graph, {METADATA_KEY: contract.to_json()})
    graph.producer_name, graph.producer_version = "rtdetr-edge", _version()
    onnx.checker.check_model(graph)
    report: dict[str, Any] = {
        "opset": opset,
        "node_counts": {k_: sum(v.values()) for k_, v in counts.items()},
        "op_counts": counts,
        "int64": graph_passes.int64_report(graph),
        "timings_s": timings,
        "warnings": loaded.warnings,
    }
    for name, n in report["node_counts"].items():
        log.info("nodes %s: %d", name, n)
    verification = None
    if verify_export:
        announce("verify")
        t0 = time.perf_counter()
        with progress_bar("verifying", verification_runs()) as bar:
            verification = verify(
                loaded.model, graph.SerializeToString(), contract, tolerance=tolerance, progress=bar.update
            )
        timings["verify"] = round(time.perf_counter() - t0, 3)
        log.info("verification %s", verification.summary())
    return ExportResult(graph, contract, loaded.source, report, verification, loaded)


def _version() -> str:
    from rtdetr_edge import __version__

    return __version__
