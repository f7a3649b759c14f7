"""rtdetr-data: make datasets. `rtdetr-data synth` writes a seeded, procedural COCO-format set."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import atomic
from ..errors import InputError
from ._common import add_verbosity, add_version, int_at_least, run, setup_logging, size_arg

EXAMPLES = """\
examples:
  rtdetr-data synth --out data/train --num-images 4000 --seed 1
  rtdetr-data synth --out data/test --num-images 500 --seed 3 --size 640x480
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rtdetr-data", description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_version(p)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser(
        "synth",
        help="generate the synthetic shapes dataset (COCO format)",
        description="Six shape classes with varied scale (incl. small), aspect, colour, texture, "
        "occlusion and cluttered backgrounds; DIR/images/ + DIR/annotations.json.",
    )
    s.add_argument("--out", required=True, help="output folder: new or empty (an existing dataset needs --force)")
    s.add_argument(
        "--force",
        action="store_true",
        help="write over an existing dataset (a folder with annotations.json and images/; nothing else is replaced)",
    )
    s.add_argument("--num-images", type=int_at_least(1), required=True, help="number of images")
    s.add_argument(
        "--seed", type=int_at_least(0), default=0, help="random seed >= 0 (same seed, same dataset; default 0)"
    )
    s.add_argument("--size", type=size_arg, default=(320, 240), metavar="WxH", help="image size WxH (default 320x240)")
    s.add_argument("--max-objects", type=int_at_least(1), default=8, help="max objects per image (default 8)")
    add_verbosity(s)
    return p


def _main(argv: Sequence[str] | None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args)
    from tqdm import tqdm

    from ..data import synth
    from ..images import check_pixels

    w, h = args.size
    check_pixels(w, h, f"--size {w}x{h}")
    check_out(Path(args.out), args.force)
    with tqdm(total=args.num_images, desc="generating", unit="img", disable=args.quiet, file=sys.stderr) as bar:
        ann = synth.generate(args.out, args.num_images, args.seed, (w, h), args.max_objects, progress=bar.update)
    print(ann)
    return 0


def check_out(out: Path, force: bool) -> None:
    """--out is new or empty; with --force also an earlier dataset (annotations.json + images/ only)."""
    atomic.check_writable_dir(out, "--out")
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    # staging folders of earlier runs that were killed outright are removed by the next run
    entries = {p.name for p in out.iterdir() if not (p.name.startswith(".images.") and p.name.endswith(".partial"))}
    if not entries:
        return
    if not force:
        raise InputError(f"--out {out}: already exists and is not empty; pass --force to write over the dataset there")
    if not entries <= {"annotations.json", "images"} or not (out / "annotations.json").is_file():
        raise InputError(
            f"--out {out}: is not a dataset (only annotations.json and images/ may be there); "
            "--force replaces only datasets, so nothing was written"
        )


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
