"""rtdetr-build: model -> bundle (ONNX + contract + calibration), and engines where TensorRT runs."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

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
  # device: build the TensorRT engine from a copied bundle (no torch, no images needed)
  rtdetr-build --model build/r18 --precision int8 --out build/r18
  # a local save_pretrained folder, raw outputs instead of in-graph top-k, opset 16 for JetPack 5
  rtdetr-build --model models/rtdetr-shapes --raw-outputs --opset 16 --out build/shapes-raw
  # replace an existing bundle
  rtdetr-build --model models/rtdetr-shapes --out build/shapes --force
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rtdetr-build", description=__doc__, epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="Hugging Face hub id, save_pretrained folder, or a bundle")
    p.add_argument("--out", required=True, help="bundle directory to write (atomically)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8", "best"],
                   help="precision to build (default fp32)")
    p.add_argument("--top-k", type=int, default=300, help="detections kept by the in-graph top-k (default 300)")
    p.add_argument("--raw-outputs", action="store_true", help="export logits/pred_boxes, no in-graph top-k")
    p.add_argument("--opset", type=int, default=17, choices=[16, 17],
                   help="ONNX opset: 17 for TensorRT >= 8.6 (default), 16 for TensorRT 8.5 / JetPack 5")
    p.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime vs PyTorch check")
    p.add_argument("--tolerance", type=float, default=1e-4, help="verification tolerance (default 1e-4)")
    p.add_argument("--revision", default=None, help="hub revision (branch, tag or commit)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    c = p.add_argument_group("INT8 calibration (host, ONNX Runtime; torch not needed)")
    c.add_argument("--calib", default=None,
                   help="coco_val, coco_train, a COCO-format json, or a folder of images")
    c.add_argument("--calib-size", type=int, default=256, help="calibration images (default 256)")
    c.add_argument("--seed", type=int, default=0, help="calibration subset seed (default 0)")
    c.add_argument("--calib-batch", type=int, default=8, help="images per calibration batch (default 8)")
    c.add_argument("--calib-images", default=None, help="image folder of a --calib json (default: next to it)")
    c.add_argument("--coco-root", default=None,
                   help="COCO 2017 root (default $RTDETR_COCO_ROOT or ~/.cache/rtdetr-edge/coco)")
    c.add_argument("--no-download", action="store_true", help="fail instead of fetching missing COCO files")
    c.add_argument("--calib-cache-dir", default=None, help="preprocessed-batch cache (default ~/.cache/rtdetr-edge)")
    c.add_argument("--no-calib-cache", action="store_true", help="do not cache preprocessed calibration batches")
    c.add_argument("--calib-samples", type=int, default=8192, metavar="N",
                   help="activation values histogrammed per tensor and image (default 8192; 0: all; the "
                        "maximum always sees every value)")
    c.add_argument("--calib-tensors", default="int8", choices=["int8", "all"],
                   help="tensors to calibrate: int8 (default), those INT8 layers read (network input, Conv/"
                        "MatMul/Gemm inputs), or all float tensors as TensorRT's own calibrator does")
    c.add_argument("--calib-algorithm", default="auto", choices=["auto", "entropy2", "percentile", "max"],
                   help="activation ranges: TensorRT's entropy (KL) search, the 99.999th percentile of |x|, "
                        "the absolute max, or auto (default): entropy2 and percentile both computed, the one "
                        "whose INT8 model scores better on held-out images kept (entropy2 without them)")
    c.add_argument("--int8-keep", nargs="*", default=[], metavar="NAME",
                   help="node-name components to keep out of INT8 (added to the defaults)")
    c.add_argument("--int8-sensitivity", action="store_true",
                   help="measure layer groups and keep the worst in float until --int8-target is met")
    c.add_argument("--int8-target", type=float, default=0.99, help="INT8 AP / fp32 AP to reach (default 0.99)")
    c.add_argument("--trt-cache-version", action="append", default=None, metavar="X.Y.Z",
                   help="write a native TensorRT calibration cache for this version (repeatable; default 10.3.0)")
    c.add_argument("--check-images", type=int, default=100,
                   help="held-out images for the accuracy check at the end (default 100; 0 skips)")
    from ..engine.options import add_engine_arguments

    add_engine_arguments(p)
    add_verbosity(p)
    return p


def _main(argv: Sequence[str] | None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args)
    from ..build import BuildOptions, build
    from ..engine.options import EngineOptions

    opts = BuildOptions(
        precision=args.precision, top_k=args.top_k, raw_outputs=args.raw_outputs, opset=args.opset,
        verify=not args.no_verify, tolerance=args.tolerance, revision=args.revision, force=args.force,
        calib=args.calib, calib_size=args.calib_size, calib_seed=args.seed, calib_batch=args.calib_batch,
        calib_images=args.calib_images, coco_root=args.coco_root, allow_download=not args.no_download,
        calib_cache_dir=args.calib_cache_dir, no_calib_cache=args.no_calib_cache,
        calib_algorithm=args.calib_algorithm, calib_samples=args.calib_samples,
        calib_tensors=args.calib_tensors, int8_keep=tuple(args.int8_keep),
        int8_sensitivity=args.int8_sensitivity, int8_target=args.int8_target,
        trt_cache_versions=tuple(args.trt_cache_version or ("10.3.0",)), check_images=args.check_images,
        engine=EngineOptions.from_args(args).to_dict())
    stages = iter(range(1, 100))
    out = build(args.model, args.out, opts, step=lambda name: log.info("[%d] %s ...", next(stages), name))
    print(out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
