"""rtdetr-bench: latency percentiles, throughput and per-stage times of a bundle on any backend."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ._common import add_verbosity, check_json_out, int_at_least, run, setup_logging, size_arg, write_json_out
from .options import add_runtime_arguments, open_detector

EXAMPLES = """\
examples:
  rtdetr-bench build/r18                          # batch 1, 1280x720 synthetic frame
  rtdetr-bench build/r18 --batch 4 --iterations 200 --json bench.json
  rtdetr-bench build/r18/engines/xyz.engine --image cat.jpg
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rtdetr-bench", description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("model", help="bundle directory, .onnx or .engine")
    p.add_argument("--batch", type=int_at_least(1), default=1, help="images per call (default 1)")
    p.add_argument("--iterations", type=int_at_least(1), default=50, help="timed calls (default 50)")
    p.add_argument("--warmup", type=int_at_least(0), default=10, help="untimed calls first (default 10)")
    p.add_argument("--image", default=None, help="image to use (default: synthetic scene)")
    p.add_argument(
        "--image-size",
        type=size_arg,
        default=(1280, 720),
        metavar="WxH",
        help="synthetic scene size (default 1280x720; at most the image pixel limit, see rtdetr-detect --help)",
    )
    add_runtime_arguments(p)
    p.add_argument("--json", default=None, help="write the result as JSON here")
    add_verbosity(p)
    return p


def _main(argv: Sequence[str] | None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args)
    check_json_out(args.json)
    from ..bench import benchmark
    from ..images import check_pixels

    w, h = args.image_size
    check_pixels(w, h, f"--image-size {w}x{h}")
    with open_detector(args, args.model, max_batch=args.batch) as det:
        result = benchmark(
            det, batch=args.batch, iterations=args.iterations, warmup=args.warmup, image=args.image, image_size=(w, h)
        )
    print(result.table())
    if args.json:
        write_json_out(args.json, result.to_dict())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
