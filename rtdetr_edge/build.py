"""``rtdetr-build`` as a Python API: model -> bundle (host), bundle -> more precisions or engines.

* ``--model`` is a hub id, a ``save_pretrained`` folder or a model object (host, needs torch):
  export and verify the fp32 ONNX, then add the requested precisions (FP16 ONNX, INT8 ranges +
  TensorRT caches + Q/DQ ONNX), check their accuracy on held-out images, write the bundle.
* ``--model`` is a bundle: where TensorRT is present (the device), build the engine from the
  bundle's ONNX and calibration (no torch, no images); elsewhere add the requested precisions
  to the bundle (calibration is torch-free).

Every bundle is assembled in a temporary sibling directory and renamed into place at the end.
"""

from __future__ import annotations

import logging
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from . import __version__, atomic
from ._optional import require, tensorrt_available
from .bundle import METADATA, Bundle, finalize_bundle
from .contract import ModelContract
from .errors import CalibrationError, InputError

log = logging.getLogger("rtdetr_edge")

PRECISION_CHOICES = ("fp32", "fp16", "int8", "best")
DEFAULT_TRT_CACHE_VERSIONS = ("10.3.0",)  # JetPack 6.1/6.2's TensorRT


@dataclass
class BuildOptions:
    """What to build. Defaults follow the official RT-DETR deployment.

    Attributes:
        precision: fp32, fp16, int8 or best (every precision that can be made here).
        top_k: K of the in-graph top-k (300).
        raw_outputs: export logits/pred_boxes instead of in-graph top-k.
        opset: 17 (TensorRT >= 8.6) or 16 (TensorRT 8.5 / JetPack 5).
        verify: compare ONNX Runtime with PyTorch during export.
        tolerance: verification tolerance (1e-4).
        revision: hub revision.
        force: replace an existing ``out``.
        calib: INT8 calibration source: coco_val, coco_train, a COCO json or an image folder.
        calib_size: calibration images (256).
        calib_seed: subset seed (0).
        calib_batch: images per calibration batch (8).
        calib_images: image folder of a COCO json (default next to it).
        coco_root: COCO 2017 root (default $RTDETR_COCO_ROOT or ~/.cache/rtdetr-edge/coco).
        calib_cache_dir: preprocessed-batch cache (default ~/.cache/rtdetr-edge/calib-batches).
        no_calib_cache: do not cache preprocessed batches.
        calib_algorithm: auto (entropy2 or percentile, whichever scores better on held-out images),
            entropy2 (TensorRT's), percentile or max.
        calib_samples: activation values histogrammed per tensor and image (8192; 0: all).
        calib_tensors: int8 (the tensors INT8 layers read) or all (every float tensor).
        allow_download: fetch missing COCO files.
        int8_keep: extra node-name components to keep out of INT8.
        int8_sensitivity: measure layer groups and keep the worst in float until ``int8_target``.
        int8_target: required INT8 AP as a fraction of fp32 AP (0.99).
        trt_cache_versions: TensorRT versions to write native calibration caches for.
        check_images: held-out images for the accuracy check (100; 0 skips it).
        engine: TensorRT engine options when building engines from a bundle on the device.
    """

    precision: str = "fp32"
    top_k: int = 300
    raw_outputs: bool = False
    opset: int = 17
    verify: bool = True
    tolerance: float = 1e-4
    revision: str | None = None
    force: bool = False
    calib: str | None = None
    calib_size: int = 256
    calib_seed: int = 0
    calib_batch: int = 8
    calib_images: str | None = None
    coco_root: str | None = None
    calib_cache_dir: str | None = None
    no_calib_cache: bool = False
    calib_algorithm: str = "auto"
    calib_samples: int = 8192
    calib_tensors: str = "int8"
    allow_download: bool = True
    int8_keep: tuple[str, ...] = ()
    int8_sensitivity: bool = False
    int8_target: float = 0.99
    trt_cache_versions: tuple[str, ...] = DEFAULT_TRT_CACHE_VERSIONS
    check_images: int = 100
    engine: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.precision not in PRECISION_CHOICES:
            raise InputError(f"--precision {self.precision!r}: expected one of {', '.join(PRECISION_CHOICES)}")
        if self.top_k < 1:
            raise InputError(f"--top-k must be >= 1, got {self.top_k}")
        if self.precision == "int8" and not self.calib:
            raise InputError("--precision int8 needs --calib (coco_val, coco_train, a COCO json or an image folder)")
        if not 0 < self.int8_target <= 1:
            raise InputError(f"--int8-target must be in (0, 1], got {self.int8_target}")

    @property
    def precisions(self) -> list[str]:
        """Artifacts to make besides fp32."""
        if self.precision == "best":
            return ["fp16"] + (["int8"] if self.calib else [])
        return [] if self.precision == "fp32" else [self.precision]


def tool_versions() -> dict[str, str]:
    """Versions of the tools that shaped an artifact (recorded in metadata.json)."""
    out = {"rtdetr_edge": __version__, "python": platform.python_version()}
    for dist in ("torch", "transformers", "onnx", "onnxruntime", "onnxsim", "onnx-graphsurgeon", "numpy",
                 "opencv-python-headless", "onnxconverter-common"):
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
    """Build a bundle (see the module docstring).

    Args:
        model: hub id (``"PekingU/rtdetr_r18vd"``), ``save_pretrained`` folder, model object, or a
            bundle directory.
        out: bundle directory to create (for a bundle input it may be the bundle itself).
        options: see :class:`BuildOptions`.
        step: called with each stage's name (progress display).

    Returns:
        The bundle directory.
    """
    opts = options or BuildOptions()
    announce = step or (lambda name: None)
    if _is_bundle(model):
        return _from_bundle(Path(model), Path(out), opts, announce)
    out_path = check_out(out, opts.force)
    require("torch", "exporting a PyTorch model (on the host)")
    from .export import export_onnx

    t0 = time.perf_counter()
    result = export_onnx(model, top_k=opts.top_k, raw_outputs=opts.raw_outputs, opset=opts.opset,
                         verify_export=opts.verify, tolerance=opts.tolerance, revision=opts.revision, step=announce)
    verification = result.verification.to_dict() if result.verification else None
    with atomic.replacing_dir(out_path, overwrite=opts.force) as tmp:
        (tmp / "model.onnx").write_bytes(result.model.SerializeToString())
        metadata: dict[str, Any] = {
            "contract": result.contract.to_dict(),
            "artifacts": {"fp32": {"file": "model.onnx", "kind": "onnx", "precision": "fp32"}},
            "source": result.source, "versions": tool_versions(), "build_options": _options_dict(opts),
            "verification": verification,
        }
        report: dict[str, Any] = {"export": result.report, "verification": verification}
        _add_precisions(tmp, result.contract, metadata, report, opts, announce)
        report["total_s"] = round(time.perf_counter() - t0, 2)
        announce("write bundle")
        finalize_bundle(tmp, metadata, report)
    log.info("bundle written: %s", out_path)
    return out_path


def _options_dict(opts: BuildOptions) -> dict[str, Any]:
    d = asdict(opts)
    d["int8_keep"], d["trt_cache_versions"] = list(opts.int8_keep), list(opts.trt_cache_versions)
    return d


def _from_bundle(src: Path, out: Path, opts: BuildOptions, announce: Callable[[str], None]) -> Path:
    bundle = Bundle(src)
    if tensorrt_available():
        from .engine.cache import engine_for_bundle

        precision = opts.precision if opts.precision != "best" else (bundle.precisions[-1])
        announce(f"build TensorRT {precision} engine")
        if out.resolve() != src.resolve():
            raise InputError("--out must be the bundle itself when building engines into it on the device")
        engine = engine_for_bundle(bundle, precision, **opts.engine)
        log.info("engine: %s", engine)
        return src
    # no TensorRT here: add precisions to the bundle (torch-free)
    in_place = out.resolve() == src.resolve()
    if not in_place:
        check_out(out, opts.force)
    import json

    metadata = dict(bundle.metadata)
    report_path = src / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    t0 = time.perf_counter()
    with atomic.replacing_dir(out, overwrite=True) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        for key in ("format", "format_version", "created"):
            metadata.pop(key, None)
        _add_precisions(tmp, bundle.contract, metadata, report, opts, announce)
        report["added_s"] = round(time.perf_counter() - t0, 2)
        announce("write bundle")
        finalize_bundle(tmp, metadata, report)
    return out


def _add_precisions(tmp: Path, contract: ModelContract, metadata: dict[str, Any], report: dict[str, Any],
                    opts: BuildOptions, announce: Callable[[str], None]) -> None:
    """Write the FP16 and INT8 artifacts next to ``tmp/model.onnx`` and record them."""
    fp32 = tmp / metadata["artifacts"]["fp32"]["file"]
    artifacts = metadata["artifacts"]
    holdout: tuple[Any, list[int]] | None = None
    if "fp16" in opts.precisions:
        announce("fp16")
        from .calib.fp16 import write_fp16

        report["fp16"] = write_fp16(fp32, tmp / "model.fp16.onnx")
        artifacts["fp16"] = {"file": "model.fp16.onnx", "kind": "onnx", "precision": "fp16",
                             "kept_fp32": report["fp16"]["kept_fp32"]}
    if "int8" in opts.precisions:
        holdout = _add_int8(tmp, fp32, contract, artifacts, report, opts, announce)
    metadata["default_precision"] = opts.precision if opts.precision != "best" else (
        "int8" if "int8" in artifacts else "fp16")
    if opts.check_images and holdout is not None and len(opts.precisions):
        announce("accuracy check")
        report["accuracy"] = _accuracy(tmp, artifacts, holdout[0], holdout[1][: opts.check_images],
                                       contract.class_names)
        metadata["accuracy"] = report["accuracy"]
    if opts.check_images and opts.precisions:
        announce("polygraphy check")
        from .check import check_bundle_dir

        report["check"] = check_bundle_dir(tmp, metadata, opts.precisions, num_images=min(opts.check_images, 50),
                                           images_dir=opts.calib_images, coco_root=opts.coco_root)


def _add_int8(tmp: Path, fp32: Path, contract: ModelContract, artifacts: dict[str, Any], report: dict[str, Any],
              opts: BuildOptions, announce: Callable[[str], None]) -> tuple[Any, list[int]] | None:
    from .calib import CalibrationOptions, calibrate
    from .calib.qdq import DEFAULT_EXCLUDE, default_excluded_nodes, write_qdq
    from .calib.stream import default_cache_dir
    from .trt_cache import write_cache

    assert opts.calib is not None
    announce("calibrate")
    copts = CalibrationOptions(
        calib=opts.calib, size=opts.calib_size, seed=opts.calib_seed, batch_size=opts.calib_batch,
        coco_root=opts.coco_root, images_dir=opts.calib_images, algorithm=opts.calib_algorithm,
        cache_dir=None if opts.no_calib_cache else (opts.calib_cache_dir or str(default_cache_dir())),
        allow_download=opts.allow_download, holdout=max(opts.check_images, 200),
        samples_per_image=opts.calib_samples, scope=opts.calib_tensors)
    result = calibrate(fp32, contract, copts)
    import onnx

    patterns = dict(DEFAULT_EXCLUDE)
    patterns.update({k: "kept by --int8-keep" for k in opts.int8_keep})
    reasons = default_excluded_nodes(onnx.load(str(fp32), load_external_data=False), patterns)
    exclude = list(reasons)
    holdout = (result.source.dataset, result.holdout_ids) if result.source.dataset is not None and \
        result.holdout_ids else None
    choice, qrep = None, None
    if len(result.candidates) > 1:
        choice, qrep = _choose_ranges(fp32, result, holdout, exclude, contract.class_names, opts.check_images,
                                      tmp, announce)
    result.ranges.save(tmp / "calib" / "ranges.json")
    manifest = result.subset.manifest()
    manifest["skipped"] = result.skipped
    atomic.write_json(tmp / "calib" / "manifest.json", manifest)
    caches = {}
    for version in opts.trt_cache_versions:
        rel = f"calib/trt-{version}.cache"
        atomic.write_text(tmp / rel, write_cache(result.ranges.ranges, version))
        caches[version] = rel
    sens = None
    if opts.int8_sensitivity:
        if holdout is None:
            raise CalibrationError("--int8-sensitivity needs an annotated --calib source (COCO json or split) "
                                   "with images beyond the calibration subset")
        announce("int8 sensitivity")
        from .calib.sensitivity import sensitivity_search

        exclude, sens = sensitivity_search(fp32, result.ranges.ranges, holdout[0],
                                           holdout[1][: max(opts.check_images, 50)], exclude, opts.int8_target)
    if qrep is None or exclude != list(reasons):  # not written by the range choice, or sensitivity changed it
        announce("quantize (Q/DQ)")
        qrep = write_qdq(fp32, result.ranges.ranges, tmp / "model.int8.qdq.onnx", exclude)
    artifacts["int8"] = {
        "file": "model.int8.qdq.onnx", "kind": "onnx", "precision": "int8", "quantization": "qdq",
        "ranges": "calib/ranges.json", "manifest": "calib/manifest.json", "tensorrt_caches": caches,
        "excluded_nodes": exclude, "exclusion_reasons": {**reasons, **{n: "int8 sensitivity" for n in exclude
                                                                        if n not in reasons}},
    }
    report["calibration"] = {"source": opts.calib, "images": result.ranges.images, "tensors": len(result.ranges.ranges),
                             "coverage": result.subset.coverage, "seconds": result.seconds,
                             "skipped": len(result.skipped), "manifest_sha256": manifest["sha256"]}
    report["int8"] = qrep
    if choice is not None:
        report["calibration"]["algorithm_choice"] = choice
    if sens is not None:
        report["int8_sensitivity"] = sens
    return holdout


MIN_CHOICE_IMAGES = 20  # fewer held-out images than this cannot tell two range choices apart


def _choose_ranges(fp32: Path, result: Any, holdout: tuple[Any, list[int]] | None, exclude: list[str],
                   class_names: tuple[str, ...], check_images: int, tmp: Path,
                   announce: Callable[[str], None]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``--calib-algorithm auto``: keep the candidate ranges whose Q/DQ model scores best on held-out images.

    TensorRT's entropy thresholds clip hard (on the reference model, SiLU outputs to ~half their
    range) and can cost a few percent AP where a percentile range does not; which is better
    depends on the model, so it is measured. Ties and no held-out images keep entropy2.

    Returns:
        (the choice for report.json, the chosen Q/DQ model's report when it was measured: it is
        then already written as ``tmp/model.int8.qdq.onnx``, else None)
    """
    from .calib.qdq import write_qdq
    from .calib.sensitivity import average_precision
    from .data.coco import label_to_category

    if holdout is None:
        log.info("calibration: no held-out images to compare range algorithms on; keeping entropy2")
        return {"chosen": result.ranges.algorithm, "reason": "no held-out images"}, None
    try:
        label_to_category(class_names, holdout[0])
    except InputError as exc:  # calibration data need not share the model's classes
        log.info("calibration: keeping entropy2 ranges, held-out images cannot score this model: %s", exc)
        return {"chosen": result.ranges.algorithm, "reason": str(exc)}, None
    # images after the accuracy check's where there are enough, so that the check does not report
    # on what chose
    rest = holdout[1][check_images:]
    ids = rest if len(rest) >= 50 else holdout[1]
    if len(ids) < MIN_CHOICE_IMAGES:
        log.info("calibration: only %d held-out images; keeping entropy2 ranges", len(ids))
        reason = f"{len(ids)} held-out images (< {MIN_CHOICE_IMAGES})"
        return {"chosen": result.ranges.algorithm, "reason": reason}, None
    announce("choose calibration ranges")
    scores, reports = {}, {}
    for algorithm, ranges in result.candidates.items():
        path = tmp / f".candidate-{algorithm}.onnx"
        reports[algorithm] = write_qdq(fp32, ranges, path, exclude)
        scores[algorithm] = round(average_precision(path, holdout[0], ids), 4)
        log.info("calibration: %s ranges -> INT8 AP %.4f on %d held-out images", algorithm, scores[algorithm],
                 len(ids))
    chosen = max(scores, key=lambda a: (scores[a], a == "entropy2"))
    result.choose(chosen)
    for algorithm in scores:
        path = tmp / f".candidate-{algorithm}.onnx"
        if algorithm == chosen:
            path.replace(tmp / "model.int8.qdq.onnx")
        else:
            path.unlink()
    return {"chosen": chosen, "int8_ap": scores, "images": len(ids)}, reports[chosen]


def _accuracy(tmp: Path, artifacts: dict[str, Any], dataset: Any, image_ids: list[int],
              class_names: tuple[str, ...]) -> dict[str, Any]:
    """AP of every ONNX artifact on held-out images (disjoint from the calibration subset)."""
    from .data.coco import label_to_category
    from .evaluate.runner import evaluate

    out: dict[str, Any] = {"images": len(image_ids), "data": str(dataset.path)}
    try:
        label_to_category(class_names, dataset)
    except InputError as exc:  # calibration data need not share the model's classes; AP then means nothing
        log.warning("accuracy check skipped: %s", exc)
        return {**out, "skipped": str(exc)}
    for precision, art in artifacts.items():
        m = evaluate(tmp / art["file"], dataset.path, dataset.images_dir, image_ids=image_ids, progress=False,
                     backend="onnxruntime")
        out[precision] = {k: round(float(m[k]), 4) for k in ("AP", "AP50", "AP75", "APs", "APm", "APl")}
    if "fp32" in out:
        base = out["fp32"]["AP"]
        for precision in artifacts:
            if precision != "fp32" and base > 0:
                out[precision]["AP_vs_fp32"] = round(out[precision]["AP"] / base, 4)
    log.info("accuracy on %d held-out images: %s", len(image_ids),
             ", ".join(f"{p} AP {v['AP']:.3f}" for p, v in out.items() if isinstance(v, dict)))
    return out
