"""rtdetr-build: model -> bundle (ONNX + contract + calibration), and engines where TensorRT runs."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from ._common import add_verbosity, run, setup_logging

log = logging.getLogger("rtdetr_edge")

EXAMPLES = """\
examples:
  # host: export the official weights to a verified fp32 bundle
  rtdetr-build --model PekingU/rtdetr_r18vd --precision fp32 --out build/r18
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
    add_verbosity(p)
    return p


def _main(argv: Sequence[str] | None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args)
    from ..build import BuildOptions, build

    opts = BuildOptions(precision=args.precision, top_k=args.top_k, raw_outputs=args.raw_outputs, opset=args.opset,
                        verify=not args.no_verify, tolerance=args.tolerance, revision=args.revision, force=args.force)
    stages = iter(range(1, 100))
    out = build(args.model, args.out, opts, step=lambda name: log.info("[%d] %s ...", next(stages), name))
    print(out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
