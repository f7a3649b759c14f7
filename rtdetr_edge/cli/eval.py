"""rtdetr-eval: COCO mAP of a bundle (any backend) or of the PyTorch model on a COCO-format set."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._common import add_verbosity, check_json_out, int_at_least, run, setup_logging, write_json_out
from .options import add_runtime_arguments, open_detector

EXAMPLES = """\
examples:
  rtdetr-eval build/shapes --data data/test/annotations.json
  rtdetr-eval models/rtdetr-shapes --data data/test/annotations.json      # PyTorch itself
  rtdetr-eval build/r18 --data coco/annotations/instances_val2017.json --images coco/val2017 --json ap.json
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rtdetr-eval", description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("model", help="bundle directory, .onnx, .engine, or a save_pretrained folder (PyTorch)")
    p.add_argument("--data", required=True, help="COCO-format annotations json")
    p.add_argument("--images", default=None, help="image folder (default: next to the json, or its images/)")
    p.add_argument("--max-images", type=int_at_least(1), default=None, help="evaluate only the first N images")
    p.add_argument("--batch", type=int_at_least(1), default=1, help="images per inference call (default 1)")
    add_runtime_arguments(p)
    p.add_argument("--json", default=None, help="write metrics as JSON here")
    add_verbosity(p)
    return p


def _open_predictor(args: argparse.Namespace) -> Any:
    """A Detector for bundles/.onnx/.engine; PyTorch (the exporter's TorchPredictor) for save_pretrained folders."""
    path = Path(args.model)
    if path.is_dir() and (path / "config.json").is_file() and not (path / "metadata.json").is_file():
        from ..export.torch_predictor import TorchPredictor

        return TorchPredictor(path, threads=args.threads)
    return open_detector(args, path, conf=0.0, max_det=100)


def _main(argv: Sequence[str] | None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args)
    check_json_out(args.json)
    from ..evaluate.coco_map import format_metrics
    from ..evaluate.runner import evaluate

    with contextlib.closing(_open_predictor(args)) as predictor:
        metrics = evaluate(
            predictor, args.data, args.images, max_images=args.max_images, batch=args.batch, progress=not args.quiet
        )
    print(f"{args.model}: {format_metrics(metrics)}  ({metrics['images']} images, {metrics['seconds']} s)")
    if args.json:
        write_json_out(args.json, {"model": args.model, "data": args.data, **metrics})
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
