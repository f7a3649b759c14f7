"""rtdetr-triton: write a Triton Inference Server model repository for a bundle."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..serving.repository import DETECTOR_KINDS, RepositoryOptions, write_repository
from ._common import add_verbosity, run, setup_logging

EXAMPLES = """\
examples:
  rtdetr-triton build/r18 --out triton/models                       # TensorRT plan (GPU servers)
  rtdetr-triton build/r18 --out triton/cpu --detector onnxruntime   # ONNX Runtime (CPU servers)
  rtdetr-triton build/r18 --out triton/py --detector python         # Python backend (any server)
  rtdetr-triton build/r18 --out triton/models --max-batch 16 --preferred-batch 8 16 --queue-delay-us 500

The ensemble `rtdetr` takes one encoded image (bytes) per request and returns boxes [M,4]
(pixels xyxy), scores [M], class_ids [M] and image_size [2]; REPO/README.md says how to run it
(docker on a T4 server, Triton's JetPack release on a Jetson, rtdetr-serve here).
"""


def parser() -> argparse.ArgumentParser:
    d = RepositoryOptions()
    p = argparse.ArgumentParser(
        prog="rtdetr-triton", description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("bundle", help="bundle directory (rtdetr-build)")
    p.add_argument(
        "--out", required=True, help="repository folder to write (new or empty; --force replaces one of ours)"
    )
    p.add_argument("--force", action="store_true", help="replace a repository rtdetr-triton wrote earlier at --out")
    p.add_argument(
        "--detector",
        default=d.detector,
        choices=DETECTOR_KINDS,
        help=f"how Triton runs the detector (default {d.detector}: a TensorRT plan)",
    )
    p.add_argument("--precision", default=d.precision, choices=["auto", "fp32", "fp16", "int8"])
    p.add_argument("--name", default=d.name, help=f"ensemble name (default {d.name})")
    p.add_argument(
        "--max-batch", type=int, default=d.max_batch, help=f"detector max_batch_size (default {d.max_batch})"
    )
    p.add_argument(
        "--preferred-batch",
        type=int,
        nargs="+",
        default=None,
        help="dynamic batching's preferred sizes (default: max/2, max)",
    )
    p.add_argument(
        "--queue-delay-us",
        type=int,
        default=d.queue_delay_us,
        help=f"dynamic batching queue delay (default {d.queue_delay_us})",
    )
    p.add_argument("--instances", type=int, default=d.instances, help=f"detector instances (default {d.instances})")
    p.add_argument(
        "--preprocess-instances",
        type=int,
        default=d.preprocess_instances,
        help=f"preprocessing instances (default {d.preprocess_instances})",
    )
    p.add_argument("--no-cuda-graphs", action="store_true", help="TensorRT: no CUDA graphs")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: its choice)")
    p.add_argument(
        "--conf", type=float, default=d.conf, help=f"score threshold applied in the server (default {d.conf})"
    )
    p.add_argument("--max-det", type=int, default=d.max_det, help=f"max detections per image (default {d.max_det})")
    p.add_argument(
        "--clip",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="clip boxes to the image (default; --no-clip: the model's own boxes), as the Detector does",
    )
    add_verbosity(p)
    return p


def options_from(args: argparse.Namespace) -> RepositoryOptions:
    """The :class:`RepositoryOptions` of the command line (validated there)."""
    return RepositoryOptions(
        detector=args.detector,
        precision=args.precision,
        name=args.name,
        max_batch=args.max_batch,
        preferred_batch=tuple(args.preferred_batch or ()),
        queue_delay_us=args.queue_delay_us,
        instances=args.instances,
        preprocess_instances=args.preprocess_instances,
        cuda_graphs=not args.no_cuda_graphs,
        threads=args.threads,
        conf=args.conf,
        max_det=args.max_det,
        clip=args.clip,
    )


def _main(argv: Sequence[str] | None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args)
    options = options_from(args)
    out = write_repository(args.bundle, args.out, options, force=args.force)
    print(
        f"wrote {out}/ (ensemble {options.name!r}, {options.detector} detector); see {out}/README.md", file=sys.stderr
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
