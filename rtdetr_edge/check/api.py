"""``run_check`` / ``run_checks``: everything ``rtdetr-check`` does, as Python; ``check_bundle_dir`` for builds."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..bundle import Bundle
from ..contract import ModelContract
from ..data.coco import label_to_category
from ..engine_recipe import EngineBuildOptions
from ..errors import InputError, RtdetrEdgeError
from ..onnx_facts import read_onnx_facts
from ._polygraphy import polygraphy
from .compare import (
    COMPARED,
    canonical,
    compare_tensors,
    onnxrt_runner,
    run,
    save_inputs,
    save_run_results,
    tolerances_for,
)
from .data import DEFAULT_NUM_IMAGES, CheckDataLoader, ImageSource, resolve_images
from .detections import (
    DEFAULT_CONF,
    DEFAULT_THRESHOLDS,
    DetectionThresholds,
    GroundTruth,
    agreement,
    detections_from_outputs,
)
from .layerwise import DEFAULT_LAYER_TOLERANCE, DEFAULT_LAYERWISE_IMAGES, compare_layers, polygraphy_commands
from .models import ModelSpec, check_tensors, resolve_model
from .noise import measure_fp32_noise
from .pairs import ImagePairs
from .queries import DEFAULT_MAX_UNMATCHED
from .report import CheckReport
from .verdict import (
    DETECTION_NOISE_FACTOR,
    GATE_QUANTILE,
    MIN_REPORT_IMAGES,
    NOISE_FACTOR,
    RESAMPLES_BY_PRECISION,
)

log = logging.getLogger("rtdetr_edge")


@dataclass
class CheckOptions:
    """How to check (the CLI's flags; defaults in brackets).

    Attributes:
        reference: ``fp32`` [default], ``fp16``, ``int8`` or an ``.onnx``; always ONNX Runtime (CPU).
        data: folder, COCO json, ``coco_val``/``coco_train``, ``synthetic``; None: the bundle's
            held-out calibration source, else generated scenes (see :mod:`rtdetr_edge.check.data`).
        num_images: images to run [100].
        images_dir: image folder of a COCO json [next to it].
        coco_root: COCO 2017 root for ``coco_val``/``coco_train``.
        atol, rtol: override the default tolerances: one number for every output, or
            ``{"post/probs": 0.02, ...}`` (see :mod:`rtdetr_edge.check.compare`).
        tolerances: whose defaults (tolerances, thresholds) apply [the candidate's precision].
        max_unmatched: fraction of the foreground query rows allowed to have no counterpart
            (another query selected at the boundary), left out of the element-wise check [fp32
            0.01, fp16 0.01, int8 0.02; see :mod:`rtdetr_edge.check.queries`].
        conf: confidence threshold [0.3, the Detector's]: the reference's detections at it are the
            detection level's pseudo ground truth, and the element-wise check compares only the
            query rows whose highest class probability (and the ``scores`` entries) reach it.
        thresholds: detection-level pass criteria [by precision, see :mod:`~rtdetr_edge.check.detections`].
        layerwise: also compare every tensor and name the first that diverge [False].
        layer_tolerance: relative error for ``layerwise`` [by precision].
        layerwise_images: images for ``layerwise`` [1].
        runner: candidate runner: ``auto`` [TensorRT where it imports, else ONNX Runtime],
            ``onnxruntime`` or ``tensorrt``.
        save_outputs: directory for Polygraphy JSON: ``outputs.json`` (RunResults, canonical
            names), ``inputs.json`` (the fed tensors), ``layerwise-<candidate>.json``.
        engine: how TensorRT engines are built for TensorRT candidates.
    """

    reference: str = "fp32"
    data: str | None = None
    num_images: int = DEFAULT_NUM_IMAGES
    images_dir: str | None = None
    coco_root: str | None = None
    atol: float | Mapping[str, float] | None = None
    rtol: float | Mapping[str, float] | None = None
    tolerances: str | None = None
    max_unmatched: float | None = None
    conf: float = DEFAULT_CONF
    thresholds: DetectionThresholds | None = None
    layerwise: bool = False
    layer_tolerance: float | None = None
    layerwise_images: int = DEFAULT_LAYERWISE_IMAGES
    runner: str = "auto"
    save_outputs: str | None = None
    engine: EngineBuildOptions = field(default_factory=EngineBuildOptions)

    def __post_init__(self) -> None:
        if not 0.0 <= self.conf <= 1.0:
            raise InputError(f"--conf must be in [0, 1], got {self.conf}")
        if self.layerwise_images < 1:
            raise InputError(f"--layerwise-images must be >= 1, got {self.layerwise_images}")
        if self.max_unmatched is not None and not 0.0 <= self.max_unmatched <= 1.0:
            raise InputError(f"--max-unmatched must be in [0, 1], got {self.max_unmatched}")
        if self.layer_tolerance is not None and not self.layer_tolerance > 0:
            raise InputError(f"--layer-tolerance must be > 0, got {self.layer_tolerance}")


def run_check(
    bundle: Bundle | str | os.PathLike[str], candidate: str | None = None, options: CheckOptions | None = None
) -> CheckReport:
    """Check one candidate of ``bundle`` against its reference; see :func:`run_checks`.

    Example:
        >>> report = run_check("build/shapes", "int8", CheckOptions(data="data/test/annotations.json"))
        >>> report.passed, report.detections.ap
    """
    return run_checks(bundle, [candidate] if candidate else None, options)[0]


def _versions() -> dict[str, str]:
    import onnxruntime

    pg: Any = polygraphy()
    return {"rtdetr_edge": __version__, "polygraphy": str(pg.__version__), "onnxruntime": onnxruntime.__version__}


def _outputs_of(model: ModelSpec, contract: ModelContract) -> tuple[list[str], dict[str, str]]:
    """(tensors to mark, tensor -> canonical name) for an ONNX model that has the bundle's I/O (:func:`check_io`)."""
    tensors = check_tensors(model.path)
    outputs = list(read_onnx_facts(model.path).outputs)
    return list(dict.fromkeys(list(tensors.values()) + outputs)), {v: k for k, v in tensors.items()}


def check_io(model: ModelSpec, contract: ModelContract) -> None:
    """Raise a one-line :class:`InputError` unless ``model``'s graph has the bundle contract's input and outputs.

    The input must be the contract's (its name, and ``[N,3,H,W]`` of the bundle's preprocessing
    where the graph fixes those dims) and the only one; every contract output must be there (more
    are allowed). Any ONNX that passes can be compared, a graph exported or rewritten elsewhere
    included.
    """
    facts = read_onnx_facts(model.path)
    pre = contract.preprocessing
    wrong: list[str] = []
    if contract.input_name not in facts.inputs:
        wrong.append(f"no input {contract.input_name!r}")
    else:
        dims = facts.inputs[contract.input_name]
        want = (3, pre.height, pre.width)
        if len(dims) != 4 or any(d > 0 and d != w for d, w in zip(dims[1:], want)):
            wrong.append(f"input {contract.input_name!r} is {list(dims)}")
    extra_inputs = [n for n in facts.inputs if n != contract.input_name]
    if extra_inputs:
        wrong.append(f"other inputs {', '.join(map(repr, extra_inputs))}")
    missing = [n for n in contract.output_names if n not in facts.outputs]
    if missing:
        wrong.append(f"outputs {', '.join(facts.outputs) or 'none'} lack {', '.join(missing)}")
    if wrong:
        raise InputError(
            f"--{model.role} {model.path}: not the bundle's I/O ({'; '.join(wrong)}); expected input "
            f"{contract.input_name!r} [N,3,{pre.height},{pre.width}] and outputs {', '.join(contract.output_names)}"
        )


def run_checks(
    bundle: Bundle | str | os.PathLike[str],
    candidates: Sequence[str] | None = None,
    options: CheckOptions | None = None,
) -> list[CheckReport]:
    """Compare candidates with the reference on the same images, with Polygraphy.

    The reference runs once; each candidate is compared element-wise (pre-top-k tensors, per-output
    tolerances), at detection level (our postprocessing; AP against the reference's detections,
    IoU, score drift, label flips) and optionally layer by layer.

    Args:
        bundle: bundle directory (or an open :class:`~rtdetr_edge.bundle.Bundle`).
        candidates: ``fp16``, ``int8``, ``fp32`` or paths (``.onnx``, TensorRT engines); default:
            every precision of the bundle other than the reference (the reference itself if none).
        options: :class:`CheckOptions` (default: all defaults).

    Returns:
        One :class:`CheckReport` per candidate. Being outside tolerance is a failed report, not an
        exception; bad arguments, data or files raise :class:`~rtdetr_edge.errors.RtdetrEdgeError`.
    """
    opts = options or CheckOptions()
    t0 = time.perf_counter()
    files = bundle if isinstance(bundle, Bundle) else Bundle(bundle)
    contract = files.contract
    reference = resolve_model(files, opts.reference, "reference")
    names = (
        list(candidates) if candidates else ([p for p in files.precisions if p != opts.reference] or [opts.reference])
    )
    specs = [resolve_model(files, c, "candidate", opts.runner, opts.tolerances) for c in names]
    if len({s.name for s in specs}) != len(specs):
        raise InputError(f"--candidate: the same candidate is named twice ({', '.join(names)})")
    for model in [reference, *specs]:  # any ONNX with the bundle's I/O can be compared; others fail here, early
        if model.kind == "onnx":
            check_io(model, contract)
    tol = {s.name: tolerances_for(s.precision, opts.atol, opts.rtol) for s in specs}  # bad overrides fail early
    source = resolve_images(opts.data, files, opts.num_images, opts.images_dir, opts.coco_root)
    loader = CheckDataLoader(source, contract)
    feeds: list[OrderedDict[str, np.ndarray]] = list(loader)
    if not feeds:
        raise InputError(f"{source.spec}: none of the {len(source)} images could be read ({loader.skipped[:2]})")
    log.info("check: %s", source.description)
    data = source.to_dict() | {"images": len(feeds), "skipped": list(loader.skipped)}

    contract_outputs = list(contract.output_names)
    ref_outputs, ref_renames = _outputs_of(reference, contract)
    runners = [onnxrt_runner(reference, ref_outputs)]
    renames = {reference.name: ref_renames}
    notes: dict[str, list[str]] = {s.name: [] for s in specs}
    with tempfile.TemporaryDirectory(prefix="rtdetr-check-") as work:
        for spec in specs:
            if spec.runner == "tensorrt":
                from ._trt import trt_runner

                runner, renames[spec.name], note = trt_runner(spec, files, Path(work), opts.engine)
                notes[spec.name].append(note)
            else:
                outputs, renames[spec.name] = _outputs_of(spec, contract)
                runner = onnxrt_runner(spec, outputs)
            runners.append(runner)
        log.info("check: running %s on %d images", ", ".join(r.name for r in runners), len(feeds))
        results = canonical(run(runners, feeds, ", ".join(r.name for r in runners)), renames)

    saved: dict[str, str] = {}
    if opts.save_outputs:
        out_dir = Path(opts.save_outputs)
        saved["outputs"] = str(save_run_results(results, out_dir / "outputs.json"))
        saved["inputs"] = str(save_inputs(feeds, out_dir / "inputs.json"))
    ref_iters = list(results[reference.name])
    ref_dets = detections_from_outputs(ref_iters, loader.sizes, contract)
    truth = ground_truth(source, loader.fed, contract.class_names)
    noise = None
    if any(NOISE_FACTOR[s.precision] > 0 for s in specs):
        noise = measure_fp32_noise(
            reference, (ref_outputs, ref_renames), feeds, results, ref_dets, loader.sizes, contract, truth, opts.conf
        )
        data["fp32_noise"] = noise.to_dict()
    versions = _versions()
    reports = []
    for spec in specs:
        max_unmatched = DEFAULT_MAX_UNMATCHED[spec.precision] if opts.max_unmatched is None else opts.max_unmatched
        factor = NOISE_FACTOR[spec.precision]
        tolerances = noise.tolerances(tol[spec.name], factor, _fixed(opts)) if noise else tol[spec.name]
        gate = GATE_QUANTILE[spec.precision]
        tensors = compare_tensors(results, reference.name, spec.name, tolerances, max_unmatched, opts.conf, gate)
        if noise:
            noise.annotate(tensors, tol[spec.name], factor, _fixed(opts))
        cand_dets = detections_from_outputs(list(results[spec.name]), loader.sizes, contract)
        thresholds = opts.thresholds or DEFAULT_THRESHOLDS[spec.precision]
        dets = agreement(
            ref_dets,
            cand_dets,
            loader.sizes,
            thresholds,
            opts.conf,
            noise.detections if noise and opts.thresholds is None else None,
            DETECTION_NOISE_FACTOR[spec.precision],
            truth,
            RESAMPLES_BY_PRECISION[spec.precision],
        )
        dtype_notes = _dtype_notes(ref_iters[0], results[spec.name][0], contract_outputs)
        report = CheckReport(
            str(files.path),
            reference,
            spec,
            data,
            tensors,
            dets,
            notes=notes[spec.name] + dtype_notes,
            saved=dict(saved),
            versions=versions,
            pairs=ImagePairs(source, contract, list(loader.names), list(loader.sizes), ref_dets, cand_dets, opts.conf),
        )
        if opts.layerwise:
            report.layerwise = _layerwise(
                reference, spec, feeds[: opts.layerwise_images], opts, tol[spec.name], saved.get("inputs"), report
            )
        report.seconds = time.perf_counter() - t0
        reports.append(report)
    return reports


def _fixed(opts: CheckOptions) -> set[str]:
    """Outputs whose atol the user set (``--atol``): those are not moved by fp32's noise."""
    if opts.atol is None:
        return set()
    return set(opts.atol) if isinstance(opts.atol, Mapping) else set(COMPARED)


def ground_truth(source: ImageSource, fed: Sequence[int], class_names: Sequence[str]) -> GroundTruth | None:
    """The annotations of the fed images of a COCO source whose categories the model knows (else None)."""
    if source.dataset is None or not source.image_ids:
        return None
    try:
        label_map = label_to_category(tuple(class_names), source.dataset)
    except InputError:
        return None
    boxes, categories = [], []
    for index in fed:
        xywh, cats = source.dataset.targets(source.image_ids[index])
        xyxy = xywh.astype(np.float64)
        xyxy[:, 2:] += xyxy[:, :2]
        boxes.append(xyxy)
        categories.append(cats)
    if not any(len(c) for c in categories):
        return None
    return GroundTruth(boxes, categories, label_map)


def _dtype_notes(ref: Any, cand: Any, names: Sequence[str]) -> list[str]:
    """Outputs whose dtype differs from the reference's (the contract promises the reference's)."""
    notes = []
    for name in names:
        if name in ref and name in cand:
            a, b = np.asarray(ref[name]).dtype, np.asarray(cand[name]).dtype
            if a != b:
                notes.append(f"output {name} is {b} in the candidate but {a} in the reference (contract: {a})")
    return notes


def _layerwise(
    reference: ModelSpec,
    spec: ModelSpec,
    feeds: list[OrderedDict[str, np.ndarray]],
    opts: CheckOptions,
    tolerances: Any,
    inputs_json: str | None,
    report: CheckReport,
) -> Any:
    if spec.kind != "onnx":
        report.notes.append(f"--layerwise skipped: {spec.path.name} is an engine; pass the ONNX it was built from")
        return None
    tolerance = opts.layer_tolerance or DEFAULT_LAYER_TOLERANCE[spec.precision]
    result, layer_results = compare_layers(reference, spec, feeds, tolerance)
    inputs = inputs_json or "inputs.json"
    compared = {name: tolerances[name] for name in report.tensors.outputs} or tolerances
    result.commands = polygraphy_commands(reference, spec, compared, inputs)
    if inputs_json is None:
        report.notes.append("the Polygraphy commands read inputs.json: write it with --save-outputs DIR")
    if spec.runner == "tensorrt":
        report.notes.append("--layerwise ran the candidate's ONNX on ONNX Runtime; the TensorRT command is printed")
    if opts.save_outputs:
        path = Path(opts.save_outputs) / f"layerwise-{spec.label.replace(os.sep, '_')}.json"
        report.saved["layerwise"] = str(save_run_results(layer_results, path))
    return result


def check_bundle_dir(
    directory: str | os.PathLike[str],
    metadata: dict[str, Any],
    precisions: Sequence[str],
    data: str | None = None,
    num_images: int = DEFAULT_NUM_IMAGES,
    images_dir: str | None = None,
    coco_root: str | None = None,
    keep: list[CheckReport] | None = None,
) -> dict[str, Any]:
    """The check at the end of ``rtdetr-build``: every new precision against fp32, as a JSON-able dict.

    Runs on ONNX Runtime (the bundle's ONNX artifacts; engines are built on the device) in a bundle
    still being assembled (``metadata`` is the in-memory metadata, ``metadata.json`` need not
    exist). A failed comparison is recorded and logged as a warning, never raised: the numbers
    belong in the report. A check that cannot run (e.g. Polygraphy missing) is recorded as
    ``{"skipped": reason}``.

    Args:
        directory: the bundle directory (the build's temporary one).
        metadata: its metadata dict (``contract``, ``artifacts``, ``build_options``).
        precisions: the precisions the build made (``fp32`` is skipped).
        data: ``--data`` for the check (e.g. the build's ``--calib``; the calibration images are left out).
        num_images: images to check on (the build's ``--check-images``).
        images_dir, coco_root: as for the build's calibration.
        keep: a list the :class:`CheckReport` objects are appended to (for the HTML report).

    Returns:
        ``{"passed": bool, "images": n, "data": {...}, "<precision>": <CheckReport.to_dict()>, ...}``
        (``images``: how many images the check ran on; fewer than 100 is logged as a warning,
        ``data["fp32_noise"]``: fp32's own movement under input noise, where INT8 was checked).
    """
    candidates = [p for p in precisions if p != "fp32" and p in (metadata.get("artifacts") or {})]
    if not candidates:
        return {"skipped": "no fp16 or int8 artifact to check"}
    try:
        files = Bundle.from_metadata(directory, metadata)
        reports = run_checks(
            files,
            candidates,
            CheckOptions(
                data=data, num_images=num_images, images_dir=images_dir, coco_root=coco_root, runner="onnxruntime"
            ),
        )
    except RtdetrEdgeError as exc:
        log.warning("accuracy check (rtdetr-check) skipped: %s", exc)
        return {"skipped": str(exc)}
    if keep is not None:
        keep.extend(reports)
    images = int(reports[0].data.get("images", 0))
    out: dict[str, Any] = {"passed": all(r.passed for r in reports), "images": images, "data": reports[0].data}
    if images < MIN_REPORT_IMAGES:
        log.warning(
            "accuracy check on only %d held-out images (fewer than %d): its intervals are wide",
            images,
            MIN_REPORT_IMAGES,
        )
    for r in reports:
        d = r.to_dict()
        d.pop("data", None)
        d.pop("bundle", None)  # the build's temporary directory; files below are bundle-relative
        for side in ("reference", "candidate"):
            d[side]["file"] = Path(d[side]["file"]).name
        out[r.candidate.label] = d
        if r.passed:
            log.info(
                "check %s vs fp32: pass (AP %s, mean IoU %s)", r.candidate.label, r.detections.ap, r.detections.mean_iou
            )
        else:
            log.warning("check %s vs fp32 FAILED: %s", r.candidate.label, "; ".join(r.failures))
    return out
