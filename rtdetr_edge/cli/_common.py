"""What every CLI shares: logging set-up and turning user errors into one-line messages."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import RtdetrEdgeError

log = logging.getLogger("rtdetr_edge")


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")


def setup_logging(args: argparse.Namespace) -> None:
    level = logging.WARNING if args.quiet else (logging.DEBUG if args.verbose > 1 else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s" if args.verbose < 2 else "%(levelname)s %(name)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run ``main``; user errors print ``error: ...`` and exit 1, Ctrl-C exits 130, no traceback."""
    try:
        return main(argv)
    except RtdetrEdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; nothing half-written was kept", file=sys.stderr)
        return 130


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """--backend, --precision and the TensorRT engine flags, for commands that run a Detector.

    ``--batch`` of those commands means images per call, so the engine profile is ``--engine-batch``.
    """
    from ..engine.options import add_engine_arguments

    parser.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "tensorrt"],
                        help="auto: TensorRT where it and a GPU are present, else ONNX Runtime")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "int8"],
                        help="bundle artifact to run (auto: the bundle's default)")
    add_engine_arguments(parser, batch_flag="--engine-batch")


def detector_options(args: argparse.Namespace) -> dict[str, Any]:
    """Detector keyword arguments from :func:`add_runtime_arguments`' flags."""
    from ..engine.options import EngineOptions

    opts: dict[str, Any] = {"backend": args.backend, "precision": args.precision}
    if args.backend != "onnxruntime":
        opts["engine_options"] = EngineOptions.from_args(args).to_dict()
    return opts
