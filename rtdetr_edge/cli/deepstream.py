"""rtdetr-deepstream: write a DeepStream setup (nvinfer config, bbox parser, deepstream-app config) for a bundle."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..deepstream import DeepStreamOptions, write_deepstream
from ..deepstream.options import MAX_STREAMS, PRECISION_CHOICES
from ._common import add_verbosity, run, setup_logging

EXAMPLES = """\
examples:
  rtdetr-deepstream build/shapes --out ds/ --streams 4            # the bundle's default precision, 4 cameras
  rtdetr-deepstream build/r18 --out ds/ --precision fp16 --conf 0.4
  rtdetr-deepstream build/r18 --out ds/ --tensorrt 10.16.1         # nvinfer's own build on DeepStream 9.2

DIR/README.md says how to build the engine (rtdetr-engine) and the parser (make) on the Jetson and
run deepstream-app. Not run on a device by rtdetr-edge yet (docs/deepstream.md).
"""


def parser() -> argparse.ArgumentParser:
    d = DeepStreamOptions()
    p = argparse.ArgumentParser(
        prog="rtdetr-deepstream",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("bundle", help="bundle directory (rtdetr-build)")
    p.add_argument("--out", required=True, help="folder to write (new or empty; --force replaces one of ours)")
    p.add_argument("--force", action="store_true", help="replace a folder rtdetr-deepstream wrote earlier at --out")
    p.add_argument(
        "--precision",
        default=d.precision,
        choices=PRECISION_CHOICES,
        help="engine precision (auto: the bundle's default)",
    )
    p.add_argument(
        "--streams",
        type=int,
        default=d.streams,
        help=f"cameras batched by nvstreammux, 1..{MAX_STREAMS} (default {d.streams})",
    )
    p.add_argument("--conf", type=float, default=d.conf, help=f"per-class score threshold (default {d.conf})")
    p.add_argument(
        "--tensorrt",
        default=d.tensorrt,
        help=f"TensorRT of the DeepStream install, for nvinfer's own build and the INT8 cache (default {d.tensorrt})",
    )
    add_verbosity(p)
    return p


def _main(argv: Sequence[str] | None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args)
    options = DeepStreamOptions(precision=args.precision, streams=args.streams, conf=args.conf, tensorrt=args.tensorrt)
    out = write_deepstream(args.bundle, args.out, options, force=args.force)
    print(f"wrote {out}/; see {out}/README.md", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
