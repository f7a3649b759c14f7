"""rtdetr-build: a model -> a bundle (ONNX + contract + calibration), or precisions added to a bundle (host).

TensorRT engines are built on the device from the bundle by rtdetr-engine."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

from .. import atomic
from ..build import (
    PRECISION_CHOICES,
    REPORT_PAGE,
    BuildOptions,
    Int8Options,
    add_precisions,
    build_bundle,
    check_out,
    is_bundle,
)
from ..calib import Algorithm, CalibrationOptions, Scope
from ..export.frames import parse_frame_size
from ..export.options import OPSETS, ExportOptions
from ._common import add_verbosity, run, setup_logging

log = logging.getLogger("rtdetr_edge")

EXAMPLES = """\
examples:
  # host: export the official weights, calibrate INT8 on COCO val2017 (fetched if missing)
  rtdetr-build --model PekingU/rtdetr_r18vd --precision int8 --calib coco_val --out build/r18
  # the shipped reference model, INT8 calibrated on a generated COCO-format set, offline
  rtdetr-build --model models/rtdetr-shapes --precision int8 --calib data/calib/annotations.json --out build/shapes
  # every precision, with measured mixed precision (keep layer groups in float until 99% of fp32 AP)
  rtdetr-build --model PekingU/rtdetr_r18vd --precision best --calib coco_val --int8-sensitivity --out build/r18
  # add an INT8 artifact to an existing bundle, in place (torch-free)
  rtdetr-build --model build/r18 --precision int8 --calib coco_val --out build/r18
  # device: the TensorRT engine is built from the copied bundle by rtdetr-engine
  rtdetr-engine build/r18 --precision int8
  # a local save_pretrained folder, raw outputs instead of in-graph top-k, opset 16 (LayerNorm decomposed)
  rtdetr-build --model models/rtdetr-shapes --raw-outputs --opset 16 --out build/shapes-raw
  # camera frames in: uint8 BGR 1280x720 and 1920x1080 frames resized and scaled inside the graph
  rtdetr-build --model models/rtdetr-shapes --precision fp16 --frame-size 1280x720 --frame-size 1920x1080 --out build/shapes
  # add frame-input artifacts to an existing bundle, in place (torch-free; the default precision is kept)
  rtdetr-build --model build/shapes --frame-size 1280x720 --out build/shapes
  # replace an existing bundle
  rtdetr-build --model models/rtdetr-shapes --out build/shapes --force
"""


def parser() -> argparse.ArgumentParser:
    e, c, i = ExportOptions(), CalibrationOptions("-"), Int8Options()
    p = argparse.ArgumentParser(
        prog="rtdetr-build", description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model",
        required=True,
        help="Hugging Face hub id or save_pretrained folder (exported), or a bundle (precisions added)",
    )
    p.add_argument("--out", required=True, help="bundle directory to write (atomically)")
    p.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISION_CHOICES,
        help="precision to build (default fp32). int8 also writes fp16, the bundle's default when INT8 fails "
        "its check; best writes fp16 and int8 and defaults to int8 only when it passes its check, keeps "
        "--int8-target of fp32 AP on held-out images and has >= 85%% of its MACs in INT8",
    )
    p.add_argument(
        "--top-k", type=int, default=e.top_k, help=f"detections kept by the in-graph top-k (default {e.top_k})"
    )
    p.add_argument("--raw-outputs", action="store_true", help="export logits/pred_boxes, no in-graph top-k")
    p.add_argument(
        "--opset",
        type=int,
        default=e.opset,
        choices=OPSETS,
        help=f"ONNX opset: 17 for TensorRT >= 8.6 (default {e.opset}), 16 decomposes LayerNorm (TensorRT 8.5 tools)",
    )
    p.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime vs PyTorch check")
    p.add_argument(
        "--tolerance", type=float, default=e.tolerance, help=f"verification tolerance (default {e.tolerance})"
    )
    p.add_argument("--revision", default=None, help="hub revision (branch, tag or commit)")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace --out if it is a bundle (a folder that is not a bundle is never deleted); --out must "
        "not be, contain or lie inside --model or --calib",
    )
    p.add_argument(
        "--frame-size",
        action="append",
        default=None,
        metavar="WxH",
        help="also write, for each precision, the graph taking uint8 BGR camera frames of this size "
        "([N,H,W,3], resized with the model processor's own filter and scaled inside the graph; "
        "repeatable). With a bundle as --model and no --precision, only these are added",
    )
    g = p.add_argument_group("INT8 calibration (host, ONNX Runtime; torch not needed)")
    g.add_argument("--calib", default=None, help="coco_val, coco_train, a COCO-format json, or a folder of images")
    g.add_argument("--calib-size", type=int, default=c.size, help=f"calibration images (default {c.size})")
    g.add_argument("--seed", type=int, default=c.seed, help=f"calibration subset seed (default {c.seed})")
    g.add_argument(
        "--calib-batch", type=int, default=c.batch_size, help=f"images per calibration batch (default {c.batch_size})"
    )
    g.add_argument("--calib-images", default=None, help="image folder of a --calib json (default: next to it)")
    g.add_argument(
        "--coco-root", default=None, help="COCO 2017 root (default $RTDETR_COCO_ROOT or ~/.cache/rtdetr-edge/coco)"
    )
    g.add_argument("--no-download", action="store_true", help="fail instead of fetching missing COCO files")
    g.add_argument("--calib-cache-dir", default=c.cache_dir, help=f"preprocessed-batch cache (default {c.cache_dir})")
    g.add_argument("--no-calib-cache", action="store_true", help="do not cache preprocessed calibration batches")
    g.add_argument(
        "--calib-cache-max-mb",
        type=int,
        default=c.cache_max_mb,
        metavar="MiB",
        help=f"size limit of the batch cache (default {c.cache_max_mb}); least recently used subsets go first",
    )
    g.add_argument(
        "--calib-memory-mb",
        type=int,
        default=c.memory_mb,
        metavar="MiB",
        help=f"activation memory calibration may hold at once (default {c.memory_mb}; 0: no limit): the "
        "graph runs in segments whose fetched tensors fit; same ranges, same inference work",
    )
    g.add_argument(
        "--calib-samples",
        type=int,
        default=c.samples_per_image,
        metavar="N",
        help=f"activation values histogrammed per tensor and image (default {c.samples_per_image}; 0: "
        "all; the maximum always sees every value)",
    )
    g.add_argument(
        "--calib-tensors",
        default=c.scope,
        choices=get_args(Scope),
        help=f"tensors to calibrate: int8 (default {c.scope}), those INT8 layers read (network input, "
        "Conv/MatMul/Gemm inputs), or all float tensors as TensorRT's own calibrator does",
    )
    g.add_argument(
        "--calib-algorithm",
        default=c.algorithm,
        choices=get_args(Algorithm),
        help="activation ranges: TensorRT's entropy (KL) search, the 99.999th percentile of |x|, the "
        f"absolute max, or auto (default {c.algorithm}): entropy2 and percentile both computed, the "
        "one whose INT8 model scores better on held-out images kept (entropy2 without them)",
    )
    g.add_argument(
        "--int8-keep",
        nargs="*",
        default=list(i.keep),
        metavar="NAME",
        help="node-name components to keep out of INT8 (added to the defaults)",
    )
    g.add_argument(
        "--int8-sensitivity",
        action="store_true",
        help="measure layer groups and keep the worst in float until --int8-target is met",
    )
    g.add_argument(
        "--int8-target", type=float, default=i.target, help=f"INT8 AP / fp32 AP to reach (default {i.target})"
    )
    g.add_argument(
        "--trt-cache-version",
        action="append",
        default=None,
        metavar="X.Y.Z",
        help="write a native TensorRT calibration cache for this version (repeatable; default "
        f"{','.join(i.trt_cache_versions)})",
    )
    g.add_argument(
        "--check-images",
        type=int,
        default=BuildOptions.check_images,
        help=f"held-out images for the accuracy check at the end (default {BuildOptions.check_images}; 0 skips)",
    )
    add_verbosity(p)
    return p


def build_options(args: argparse.Namespace) -> BuildOptions:
    """:class:`BuildOptions` from the parsed flags (the one place the CLI makes them)."""
    calibration = None
    if args.calib is not None:
        calibration = CalibrationOptions(
            calib=args.calib,
            size=args.calib_size,
            seed=args.seed,
            batch_size=args.calib_batch,
            coco_root=args.coco_root,
            images_dir=args.calib_images,
            algorithm=args.calib_algorithm,
            cache_dir=None if args.no_calib_cache else args.calib_cache_dir,
            cache_max_mb=args.calib_cache_max_mb,
            allow_download=not args.no_download,
            samples_per_image=args.calib_samples,
            memory_mb=args.calib_memory_mb,
            scope=args.calib_tensors,
        )
    return BuildOptions(
        precision=args.precision,
        force=args.force,
        export=ExportOptions(
            top_k=args.top_k,
            raw_outputs=args.raw_outputs,
            opset=args.opset,
            verify=not args.no_verify,
            tolerance=args.tolerance,
            revision=args.revision,
        ),
        calibration=calibration,
        int8=Int8Options(
            keep=tuple(args.int8_keep),
            sensitivity=args.int8_sensitivity,
            target=args.int8_target,
            trt_cache_versions=tuple(args.trt_cache_version or Int8Options().trt_cache_versions),
        ),
        check_images=args.check_images,
        frame_sizes=tuple(parse_frame_size(text) for text in args.frame_size or ()),
    )


def _main(argv: Sequence[str] | None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args)
    opts = build_options(args)
    stages = iter(range(1, 100))

    def step(name: str) -> None:
        log.info("[%d] %s ...", next(stages), name)

    in_place = is_bundle(args.model) and Path(args.out).resolve() == Path(args.model).resolve()
    inputs = [args.calib, args.calib_images] + ([] if in_place else [args.model])
    if not in_place:
        check_out(args.out, args.force, inputs)  # before minutes of work
    else:
        atomic.refuse_overlap(args.out, inputs, "--out")
    if is_bundle(args.model):
        out = add_precisions(args.model, args.out, opts, step)
    else:
        out = build_bundle(args.model, args.out, opts, step)
    print(bundle_summary(out))
    return 0


def bundle_summary(bundle_dir: Path) -> str:
    """What a build ends with: the INT8 precision plan (when there is one), then a short summary:
    each precision's file and AP on the held-out report images, the default precision and why,
    the checks, and where things are."""
    from ..bundle import Bundle
    from ..calib.plan import PrecisionPlan
    from ..check.verdict import MIN_REPORT_IMAGES

    bundle = Bundle(bundle_dir)
    lines = []
    art = bundle.artifacts.get("int8") or {}
    if art.get("plan") and bundle.file(art["plan"]).is_file():
        lines.append(f"{art['file']}: " + PrecisionPlan.load(bundle.file(art["plan"])).table())
    report_path = bundle.file("report.json")
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    accuracy = report.get("accuracy") or bundle.metadata.get("accuracy") or {}
    checks = report.get("check") or {}
    lines.append(f"summary of {bundle_dir}:")
    for precision in bundle.precisions:
        ap = (accuracy.get(precision) or {}).get("AP")
        ratio = (accuracy.get(precision) or {}).get("AP_vs_fp32")
        check = checks.get(precision)
        parts = [f"  {precision:<5} {bundle.artifacts[precision]['file']}"]
        if ap is not None:
            parts.append(f"AP {ap:.3f}" + (f" ({ratio:.3f} x fp32)" if ratio is not None else ""))
        if isinstance(check, dict) and "passed" in check:
            parts.append("check " + ("passed" if check["passed"] else "FAILED"))
        lines.append(", ".join(parts))
    if accuracy.get("skipped"):
        lines.append(f"  no AP: {accuracy['skipped']}")
    elif accuracy.get("images"):
        lines.append(f"  AP on {accuracy['images']} held-out images of {accuracy.get('data', 'the --calib source')}")
    elif len(bundle.precisions) > 1:
        lines.append("  no AP: the build had no annotated held-out images (--calib COCO json, --check-images)")
    if checks.get("images"):
        few = checks["images"] < MIN_REPORT_IMAGES
        lines.append(
            f"  checked on {checks['images']} held-out images"
            + (f" (fewer than {MIN_REPORT_IMAGES}: a wide interval; give --calib more images)" if few else "")
        )
    chosen = report.get("default_precision")
    default = bundle.default_precision
    why = chosen.get("reason") if isinstance(chosen, dict) else None
    lines.append(f"default precision: {default}" + (f" ({why})" if why else ""))
    page = bundle.file(REPORT_PAGE)
    lines.append(
        f"details: {bundle.file('report.json')}"
        + (f"; report (open in a browser): {page}" if page.is_file() else "")
        + f"; next: rtdetr-detect IMAGES --model {bundle_dir}, rtdetr-engine {bundle_dir} on the device"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
