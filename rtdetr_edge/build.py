"""The host build pipeline: a model -> a bundle, or more precisions added to a bundle.

* :func:`build_bundle`: a hub id, a ``save_pretrained`` folder or a model object (host, needs
  torch): export and verify the fp32 ONNX, add the requested precisions (FP16 ONNX, INT8 ranges +
  TensorRT caches + Q/DQ ONNX), check their accuracy on held-out images, write the bundle.
* :func:`add_precisions`: the same precisions added to an existing bundle (torch-free).

Engines are built on the device from a finished bundle by :func:`rtdetr_edge.engine.engine_for_bundle`
(``rtdetr-engine``), never here. Every bundle is assembled in a temporary sibling directory and
renamed into place at the end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Literal, get_args

from . import __version__, atomic
from ._optional import require
from .backends.options import check_choice
from .bundle import METADATA, Bundle, finalize_bundle
from .calib import CalibrationOptions, CalibrationResult
from .contract import ModelContract
from .data.coco import CocoDataset
from .errors import CalibrationError, InputError
from .export.options import ExportOptions

log = logging.getLogger("rtdetr_edge")

BuildPrecision = Literal["fp32", "fp16", "int8", "best"]
PRECISION_CHOICES: tuple[str, ...] = get_args(BuildPrecision)
DEFAULT_TRT_CACHE_VERSIONS = ("10.3.0",)  # JetPack 6.1/6.2's TensorRT


__all__ = ["BuildOptions", "Int8Options", "add_precisions", "build_bundle", "check_out", "is_bundle", "tool_versions"]


@dataclass(frozen=True)
class Int8Options:
    """What the INT8 artifact keeps out of INT8, and which native caches it carries.

    Attributes:
        keep: extra node-name components to keep out of INT8 (added to the defaults).
        sensitivity: measure layer groups and keep the worst in float until ``target``.
        target: required INT8 AP as a fraction of fp32 AP (0.99).
        trt_cache_versions: TensorRT versions to write native calibration caches for.
    """

    keep: tuple[str, ...] = ()
    sensitivity: bool = False
    target: float = 0.99
    trt_cache_versions: tuple[str, ...] = DEFAULT_TRT_CACHE_VERSIONS

    def __post_init__(self) -> None:
        if not 0 < self.target <= 1:
            raise InputError(f"--int8-target: expected a fraction in (0, 1], got {self.target}")
        object.__setattr__(self, "keep", tuple(self.keep))
        object.__setattr__(self, "trt_cache_versions", tuple(self.trt_cache_versions))


@dataclass(frozen=True)
class BuildOptions:
    """What to build. Defaults follow the official RT-DETR deployment.

    Attributes:
        precision: fp32, fp16, int8 or best (every precision that can be made here).
        force: replace an existing ``out``.
        export: how the fp32 ONNX is exported (:class:`~rtdetr_edge.export.options.ExportOptions`).
        calibration: INT8 calibration (:class:`~rtdetr_edge.calib.CalibrationOptions`); needed
            for int8, and for best to include int8.
        int8: :class:`Int8Options`.
        check_images: held-out images for the accuracy check (100; 0 skips it).
    """

    precision: BuildPrecision = "fp32"
    force: bool = False
    export: ExportOptions = field(default_factory=ExportOptions)
    calibration: CalibrationOptions | None = None
    int8: Int8Options = field(default_factory=Int8Options)
    check_images: int = 100

    def __post_init__(self) -> None:
        check_choice(self.precision, PRECISION_CHOICES, "--precision")
        if self.precision == "int8" and self.calibration is None:
            raise InputError("--precision int8 needs --calib (coco_val, coco_train, a COCO json or an image folder)")
        if isinstance(self.check_images, bool) or not isinstance(self.check_images, int) or self.check_images < 0:
            raise InputError(f"--check-images: expected an integer >= 0, got {self.check_images!r}")

    @property
    def precisions(self) -> list[str]:
        """Artifacts to make besides fp32."""
        if self.precision == "best":
            return ["fp16"] + (["int8"] if self.calibration else [])
        return [] if self.precision == "fp32" else [self.precision]


def tool_versions() -> dict[str, str]:
    """Versions of the tools that shaped an artifact (recorded in metadata.json)."""
    out = {"rtdetr_edge": __version__, "python": platform.python_version()}
    for dist in (
        "torch",
        "transformers",
        "onnx",
        "onnxruntime",
        "onnxsim",
        "onnx-graphsurgeon",
        "numpy",
        "opencv-python-headless",
        "onnxconverter-common",
    ):
        with contextlib.suppress(importlib_metadata.PackageNotFoundError):
            out[dist] = importlib_metadata.version(dist)
    return out


def is_bundle(model: Any) -> bool:
    """``model`` names a bundle directory (it has ``metadata.json``)."""
    return isinstance(model, (str, Path)) and (Path(model) / METADATA).is_file()


def check_out(out: str | Path, force: bool) -> Path:
    """Fail before any work if ``--out`` exists (without force) or cannot be written."""
    path = atomic.check_writable_dir(out, "--out")
    if path.exists() and not force and (not path.is_dir() or any(path.iterdir())):
        raise InputError(f"--out {out}: already exists; pass --force to replace it")
    return path


def build_bundle(
    model: Any, out: str | Path, options: BuildOptions | None = None, step: Callable[[str], None] | None = None
) -> Path:
    """Export a model and write its bundle (host; needs the ``export`` extra).

    Args:
        model: hub id (``"PekingU/rtdetr_r18vd"``), ``save_pretrained`` folder or model object.
        out: bundle directory to create.
        options: see :class:`BuildOptions`.
        step: called with each stage's name (progress display).

    Returns:
        The bundle directory.
    """
    opts = options or BuildOptions()
    announce = step or (lambda name: None)
    if is_bundle(model):
        raise InputError(
            f"--model {model}: is already a bundle; add precisions to it with add_precisions() "
            "(rtdetr-build does that for a bundle), build engines with rtdetr-engine"
        )
    out_path = check_out(out, opts.force)
    require("torch", "exporting a PyTorch model (on the host)")
    from .export import export_onnx

    t0 = time.perf_counter()
    result = export_onnx(model, opts.export, step=announce)
    verification = result.verification.to_dict() if result.verification else None
    with atomic.replacing_dir(out_path, overwrite=opts.force) as tmp:
        (tmp / "model.onnx").write_bytes(result.model.SerializeToString())
        metadata: dict[str, Any] = {
            "contract": result.contract.to_dict(),
            "artifacts": {"fp32": {"file": "model.onnx", "kind": "onnx", "precision": "fp32"}},
            "source": result.source,
            "versions": tool_versions(),
            "build_options": options_record(opts),
            "verification": verification,
        }
        report: dict[str, Any] = {"export": result.report, "verification": verification}
        _add_precisions(tmp, result.contract, metadata, report, opts, announce)
        report["total_s"] = round(time.perf_counter() - t0, 2)
        announce("write bundle")
        finalize_bundle(tmp, metadata, report)
    log.info("bundle written: %s", out_path)
    return out_path


def options_record(opts: BuildOptions) -> dict[str, Any]:
    """The options as recorded in ``metadata.json`` (nested like the dataclasses)."""
    return json.loads(json.dumps(asdict(opts)))


def add_precisions(
    bundle_dir: str | Path, out: str | Path, options: BuildOptions, step: Callable[[str], None] | None = None
) -> Path:
    """Add ``options``' precisions to an existing bundle (torch-free), in place or as a new bundle ``out``."""
    src, out_path = Path(bundle_dir), Path(out)
    bundle = Bundle(src)
    announce = step or (lambda name: None)
    if out_path.resolve() != src.resolve():
        check_out(out_path, options.force)
    metadata = dict(bundle.metadata)
    report_path = src / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    t0 = time.perf_counter()
    with atomic.replacing_dir(out_path, overwrite=True) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        for key in ("format", "format_version", "created"):
            metadata.pop(key, None)
        _add_precisions(tmp, bundle.contract, metadata, report, options, announce)
        report["added_s"] = round(time.perf_counter() - t0, 2)
        announce("write bundle")
        finalize_bundle(tmp, metadata, report)
    return out_path


def _add_precisions(
    tmp: Path,
    contract: ModelContract,
    metadata: dict[str, Any],
    report: dict[str, Any],
    opts: BuildOptions,
    announce: Callable[[str], None],
) -> None:
    """Write the FP16 and INT8 artifacts next to ``tmp/model.onnx`` and record them."""
    fp32 = tmp / metadata["artifacts"]["fp32"]["file"]
    artifacts = metadata["artifacts"]
    holdout: tuple[Any, list[int]] | None = None
    if "fp16" in opts.precisions:
        announce("fp16")
        from .calib.fp16 import write_fp16

        report["fp16"] = write_fp16(fp32, tmp / "model.fp16.onnx")
        artifacts["fp16"] = {
            "file": "model.fp16.onnx",
            "kind": "onnx",
            "precision": "fp16",
            "kept_fp32": report["fp16"]["kept_fp32"],
        }
    if "int8" in opts.precisions:
        holdout = _add_int8(tmp, fp32, contract, artifacts, report, opts, announce)
    metadata["default_precision"] = (
        opts.precision if opts.precision != "best" else ("int8" if "int8" in artifacts else "fp16")
    )
    if opts.check_images and holdout is not None and len(opts.precisions):
        announce("accuracy check")
        from .evaluate.accuracy import artifact_accuracy

        report["accuracy"] = artifact_accuracy(
            tmp, artifacts, holdout[0], holdout[1][: opts.check_images], contract.class_names
        )
        metadata["accuracy"] = report["accuracy"]
    if opts.check_images and opts.precisions:
        announce("polygraphy check")
        from .check import check_bundle_dir

        calib = opts.calibration
        report["check"] = check_bundle_dir(
            tmp,
            metadata,
            opts.precisions,
            num_images=min(opts.check_images, 50),
            images_dir=calib.images_dir if calib else None,
            coco_root=calib.coco_root if calib else None,
        )


def _add_int8(
    tmp: Path,
    fp32: Path,
    contract: ModelContract,
    artifacts: dict[str, Any],
    report: dict[str, Any],
    opts: BuildOptions,
    announce: Callable[[str], None],
) -> tuple[CocoDataset, list[int]] | None:
    import dataclasses

    from .calib import calibrate
    from .calib.choice import choose_ranges
    from .calib.qdq import DEFAULT_EXCLUDE, default_excluded_nodes, write_qdq
    from .trt_cache import write_cache

    if opts.calibration is None:
        raise InputError("int8 needs calibration options (--calib)")
    announce("calibrate")
    copts = dataclasses.replace(opts.calibration, holdout=max(opts.check_images, 200))
    result: CalibrationResult = calibrate(fp32, contract, copts)
    import onnx

    patterns = dict(DEFAULT_EXCLUDE)
    patterns.update(dict.fromkeys(opts.int8.keep, "kept by --int8-keep"))
    reasons = default_excluded_nodes(onnx.load(str(fp32), load_external_data=False), patterns)
    exclude = list(reasons)
    holdout = (
        (result.source.dataset, result.holdout_ids)
        if result.source.dataset is not None and result.holdout_ids
        else None
    )
    choice, qrep = None, None
    if len(result.candidates) > 1:
        choice, qrep = choose_ranges(
            fp32, result, holdout, exclude, contract.class_names, opts.check_images, tmp, announce
        )
    result.ranges.save(tmp / "calib" / "ranges.json")
    manifest = result.subset.manifest()
    manifest["skipped"] = result.skipped
    if copts.images_dir:
        manifest["images_dir"] = copts.images_dir
    atomic.write_json(tmp / "calib" / "manifest.json", manifest)
    caches = {}
    for version in opts.int8.trt_cache_versions:
        rel = f"calib/trt-{version}.cache"
        atomic.write_text(tmp / rel, write_cache(result.ranges.ranges, version))
        caches[version] = rel
    sens = None
    if opts.int8.sensitivity:
        if holdout is None:
            raise CalibrationError(
                "--int8-sensitivity needs an annotated --calib source (COCO json or split) "
                "with images beyond the calibration subset"
            )
        announce("int8 sensitivity")
        from .calib.sensitivity import sensitivity_search

        exclude, sens = sensitivity_search(
            fp32, result.ranges.ranges, holdout[0], holdout[1][: max(opts.check_images, 50)], exclude, opts.int8.target
        )
    if qrep is None or exclude != list(reasons):  # not written by the range choice, or sensitivity changed it
        announce("quantize (Q/DQ)")
        qrep = write_qdq(fp32, result.ranges.ranges, tmp / "model.int8.qdq.onnx", exclude)
    artifacts["int8"] = {
        "file": "model.int8.qdq.onnx",
        "kind": "onnx",
        "precision": "int8",
        "quantization": "qdq",
        "ranges": "calib/ranges.json",
        "manifest": "calib/manifest.json",
        "tensorrt_caches": caches,
        "excluded_nodes": exclude,
        "exclusion_reasons": {**reasons, **{n: "int8 sensitivity" for n in exclude if n not in reasons}},
    }
    report["calibration"] = {
        "source": copts.calib,
        "images": result.ranges.images,
        "tensors": len(result.ranges.ranges),
        "coverage": result.subset.coverage,
        "seconds": result.seconds,
        "skipped": len(result.skipped),
        "manifest_sha256": manifest["sha256"],
    }
    report["int8"] = qrep
    if choice is not None:
        report["calibration"]["algorithm_choice"] = choice
    if sens is not None:
        report["int8_sensitivity"] = sens
    return holdout
