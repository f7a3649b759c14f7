"""rtdetr-check: is an FP16 / INT8 / TensorRT build as accurate as fp32? (Polygraphy comparisons)

Runs the reference (fp32 ONNX on ONNX Runtime) and the candidate on held-out images through
Polygraphy, compares the pre-top-k tensors element-wise with per-output tolerances and the
detections users see (AP against the reference's detections, IoU, score drift, label flips).
Exit status: 0 within tolerance, 1 outside it (the report says where; the last line is FAIL and the
failed criteria, per candidate when there are several) or on an error.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ._common import add_verbosity, check_json_out, check_out_dir, run, setup_logging, write_json_out
from .options import add_engine_arguments, engine_build_options

if TYPE_CHECKING:
    from ..check.report import CheckReport

EXAMPLES = """\
examples:
  rtdetr-check build/shapes                                  # every precision of the bundle vs fp32
  rtdetr-check build/shapes --candidate int8 --data data/test/annotations.json --json check.json
  rtdetr-check build/shapes --report check.html             # the same as one self-contained HTML page
  rtdetr-check build/shapes --candidate fp16 --atol post/probs=0.02 --layerwise --save-outputs out/
  rtdetr-check build/r18 --candidate build/r18/engines/fp16_....engine       # a TensorRT engine (device)
  polygraphy inspect data out/outputs.json                   # the saved outputs, Polygraphy's format
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rtdetr-check", description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("bundle", help="bundle directory")
    p.add_argument("--reference", default="fp32", help="fp32 (default), fp16, int8 or an .onnx; ONNX Runtime, CPU")
    p.add_argument(
        "--candidate",
        action="append",
        default=None,
        metavar="fp16|int8|fp32|PATH",
        help="what to check: a bundle precision, any .onnx with the bundle's input and outputs, or a "
        "TensorRT .engine; repeatable "
        "(default: every precision of the bundle besides the reference)",
    )
    p.add_argument(
        "--runner",
        default="auto",
        choices=["auto", "onnxruntime", "tensorrt"],
        help="candidate runner (default auto: TensorRT where it is installed, else ONNX Runtime)",
    )
    p.add_argument(
        "--data",
        default=None,
        help="images: a folder, a COCO json, coco_val/coco_train or 'synthetic' (default: the bundle's "
        "calibration source minus the calibration images, else generated scenes)",
    )
    p.add_argument("--images", default=None, help="image folder of a --data json (default: next to it)")
    p.add_argument("--coco-root", default=None, help="COCO 2017 root for coco_val/coco_train")
    p.add_argument(
        "--num-images",
        type=int,
        default=100,  # rtdetr_edge.check.data.DEFAULT_NUM_IMAGES, without importing the check here
        help="images to compare on (default 100; the verdict's intervals narrow with more)",
    )
    p.add_argument(
        "--atol",
        action="append",
        default=None,
        metavar="[NAME=]V",
        help="absolute tolerance for every output, or NAME=V per output (post/probs, pred_boxes, "
        "scores, logits); repeatable. Defaults depend on the candidate's precision",
    )
    p.add_argument(
        "--rtol",
        action="append",
        default=None,
        metavar="[NAME=]V",
        help="relative tolerance, as --atol (default 0: absolute tolerances decide)",
    )
    p.add_argument(
        "--tolerances",
        default=None,
        choices=["fp32", "fp16", "int8"],
        help="use this precision's default tolerances and thresholds (default: the candidate's)",
    )
    p.add_argument(
        "--max-unmatched",
        type=float,
        default=None,
        metavar="FRACTION",
        help="fraction of the foreground query rows (reference max probability >= --conf) allowed without "
        "a counterpart (query selection changed), left out of the element-wise check (default fp32 0.01, "
        "fp16 0.01, int8 0.02)",
    )
    p.add_argument(
        "--conf",
        type=float,
        default=0.3,
        help="confidence of the detections compared; query rows and scores at or above it are what the "
        "element-wise check compares (default 0.3)",
    )
    p.add_argument(
        "--layerwise",
        action="store_true",
        help="mark every tensor on both sides and name the first layers that diverge",
    )
    p.add_argument(
        "--layer-tolerance",
        type=float,
        default=None,
        help="relative error that counts as divergence (default fp32 1e-4, fp16 1e-2, int8 0.1)",
    )
    p.add_argument("--layerwise-images", type=int, default=1, help="images for --layerwise (default 1)")
    p.add_argument("--json", default=None, metavar="OUT", help="write the full report as JSON here")
    p.add_argument(
        "--report",
        default=None,
        metavar="HTML",
        help="write a self-contained HTML page here: the verdict per candidate, AP, the images where "
        "candidate and reference disagree most, the precision plan, images used, versions (needs the "
        "check extra's matplotlib)",
    )
    p.add_argument(
        "--save-outputs",
        default=None,
        metavar="DIR",
        help="save Polygraphy RunResults (outputs.json), inputs (inputs.json) and layerwise outputs",
    )
    add_engine_arguments(p)
    add_verbosity(p)
    return p


def _main(argv: Sequence[str] | None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args)
    check_json_out(args.json)
    check_json_out(args.report, "--report")
    # results never go into the bundle (they would replace its metadata.json or report.json)
    from .. import atomic

    for flag, path in (("--json", args.json), ("--report", args.report), ("--save-outputs", args.save_outputs)):
        if path is not None:
            atomic.refuse_overlap(path, [args.bundle], flag)
    if args.json is not None and args.report is not None and Path(args.json).resolve() == Path(args.report).resolve():
        raise InputError(f"--report {args.report}: the same file as --json; name two files")
    if args.report:  # before minutes of checking
        from .._optional import require

        require("matplotlib", "rtdetr-check --report")
    check_out_dir(args.save_outputs, "--save-outputs")
    from ..check import CheckOptions, run_checks
    from ..check.compare import parse_tolerance_args

    options = CheckOptions(
        reference=args.reference,
        data=args.data,
        num_images=args.num_images,
        images_dir=args.images,
        coco_root=args.coco_root,
        atol=parse_tolerance_args(args.atol, "atol"),
        rtol=parse_tolerance_args(args.rtol, "rtol"),
        tolerances=args.tolerances,
        max_unmatched=args.max_unmatched,
        conf=args.conf,
        layerwise=args.layerwise,
        layer_tolerance=args.layer_tolerance,
        layerwise_images=args.layerwise_images,
        runner=args.runner,
        save_outputs=args.save_outputs,
        engine=engine_build_options(args),
    )
    reports = run_checks(args.bundle, args.candidate, options)
    passed = all(r.passed for r in reports)
    print("\n\n".join(_with_plan(r) for r in reports))
    if len(reports) > 1:
        print(f"\n{summary_line(reports)}")
    if args.json:
        write_json_out(args.json, {"passed": passed, "checks": [r.to_dict() for r in reports]})
    if args.report:
        write_report_out(args.report, args.bundle, reports)
    return 0 if passed else 1


def write_report_out(path: str, bundle: str, reports: Sequence[CheckReport]) -> None:
    """The HTML page of ``reports`` (:mod:`rtdetr_edge.report`); an OS error is one line naming ``path``."""
    from ..report import inputs_from_bundle, write_report

    try:
        write_report(path, inputs_from_bundle(bundle, reports))
    except OSError as exc:
        raise InputError(f"--report {path}: cannot write ({exc.strerror or exc})") from exc
    print(f"report: {path}")


def _with_plan(report: CheckReport) -> str:
    """The report, after the bundle's INT8 precision plan when the candidate is that artifact."""
    from ..bundle import Bundle
    from ..calib.plan import PrecisionPlan

    text = report.format()
    if report.candidate.label != "int8" or not report.candidate.from_bundle:
        return text
    art = Bundle(report.bundle).artifacts.get("int8") or {}
    plan_file = Path(report.bundle) / str(art.get("plan", ""))
    if not art.get("plan") or not plan_file.is_file():
        return text
    return f"{Path(report.bundle).name} int8 ({art['file']}): {PrecisionPlan.load(plan_file).table()}\n{text}"


def summary_line(reports: Sequence[CheckReport]) -> str:
    """The verdict over several candidates: ``PASS: 2/2 candidates within tolerance``, or ``FAIL:`` and,
    for each failed candidate, its label and failed criteria (``FAIL: int8: AP 0.71 < 0.97; ... | x.onnx: ...``).
    """
    failed = [r for r in reports if not r.passed]
    if not failed:
        return f"PASS: {len(reports)}/{len(reports)} candidates within tolerance"
    return "FAIL: " + " | ".join(f"{r.candidate.label}: {'; '.join(r.failures)}" for r in failed)


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
