"""rtdetr-engine: build (or reuse) the TensorRT engine of a bundle on this device (no torch, no images)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from ..backends.options import RUNTIME_PRECISIONS, TensorRTOptions
from ..bundle import Bundle
from ..errors import InputError
from ._common import add_verbosity, run, setup_logging
from .options import add_engine_arguments, engine_build_options

log = logging.getLogger("rtdetr_edge")

EXAMPLES = """\
examples:
  # on the Jetson / T4: the engine for the bundle's default precision, cached in build/r18/engines/
  rtdetr-engine build/r18
  # INT8 with a static batch of 1 (the smallest latency)
  rtdetr-engine build/r18 --precision int8 --batch 1
  # FP16 on DLA core 0 (a static batch; INT8 on DLA is refused: DLA takes only calibrated INT8)
  rtdetr-engine build/r18 --precision fp16 --batch 1 --dla-core 0
  # FP16 and INT8 engines, both timed at the profile's opt batch; INT8 becomes this device's default
  # only if the host's INT8 check passed and it is at least 10 % faster (a table says why)
  rtdetr-engine build/r18 --precision best
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rtdetr-engine", description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("bundle", help="bundle directory (made by rtdetr-build on the host)")
    p.add_argument(
        "--precision",
        default="auto",
        choices=(*RUNTIME_PRECISIONS, "best"),
        help="engine precision (auto: the bundle's default; best: build and time FP16 and INT8, keep the faster "
        "as this device's default)",
    )
    device = TensorRTOptions().device
    p.add_argument("--device", type=int, default=device, help=f"CUDA device index (default {device})")
    p.add_argument("--force", action="store_true", help="rebuild even if a valid engine is cached")
    add_engine_arguments(p)
    add_verbosity(p)
    return p


def _main(argv: Sequence[str] | None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args)
    from ..backends.trt_logging import load_tensorrt
    from ..engine import engine_for_bundle
    from ..engine_recipe import check_dla_request

    bundle = Bundle(args.bundle)
    options = engine_build_options(args)
    # what the bundle and the flags alone refuse, before asking for TensorRT
    wanted = ("fp16", "int8") if args.precision == "best" else (bundle.precision_for(args.precision),)
    for precision in wanted:
        if precision not in bundle.precisions:
            raise InputError(
                f"--precision {precision}: the bundle {bundle.path} has {', '.join(bundle.precisions)} (add it on the "
                f"host: rtdetr-build --model {bundle.path} --precision {precision} --out {bundle.path})"
            )
        check_dla_request(precision, options)
    load_tensorrt("rtdetr-engine (building TensorRT engines)")  # says what to install, before any other work
    if args.precision == "best":
        from ..bench import best_precision

        best = best_precision(bundle, options, args.device, rebuild=args.force)
        print(best.table())  # its last line: the choice and why
        return 0
    print(engine_for_bundle(bundle, wanted[0], options, args.device, rebuild=args.force))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
