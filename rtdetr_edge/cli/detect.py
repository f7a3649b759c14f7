"""rtdetr-detect: run a bundle on images, folders and videos; write annotated copies and JSON lines."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .. import atomic
from .. import images as image_io
from ..contact_sheet import INDEX, THUMBNAILS, ContactSheet, check_sheet_paths
from ..errors import InputError, RtdetrEdgeError
from ..outputs import JsonlWriter, OutputError, VideoWriter, write_image
from ._common import add_verbosity, int_at_least, run, setup_logging
from .options import add_runtime_arguments, open_detector

if TYPE_CHECKING:
    from ..detector import Detector
    from ..serving.client import TritonDetector

log = logging.getLogger("rtdetr_edge")

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm")

EXAMPLES = """\
examples:
  rtdetr-detect cat.jpg --model build/r18
  rtdetr-detect photos/ clip.mp4 --model build/r18 --out runs/detect --conf 0.5
  rtdetr-detect photos/ --model build/r18.onnx --no-save       # only detections.jsonl
  rtdetr-detect photos/ --model build/r18 --out runs/detect --exist-ok   # write into runs/detect again
  rtdetr-detect photos/ clip.mp4 --server http://localhost:8000      # a Triton server (rtdetr-serve) detects

results: --out is never overwritten by default: when it exists and is not empty, the results go
to a new numbered folder next to it (runs/detect -> runs/detect2, runs/detect3, ...; printed at
the end); --exist-ok writes into --out itself instead, replacing files of the same names once
their new content is complete. An --out that is or contains one of the sources is refused.
Output names are unique: a second x.jpg (from another folder) is written as x_2.jpg, a second
clip (clip.avi after clip.mp4) as clip_2.mp4; each line of detections.jsonl names its "source"
and its "output" (the annotated file in --out; null with --no-save). An --out that is, contains
or lies inside --model is refused too. --out DIR also gets a contact sheet, DIR/index.html: a
thumbnail (DIR/thumbnails/) per annotated file, linking to it, with what was detected in each;
it lists the run that wrote it (not with --no-save).

detections: one per object, its best label (the model can give one object several labels;
--all-labels keeps them all, as COCO AP does), boxes clipped to the image (--no-clip keeps them
as predicted); the best detection is drawn on top. Images above the pixel limit (89,478,485,
Pillow's; $RTDETR_EDGE_MAX_IMAGE_PIXELS changes it) are skipped before they are decoded.
"""


def expand_sources(sources: Sequence[str]) -> list[Path]:
    """Files named directly, plus the images and videos inside named folders (sorted)."""
    items: list[Path] = []
    for s in sources:
        p = Path(s)
        if p.is_dir():
            items += image_io.list_images(p, image_io.IMAGE_SUFFIXES + VIDEO_SUFFIXES, "images or videos")
        elif p.is_file():
            items.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    return items


def _frames(path: Path) -> Iterator[tuple[int, np.ndarray]]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"{path}: cannot open as a video")
    try:
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            yield i, frame
            i += 1
    finally:
        cap.release()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rtdetr-detect", description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("sources", nargs="+", help="image files, folders, video files")
    p.add_argument("--model", default=None, help="bundle directory, .onnx or .engine (or --server)")
    p.add_argument(
        "--server",
        default=None,
        help="detect on a Triton server instead of a local model: http://HOST:PORT, grpc://HOST:PORT "
        "(serving an rtdetr-triton repository, e.g. rtdetr-serve; needs rtdetr-edge[serve])",
    )
    p.add_argument("--server-model", default="rtdetr", help="the server's ensemble name (default rtdetr)")
    p.add_argument(
        "--out",
        default="runs/detect",
        help="output folder (default runs/detect); an existing non-empty one becomes runs/detect2, ... "
        "unless --exist-ok",
    )
    p.add_argument(
        "--exist-ok", action="store_true", help="write into an existing non-empty --out instead of a new numbered one"
    )
    p.add_argument("--conf", type=float, default=0.3, help="score threshold (default 0.3)")
    p.add_argument(
        "--classes",
        nargs="+",
        default=None,
        metavar="CLASS",
        help="keep only these classes, by id or name (e.g. --classes 0 star)",
    )
    p.add_argument(
        "--all-labels",
        action="store_true",
        help="keep every label the model gives one object (default: its best label only; COCO AP and "
        "transformers' post-processing keep them all)",
    )
    p.add_argument(
        "--no-clip", action="store_true", help="keep boxes as the model predicts them (default: clipped to the image)"
    )
    p.add_argument("--max-det", type=int_at_least(1), default=300, help="max detections per image (default 300)")
    p.add_argument("--batch", type=int_at_least(1), default=1, help="images per inference batch (default 1)")
    p.add_argument("--no-save", action="store_true", help="write only detections.jsonl, no annotated media")
    add_runtime_arguments(p)
    add_verbosity(p)
    return p


def _main(argv: Sequence[str] | None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args)
    items = expand_sources(args.sources)
    atomic.refuse_overlap(args.out, args.sources, "--out", inside=False)
    atomic.refuse_overlap(args.out, [args.model], "--out")  # results never go into the model's folder
    out = run_folder(Path(args.out), args.exist_ok)
    atomic.refuse_overlap(out, args.sources, "--out", inside=False)
    atomic.refuse_overlap(out, [args.model], "--out")
    atomic.check_writable_dir(out, "--out")
    if not args.no_save:
        check_sheet_paths(out)
    names = OutputNames()
    det = _open(args)
    failed: list[str] = []
    counts = {"images": 0, "frames": 0, "detections": 0}
    t0 = time.perf_counter()
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        det.close()
        raise InputError(f"--out {out}: cannot create it ({exc.strerror or exc})") from exc
    sheet = None if args.no_save else ContactSheet(out, f"{args.model or args.server}")
    try:
        _detect_all(items, det, out, names, args, counts, failed, sheet)
        if sheet is not None:
            sheet.skipped = failed
            sheet.write()
    finally:
        if created and not any(out.iterdir()):
            out.rmdir()  # nothing came of this run: leave no empty folder behind
    dt = time.perf_counter() - t0
    n = counts["images"] + counts["frames"]
    print(
        f"{counts['images']} images, {counts['frames']} video frames, {counts['detections']} detections, "
        f"{len(failed)} skipped; {dt:.1f} s ({n / dt if dt else 0:.1f} img/s). "
        + (f"Results in {out}/" if n else "Nothing written."),
        file=sys.stderr,
    )
    return 1 if failed and not n else 0


def _open(args: argparse.Namespace) -> Detector | TritonDetector:
    """The local Detector of --model, or a TritonDetector for --server (exactly one of them)."""
    if (args.model is None) == (args.server is None):
        raise InputError("expected --model BUNDLE or --server URL (one of them)")
    if args.server is not None:
        from ..serving.client import TritonDetector

        return TritonDetector(
            args.server, model=args.server_model, conf=args.conf, classes=args.classes, max_det=args.max_det
        )
    return open_detector(
        args,
        args.model,
        conf=args.conf,
        classes=args.classes,
        max_det=args.max_det,
        max_batch=args.batch,
        clip=not args.no_clip,
        all_labels=args.all_labels,
    )


def run_folder(out: Path, exist_ok: bool) -> Path:
    """``out`` if it is new, empty or ``exist_ok``; else the first free ``out2``, ``out3``, ..."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    if exist_ok or not out.exists() or not any(out.iterdir()):
        return out
    base = out if out.name else out.resolve()  # "." and "..": number the folder they name
    k = 2
    while True:
        candidate = base.with_name(f"{base.name}{k}")
        if not candidate.exists() or (candidate.is_dir() and not any(candidate.iterdir())):
            log.info("--out %s exists; writing to %s (--exist-ok writes into %s)", out, candidate, out)
            return candidate
        k += 1


class OutputNames:
    """Unique output file names within one run: ``x.jpg``, then ``x_2.jpg``, ``x_3.jpg``, ..."""

    def __init__(self) -> None:
        self._used: set[str] = {"detections.jsonl", INDEX, THUMBNAILS}

    def take(self, stem: str, suffix: str) -> str:
        name, k = f"{stem}{suffix}", 2
        while name.lower() in self._used:
            name, k = f"{stem}_{k}{suffix}", k + 1
        self._used.add(name.lower())
        return name


def _detect_all(
    items: list[Path],
    det: Detector | TritonDetector,
    out: Path,
    names: OutputNames,
    args: argparse.Namespace,
    counts: dict[str, int],
    failed: list[str],
    sheet: ContactSheet | None,
) -> None:
    from tqdm import tqdm

    with JsonlWriter(out / "detections.jsonl") as jsonl:
        try:
            images = [p for p in items if p.suffix.lower() not in VIDEO_SUFFIXES]
            videos = [p for p in items if p.suffix.lower() in VIDEO_SUFFIXES]
            bar = tqdm(total=len(images), desc="images", unit="img", disable=not images or args.quiet, file=sys.stderr)
            for start in range(0, len(images), max(args.batch, 1)):
                chunk, loaded = images[start : start + max(args.batch, 1)], []
                for p in chunk:
                    try:
                        loaded.append((p, image_io.read_image(p)))
                    except RtdetrEdgeError as exc:
                        failed.append(str(exc))
                        bar.write(f"skipped: {exc}", file=sys.stderr)
                for (p, img), d in zip(loaded, det.detect_batch([im for _, im in loaded])):
                    target = None if args.no_save else names.take(p.stem, p.suffix)
                    jsonl.write(
                        {
                            "source": str(p),
                            "output": target,  # the annotated copy in --out (None with --no-save)
                            "image_size": [img.shape[1], img.shape[0]],
                            "detections": d.to_list(),
                        }
                    )
                    if target is not None:
                        try:
                            drawn = d.draw(img)
                            write_image(out / target, drawn)
                            if sheet is not None:
                                sheet.add_image(p, target, drawn, d)
                        except OutputError as exc:
                            if exc.__cause__ is not None:  # the disk (full, read-only): stop here
                                raise
                            failed.append(str(exc))  # this image's format: count it, go on
                            bar.write(f"not saved: {exc}", file=sys.stderr)
                    counts["images"] += 1
                    counts["detections"] += len(d)
                bar.update(len(chunk))
            bar.close()
            for v in videos:
                try:
                    clip = out / names.take(v.stem, ".mp4") if not args.no_save else None
                    _video(v, det, clip, jsonl, args, counts, sheet)
                except OutputError:
                    raise
                except RtdetrEdgeError as exc:
                    failed.append(str(exc))
                    print(f"skipped: {exc}", file=sys.stderr)
        finally:
            det.close()


def _video(
    path: Path,
    det: Detector | TritonDetector,
    target: Path | None,
    jsonl: JsonlWriter,
    args: argparse.Namespace,
    counts: dict[str, int],
    sheet: ContactSheet | None,
) -> None:
    from collections import Counter

    from tqdm import tqdm

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"{path}: cannot open as a video")
    fps = cap.get(cv2.CAP_PROP_FPS)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    cap.release()
    writer = None
    frames = 0
    first: np.ndarray | None = None  # the first annotated frame: the sheet's thumbnail
    labels: Counter[str] = Counter()
    try:
        with tqdm(total=total, desc=path.name, unit="frame", disable=args.quiet, file=sys.stderr) as bar:
            for i, frame in _frames(path):
                d = det.detect_batch([frame])[0]
                jsonl.write(
                    {
                        "source": str(path),
                        "output": target.name if target is not None else None,
                        "frame": i,
                        "image_size": [frame.shape[1], frame.shape[0]],
                        "detections": d.to_list(),
                    }
                )
                if target is not None:
                    if writer is None:
                        writer = VideoWriter(target, fps, (frame.shape[1], frame.shape[0]))
                    drawn = d.draw(frame)
                    writer.write(drawn)
                    first = drawn if first is None else first
                    labels.update(x.label for x in d)
                frames += 1
                counts["detections"] += len(d)
                bar.update(1)
    finally:
        counts["frames"] += frames
        if writer is not None:
            writer.close()
    if frames == 0:
        raise InputError(f"{path}: no frames could be read")
    if sheet is not None and target is not None and first is not None:
        sheet.add(path, target.name, first, labels, frames)


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
