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
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Literal, get_args

from . import __version__, atomic
from ._optional import require
from .backends.options import check_choice
from .bundle import ENGINES, METADATA, Bundle, finalize_bundle
from .calib import CalibrationOptions, CalibrationResult
from .contract import ModelContract
from .data.coco import CocoDataset
from .errors import BundleError, CalibrationError, InputError, RtdetrEdgeError
from .export.options import ExportOptions

log = logging.getLogger("rtdetr_edge")

REPORT_PAGE = "report.html"  # the HTML report of a build that writes FP16 or INT8 (rtdetr_edge.report)

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
        from .trt_cache import version_code

        for version in self.trt_cache_versions:
            try:
                version_code(str(version))
            except RtdetrEdgeError as exc:
                raise InputError(f"--trt-cache-version {version}: {exc}") from None


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
        frame_sizes: camera frame sizes (width, height) to add frame-input artifacts for
            (``--frame-size``; default none): each precision's graph with the frame front
            prepended (uint8 BGR frames in, resize and scaling in the graph; ``rtdetr_edge.export.frames``).
    """

    precision: BuildPrecision = "fp32"
    force: bool = False
    export: ExportOptions = field(default_factory=ExportOptions)
    calibration: CalibrationOptions | None = None
    int8: Int8Options = field(default_factory=Int8Options)
    check_images: int = 100
    frame_sizes: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        check_choice(self.precision, PRECISION_CHOICES, "--precision")
        sizes = []
        for size in self.frame_sizes:
            if (
                not isinstance(size, (tuple, list))
                or len(size) != 2
                or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in size)
            ):
                raise InputError(f"--frame-size: expected (width, height) integers >= 1, got {size!r}")
            sizes.append((int(size[0]), int(size[1])))
        object.__setattr__(self, "frame_sizes", tuple(dict.fromkeys(sizes)))
        if self.precision == "int8" and self.calibration is None:
            raise InputError("--precision int8 needs --calib (coco_val, coco_train, a COCO json or an image folder)")
        if isinstance(self.check_images, bool) or not isinstance(self.check_images, int) or self.check_images < 0:
            raise InputError(f"--check-images: expected an integer >= 0, got {self.check_images!r}")

    @property
    def precisions(self) -> list[str]:
        """Artifacts to make besides fp32."""
        if self.precision == "best":
            return ["fp16"] + (["int8"] if self.calibration else [])
        if self.precision == "int8":  # FP16 is the default when INT8 fails its check
            return ["fp16", "int8"]
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


def check_out(out: str | Path, force: bool, inputs: Iterable[str | Path | None] = ()) -> Path:
    """Fail before any work if ``--out`` cannot be the bundle folder; the one ``--out`` policy.

    ``out`` must not be, contain or lie inside one of ``inputs`` (the model folder, the
    calibration source); it must be new or empty, or, with ``force``, one of our bundles
    (``--force`` never deletes a folder that is not a bundle); and it must be writable.
    """
    atomic.refuse_overlap(out, inputs, "--out")
    path = atomic.check_writable_dir(out, "--out")
    atomic.check_replaceable(out, force, "--out")
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
    check_revision(model, opts.export.revision)
    if is_bundle(model):
        raise InputError(
            f"--model {model}: is already a bundle; add precisions to it with add_precisions() "
            "(rtdetr-build does that for a bundle), build engines with rtdetr-engine"
        )
    out_path = check_out(out, opts.force)
    check_inputs(opts)  # seconds now, not after minutes of export
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
        _add_precisions(tmp, out_path.resolve().name, result.contract, metadata, report, opts, announce)
        _add_frames(tmp, result.contract, metadata, report, opts.frame_sizes, announce)
        _record_tensorrt_ops(tmp, metadata, report)
        report["total_s"] = round(time.perf_counter() - t0, 2)
        announce("write bundle")
        meta = finalize_bundle(tmp, metadata, report)
        keep_what_is_not_ours(out_path, tmp, meta)
    log.info("bundle written: %s", out_path)
    return out_path


# what a build writes at the top of a bundle besides the artifacts metadata.json lists
BUILD_OUTPUTS = frozenset({METADATA, "report.json", REPORT_PAGE, "calib"})


def keep_what_is_not_ours(old: Path, new: Path, metadata: dict[str, Any]) -> None:
    """``--force`` replaces only what a build writes: copy the rest of the bundle ``old`` into ``new``.

    A build writes ``metadata.json``, ``report.json``, ``calib/`` and the artifact files that
    ``metadata.json`` lists (the old bundle's artifacts too: a rebuild replaces them). Everything
    else (a user's notes, ``engines/``) is kept, and said so; engines built from an ONNX that the
    new bundle no longer has would run the old model, so those are left out, and said so.
    """
    if not old.is_dir():
        return
    from .engine_format import load_sidecar, sidecar_path

    ours = set(BUILD_OUTPUTS)
    with contextlib.suppress(RtdetrEdgeError, OSError, ValueError):
        for art in Bundle(old, verify_hashes="never").artifacts.values():
            for entry in [art, *(art.get("frames") or {}).values()]:
                ours.update(str(entry[k]).split("/")[0] for k in ("file", "trt8_file") if entry.get(k))
    kept: list[str] = []
    for entry in sorted(old.iterdir()):
        if entry.name in ours or (new / entry.name).exists():
            continue
        if entry.name == ENGINES and entry.is_dir():
            hashes = {
                str(e.get(k))
                for a in metadata["artifacts"].values()
                for e in [a, *(a.get("frames") or {}).values()]
                for k in ("sha256", "trt8_sha256")
                if e.get(k)
            }
            stale: list[str] = []
            (new / ENGINES).mkdir()
            for item in sorted(entry.iterdir()):
                engine = item if item.suffix == ".engine" else item.with_suffix(".engine")
                if engine.is_file() and item in (engine, sidecar_path(engine)):
                    try:
                        meta = load_sidecar(engine)
                    except RtdetrEdgeError:
                        meta = None
                    if meta is None or meta.onnx_sha256 not in hashes:
                        if item == engine:
                            stale.append(item.name)
                        continue
                _copy(item, new / ENGINES / item.name)
            if stale:
                log.warning(
                    "--force: left out %d TensorRT engine(s) of %s built from an ONNX this build replaced "
                    "(they would run the old model): %s; rtdetr-engine builds new ones",
                    len(stale),
                    old,
                    ", ".join(stale),
                )
            kept.append(f"{ENGINES}/ ({len(list((new / ENGINES).iterdir()))} of {len(list(entry.iterdir()))} files)")
            continue
        _copy(entry, new / entry.name)
        kept.append(entry.name + ("/" if entry.is_dir() else ""))
    if kept:
        log.warning("--force: kept what the build does not write in %s: %s", old, ", ".join(kept))


def _copy(src: Path, dst: Path) -> None:
    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dst, symlinks=True)
    else:
        shutil.copy2(src, dst, follow_symlinks=False)


def check_inputs(opts: BuildOptions) -> None:
    """Before any work: the calibration source opens and has enough images (for int8)."""
    if opts.calibration is not None and "int8" in opts.precisions:
        from .calib import check_source

        check_source(opts.calibration)


def check_revision(model: Any, revision: str | None) -> None:
    """``--revision`` names a hub revision: with a local folder or a bundle it would be ignored."""
    if revision is not None and isinstance(model, (str, Path)) and Path(model).exists():
        raise InputError(
            f"--revision {revision}: --model {model} is a local folder, not a hub id; a revision applies "
            "only to models downloaded from the Hugging Face hub"
        )


def options_record(opts: BuildOptions) -> dict[str, Any]:
    """The options as recorded in ``metadata.json`` (nested like the dataclasses)."""
    return json.loads(json.dumps(asdict(opts)))


def add_precisions(
    bundle_dir: str | Path, out: str | Path, options: BuildOptions, step: Callable[[str], None] | None = None
) -> Path:
    """Add ``options``' precisions to an existing bundle (torch-free), in place or as a new bundle ``out``."""
    src, out_path = Path(bundle_dir), Path(out)
    check_revision(src, options.export.revision)
    bundle = Bundle(src)
    # what is added is derived from these files: a swapped or damaged one must not be re-hashed
    # into the new metadata as if the build had made it
    bundle.verify()
    _check_fp32_contract(bundle)
    check_inputs(options)
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
        if options.precisions or not options.frame_sizes:
            _add_precisions(tmp, out_path.resolve().name, bundle.contract, metadata, report, options, announce)
        # frame artifacts for every precision the bundle now has, at the sizes it had and the new ones
        sizes = {s for p in metadata["artifacts"] for s in _frame_sizes(metadata, p)}
        _add_frames(tmp, bundle.contract, metadata, report, tuple(sorted(sizes)) + options.frame_sizes, announce)
        _record_tensorrt_ops(tmp, metadata, report)
        report["added_s"] = round(time.perf_counter() - t0, 2)
        announce("write bundle")
        meta = finalize_bundle(tmp, metadata, report)
        if out_path.resolve() != src.resolve():
            keep_what_is_not_ours(out_path, tmp, meta)
    return out_path


def _check_fp32_contract(bundle: Bundle) -> None:
    """``metadata.json``'s contract is the one inside the fp32 ONNX (what every new artifact copies)."""
    import onnx

    from .contract import METADATA_KEY, check_same_contract

    path = bundle.onnx_path("fp32")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf DecodeError and friends: an unreadable file
        raise BundleError(f"{path}: cannot read the fp32 ONNX ({type(exc).__name__}: {exc})") from None
    text = {p.key: p.value for p in model.metadata_props}.get(METADATA_KEY)
    if text:
        check_same_contract(bundle.contract, text, str(bundle.path / METADATA), str(path))


def _frame_sizes(metadata: dict[str, Any], precision: str) -> list[tuple[int, int]]:
    frames = (metadata["artifacts"].get(precision) or {}).get("frames") or {}
    return [(int(f["frame"]["width"]), int(f["frame"]["height"])) for f in frames.values()]


def _add_frames(
    tmp: Path,
    contract: ModelContract,
    metadata: dict[str, Any],
    report: dict[str, Any],
    sizes: tuple[tuple[int, int], ...],
    announce: Callable[[str], None],
) -> None:
    """Frame-input artifacts (``--frame-size``) for each precision in ``metadata``, torch-free."""
    if not sizes:
        return
    from .export.frames import write_frame_artifacts

    sizes = tuple(dict.fromkeys(sizes))
    announce(f"frame inputs {', '.join(f'{w}x{h}' for w, h in sizes)}")
    report["frames"] = write_frame_artifacts(tmp, metadata["artifacts"], contract, sizes)


def _record_tensorrt_ops(tmp: Path, metadata: dict[str, Any], report: dict[str, Any]) -> None:
    """``report["tensorrt_ops"]``: each ONNX artifact's static TensorRT parser op check; one warning per faulty one.

    Never fatal: the check reads the parser's documented op matrix, it is not a TensorRT parse.
    """
    from .export.trt_ops import artifact_op_faults

    report["tensorrt_ops"] = checks = artifact_op_faults(tmp, metadata["artifacts"])
    for name, faults in checks.items():
        found = [f"TensorRT {line}: {'; '.join(f)}" for line, f in faults.items() if f]
        if found:
            log.warning(
                "%s: the TensorRT ONNX parser's op matrix refuses it (static check): %s", name, " | ".join(found)
            )


# Held-out images that make decisions (range algorithm, sensitivity search): the ones after the
# accuracy report's, so that what chose is never what reports (three disjoint sets with the
# calibration subset).
CHOICE_IMAGES = 100
MIN_INT8_SHARE = 0.85  # --precision best keeps INT8 only when at least this share of MACs is INT8


@dataclass(frozen=True)
class HeldOut:
    """The calibration source's annotated images outside the calibration subset, split by use."""

    dataset: CocoDataset
    report: list[int]  # accuracy report and check
    choice: list[int]  # range choice and sensitivity search


def _add_precisions(
    tmp: Path,
    name: str,
    contract: ModelContract,
    metadata: dict[str, Any],
    report: dict[str, Any],
    opts: BuildOptions,
    announce: Callable[[str], None],
) -> None:
    """Write the FP16 and INT8 artifacts next to ``tmp/model.onnx``, check them, choose the default,
    write the report page (``name``: the bundle's folder name, its title)."""
    fp32 = tmp / metadata["artifacts"]["fp32"]["file"]
    artifacts = metadata["artifacts"]
    held: HeldOut | None = None
    plan = None
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
        held, plan = _add_int8(tmp, fp32, contract, artifacts, report, opts, announce)
    if opts.check_images and held is not None and held.report and opts.precisions:
        announce("accuracy check")
        from .evaluate.accuracy import artifact_accuracy

        report["accuracy"] = artifact_accuracy(tmp, artifacts, held.dataset, held.report, contract.class_names)
        report["accuracy"]["image_sets"] = _image_sets(report, held)
        metadata["accuracy"] = report["accuracy"]
    checks: list[Any] = []
    if opts.check_images and opts.precisions:
        announce("polygraphy check")
        from .check import check_bundle_dir

        calib = opts.calibration
        report["check"] = check_bundle_dir(
            tmp,
            metadata,
            opts.precisions,
            num_images=opts.check_images,
            images_dir=calib.images_dir if calib else None,
            coco_root=calib.coco_root if calib else None,
            keep=checks,
        )
    chosen, why = default_precision(opts, artifacts, report.get("check"), report.get("accuracy"), plan)
    metadata["default_precision"] = chosen
    report["default_precision"] = {"chosen": chosen, "reason": why}
    if opts.precisions:
        announce("report page")
        _write_report_page(tmp, name, metadata, report, plan, checks)


def _write_report_page(
    tmp: Path, name: str, metadata: dict[str, Any], report: dict[str, Any], plan: Any, checks: list[Any]
) -> None:
    """``report.html`` (:mod:`rtdetr_edge.report`); its time in ``report["report_page_s"]``. Without the
    ``check`` extra's matplotlib: one warning, no page (as the check without Polygraphy)."""
    from ._optional import available

    if not available("matplotlib"):
        log.warning('%s not written: matplotlib missing (pip install "rtdetr-edge[check]")', REPORT_PAGE)
        return
    from .report import ReportInputs, write_report

    t0 = time.perf_counter()
    skipped = (report.get("check") or {}).get("skipped") or (
        None if checks else "the build ran no check (--check-images 0)"
    )
    write_report(tmp / REPORT_PAGE, ReportInputs(name, metadata, report, plan, tuple(checks), skipped))
    report["report_page_s"] = round(time.perf_counter() - t0, 2)


def _image_sets(report: dict[str, Any], held: HeldOut) -> dict[str, int]:
    calibration = report.get("calibration", {})
    return {
        "calibration": int(calibration.get("images", 0)),
        "range_choice": len(held.choice),
        "accuracy": len(held.report),
    }


def default_precision(
    opts: BuildOptions,
    artifacts: dict[str, Any],
    check: dict[str, Any] | None,
    accuracy: dict[str, Any] | None,
    plan: Any,
) -> tuple[str, str]:
    """(the bundle's default precision, why): int8 only when its check passed (and, for ``best``,
    when it is accurate and substantially INT8), else fp16, with one warning naming what failed."""
    if opts.precision in ("fp32", "fp16"):
        return opts.precision, "requested"
    if "int8" not in artifacts:
        return "fp16", "no int8 artifact (best without --calib)"
    failed: list[str] = []
    int8_check = (check or {}).get("int8")
    if int8_check is None:
        why = (check or {}).get("skipped") or "--check-images 0"
        failed.append(f"the INT8 check did not run ({why})")
    elif not int8_check.get("passed"):
        failed += [f"check: {f}" for f in int8_check.get("failures", [])] or ["check failed"]
    if opts.precision == "best":
        failed += _accuracy_failures(opts.int8.target, int8_check, accuracy)
        share = plan.shares()["int8"] if plan is not None else 0.0
        if share < MIN_INT8_SHARE:
            failed.append(
                f"only {100 * share:.1f}% of MACs in INT8 (< {100 * MIN_INT8_SHARE:g}%: little faster than FP16)"
            )
    if failed:
        log.warning("default precision fp16, not int8: %s", "; ".join(failed))
        return "fp16", "int8 not kept: " + "; ".join(failed)
    return "int8", "INT8 passed its check" + (
        ", is accurate and substantially INT8" if opts.precision == "best" else ""
    )


def _accuracy_failures(target: float, int8_check: dict[str, Any] | None, accuracy: dict[str, Any] | None) -> list[str]:
    """``best``'s accuracy criterion: INT8 AP / fp32 AP on the held-out annotations reaches ``target``.

    Judged like the check's criteria (:mod:`rtdetr_edge.check.verdict`): on the check's bootstrap
    interval of that ratio over its images where it has one, failing only when the interval's upper
    bound is below ``target`` (a point ratio over a hundred images moves by about 1 % with the
    calibration seed); else on the accuracy report's point ratio.
    """
    from .check.detections import AP_RATIO

    interval = (((int8_check or {}).get("detections") or {}).get("intervals") or {}).get(AP_RATIO)
    if interval is not None:
        value, high = float(interval["value"]), float(interval["high"])
        if high < target:
            return [f"INT8 AP {value:.4f} x fp32 (95% CI upper bound {high:.4f}) < --int8-target {target:g}"]
        if value < target:
            log.warning(
                "INT8 AP %.4f x fp32 is below --int8-target %g, but its 95%% CI over the check's images reaches "
                "it (upper bound %.4f): not confidently worse, so INT8 is not refused on accuracy",
                value,
                target,
                high,
            )
        return []
    ratio = ((accuracy or {}).get("int8") or {}).get("AP_vs_fp32")
    if ratio is None:
        return ["no held-out AP to judge INT8 by (an annotated --calib source is needed)"]
    if ratio < target:
        return [f"INT8 AP {ratio:.4f} x fp32 < --int8-target {target:g}"]
    return []


def _add_int8(
    tmp: Path,
    fp32: Path,
    contract: ModelContract,
    artifacts: dict[str, Any],
    report: dict[str, Any],
    opts: BuildOptions,
    announce: Callable[[str], None],
) -> tuple[HeldOut | None, Any]:
    import dataclasses

    import onnx

    from .calib import calibrate
    from .calib.choice import choose_ranges
    from .calib.int8 import INT8_FILE, INT8_TRT8_FILE, int8_nodes, write_int8
    from .calib.plan import make_plan, node_macs
    from .calib.qdq import DEFAULT_EXCLUDE, default_excluded_nodes
    from .trt_cache import write_cache

    if opts.calibration is None:
        raise InputError("int8 needs calibration options (--calib)")
    copts = dataclasses.replace(opts.calibration, holdout=opts.check_images + CHOICE_IMAGES)
    result: CalibrationResult = calibrate(fp32, contract, copts, step=announce)
    model = onnx.load(str(fp32), load_external_data=False)
    patterns = dict(DEFAULT_EXCLUDE)
    patterns.update(dict.fromkeys(opts.int8.keep, "kept by --int8-keep"))
    reasons = default_excluded_nodes(model, patterns)
    kept = {n: (why, "user flag" if why == "kept by --int8-keep" else "default rule") for n, why in reasons.items()}
    exclude = list(reasons)
    held = (
        HeldOut(
            result.source.dataset,
            result.holdout_ids[: opts.check_images],
            result.holdout_ids[opts.check_images : opts.check_images + CHOICE_IMAGES],
        )
        if result.source.dataset is not None and result.holdout_ids
        else None
    )
    choice, qrep = None, None
    if len(result.candidates) > 1:
        choice, qrep = choose_ranges(
            fp32,
            result,
            (held.dataset, held.choice) if held is not None else None,
            exclude,
            contract.class_names,
            tmp,
            announce,
        )
    result.ranges.save(tmp / "calib" / "ranges.json")
    manifest = result.subset.manifest()
    manifest["skipped"] = result.skipped
    if held is not None:  # decided on, so never reported on (rtdetr-check leaves them out too)
        files = dict(result.source.images)
        manifest["decision_images"] = [{"id": i, "file": str(files[i])} for i in held.choice]
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
        if held is None or not held.choice:
            raise CalibrationError(
                "--int8-sensitivity needs an annotated --calib source (COCO json or split) "
                "with images beyond the calibration subset and the accuracy report's --check-images"
            )
        announce("int8 sensitivity")
        from .calib.sensitivity import sensitivity_search

        exclude, sens = sensitivity_search(
            fp32, result.ranges.ranges, held.dataset, held.choice, exclude, opts.int8.target
        )
        kept.update(
            {n: ("kept in float by the sensitivity search", "sensitivity search") for n in exclude if n not in kept}
        )
    if qrep is None or exclude != list(reasons):  # not written by the range choice, or sensitivity changed it
        announce("quantize (Q/DQ)")
        qrep = write_int8(fp32, result.ranges.ranges, tmp / INT8_FILE, exclude, tmp / INT8_TRT8_FILE)
    macs = node_macs(fp32, (contract.preprocessing.height, contract.preprocessing.width))
    plan = make_plan(
        model, int8_nodes(model, exclude), kept, macs, (contract.preprocessing.height, contract.preprocessing.width)
    )
    plan.save(tmp / "calib" / "plan.json")
    log.debug("%s", plan.table())
    artifacts["int8"] = {
        "file": INT8_FILE,
        "trt8_file": INT8_TRT8_FILE,
        "kind": "onnx",
        "precision": "int8",
        "quantization": "qdq",
        "ranges": "calib/ranges.json",
        "manifest": "calib/manifest.json",
        "plan": "calib/plan.json",
        "mac_shares": {k: round(v, 4) for k, v in plan.shares().items()},
        "tensorrt_caches": caches,
        "excluded_nodes": exclude,
        "exclusion_reasons": {n: why for n, (why, _) in kept.items() if n in set(exclude)},
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
    report["int8_plan"] = {"mac_shares": plan.shares(), "total_macs": plan.total_macs}
    if choice is not None:
        report["calibration"]["algorithm_choice"] = choice
    if sens is not None:
        report["int8_sensitivity"] = sens
    return held, plan
