"""``rtdetr-build`` as a Python API: model -> bundle (host), bundle -> engine (device).

On the host (``--model`` is a hub id, a folder or a model object) the exporter makes the fp32
ONNX; other precisions are added from it. On the device (``--model`` is a bundle), the bundle's
ONNX is reused and only the engine is built, so torch and calibration images are not needed
there. The exporter (torch) is imported only when a model has to be exported.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from . import __version__, atomic
from .bundle import METADATA, write_bundle
from .errors import InputError

log = logging.getLogger("rtdetr_edge")

PRECISION_CHOICES = ("fp32", "fp16", "int8", "best")


@dataclass
class BuildOptions:
    """What to build. Defaults follow the official RT-DETR deployment.

    Attributes:
        precision: fp32, fp16, int8 or best (every precision the machine can build).
        top_k: K of the in-graph top-k (300).
        raw_outputs: export logits/pred_boxes instead of in-graph top-k.
        opset: 17 (TensorRT >= 8.6) or 16 (TensorRT 8.5 / JetPack 5).
        verify: compare ONNX Runtime with PyTorch during export.
        tolerance: verification tolerance (1e-4).
        revision: hub revision.
        force: replace an existing ``out``.
    """

    precision: str = "fp32"
    top_k: int = 300
    raw_outputs: bool = False
    opset: int = 17
    verify: bool = True
    tolerance: float = 1e-4
    revision: str | None = None
    force: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISION_CHOICES:
            raise InputError(f"--precision {self.precision!r}: expected one of {', '.join(PRECISION_CHOICES)}")
        if self.top_k < 1:
            raise InputError(f"--top-k must be >= 1, got {self.top_k}")


def tool_versions() -> dict[str, str]:
    """Versions of the tools that shaped an artifact (recorded in metadata.json)."""
    out = {"rtdetr_edge": __version__, "python": platform.python_version()}
    for dist in ("torch", "transformers", "onnx", "onnxruntime", "onnxsim", "onnx-graphsurgeon", "numpy",
                 "opencv-python-headless"):
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            pass
    return out


def _is_bundle(model: Any) -> bool:
    return isinstance(model, (str, Path)) and (Path(model) / METADATA).is_file()


def check_out(out: str | Path, force: bool) -> Path:
    """Fail before any work if ``--out`` exists (without force) or cannot be written."""
    path = atomic.check_writable_dir(out, "--out")
    if path.exists() and not force and (not path.is_dir() or any(path.iterdir())):
        raise InputError(f"--out {out}: already exists; pass --force to replace it")
    return path


def build(model: Any, out: str | Path, options: BuildOptions | None = None,
          step: Callable[[str], None] | None = None) -> Path:
    """Build a bundle from a model (host side).

    Args:
        model: hub id (``"PekingU/rtdetr_r18vd"``), ``save_pretrained`` folder, or model object.
        out: bundle directory to create.
        options: see :class:`BuildOptions`.
        step: called with each stage's name (progress display).

    Returns:
        The bundle directory.
    """
    opts = options or BuildOptions()
    if _is_bundle(model):
        raise InputError(f"--model {model} is a bundle; building engines from bundles needs TensorRT "
                         "(see rtdetr_edge.engine) and is done with --precision on the device")
    out_path = check_out(out, opts.force)
    from ._optional import require

    require("torch", "exporting a PyTorch model (on the host)")
    from .export import export_onnx

    t0 = time.perf_counter()
    result = export_onnx(model, top_k=opts.top_k, raw_outputs=opts.raw_outputs, opset=opts.opset,
                         verify_export=opts.verify, tolerance=opts.tolerance, revision=opts.revision, step=step)
    files: dict[str, Any] = {"model.onnx": result.model.SerializeToString()}
    artifacts = {"fp32": {"file": "model.onnx", "kind": "onnx", "precision": "fp32"}}
    verification = result.verification.to_dict() if result.verification else None
    metadata = {
        "contract": result.contract.to_dict(), "artifacts": artifacts, "source": result.source,
        "versions": tool_versions(), "build_options": asdict(opts), "verification": verification,
    }
    report = {"export": result.report, "verification": verification,
              "total_s": round(time.perf_counter() - t0, 2)}
    if step:
        step("write bundle")
    write_bundle(out_path, metadata, files, report=report, overwrite=opts.force)
    log.info("bundle written: %s", out_path)
    return out_path
