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

from .. import images as image_io
from ..errors import InputError, RtdetrEdgeError
from ..outputs import JsonlWriter, VideoWriter
from ._common import add_verbosity, run, setup_logging
from .options import add_runtime_arguments, open_detector

if TYPE_CHECKING:
    import numpy as np

    from ..detector import Detector

log = logging.getLogger("rtdetr_edge")

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm")

EXAMPLES = """\
examples:
  rtdetr-detect cat.jpg --model build/r18
  rtdetr-detect photos/ clip.mp4 --model build/r18 --out runs/detect --conf 0.5
  rtdetr-detect photos/ --model build/r18.onnx --no-save       # only detections.jsonl
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
    p.add_argument("--model", required=True, help="bundle directory, .onnx or .engine")
    p.add_argument("--out", default="runs/detect", help="output folder (default runs/detect)")
    p.add_argument("--conf", type=float, default=0.3, help="score threshold (default 0.3)")
    p.add_argument("--classes", type=int, nargs="*", default=None, help="keep only these class ids")
    p.add_argument("--max-det", type=int, default=300, help="max detections per image (default 300)")
    p.add_argument("--batch", type=int, default=1, help="images per inference batch (default 1)")
    p.add_argument("--no-save", action="store_true", help="write only detections.jsonl, no annotated media")
    add_runtime_arguments(p)
    add_verbosity(p)
    return p


def _main(argv: Sequence[str] | None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args)
    from tqdm import tqdm

    items = expand_sources(args.sources)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    det = open_detector(
        args, args.model, conf=args.conf, classes=args.classes, max_det=args.max_det, max_batch=max(args.batch, 1)
    )
    failed: list[str] = []
    counts = {"images": 0, "frames": 0, "detections": 0}
    t0 = time.perf_counter()
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
                    jsonl.write(
                        {"source": str(p), "image_size": [img.shape[1], img.shape[0]], "detections": d.to_list()}
                    )
                    if not args.no_save:
                        cv2.imwrite(str(out / p.name), d.draw(img))
                    counts["images"] += 1
                    counts["detections"] += len(d)
                bar.update(len(chunk))
            bar.close()
            for v in videos:
                try:
                    _video(v, det, out, jsonl, args, counts)
                except RtdetrEdgeError as exc:
                    failed.append(str(exc))
                    print(f"skipped: {exc}", file=sys.stderr)
        finally:
            det.close()
    dt = time.perf_counter() - t0
    n = counts["images"] + counts["frames"]
    print(
        f"{counts['images']} images, {counts['frames']} video frames, {counts['detections']} detections, "
        f"{len(failed)} skipped; {dt:.1f} s ({n / dt if dt else 0:.1f} img/s). Results in {out}/",
        file=sys.stderr,
    )
    return 1 if failed and not n else 0


def _video(
    path: Path, det: Detector, out: Path, jsonl: JsonlWriter, args: argparse.Namespace, counts: dict[str, int]
) -> None:
    from tqdm import tqdm

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"{path}: cannot open as a video")
    fps = cap.get(cv2.CAP_PROP_FPS)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    cap.release()
    writer = None
    frames = 0
    try:
        with tqdm(total=total, desc=path.name, unit="frame", disable=args.quiet, file=sys.stderr) as bar:
            for i, frame in _frames(path):
                d = det.detect_batch([frame])[0]
                jsonl.write(
                    {
                        "source": str(path),
                        "frame": i,
                        "image_size": [frame.shape[1], frame.shape[0]],
                        "detections": d.to_list(),
                    }
                )
                if not args.no_save:
                    if writer is None:
                        writer = VideoWriter(out / f"{path.stem}.mp4", fps, (frame.shape[1], frame.shape[0]))
                    writer.write(d.draw(frame))
                frames += 1
                counts["detections"] += len(d)
                bar.update(1)
    finally:
        counts["frames"] += frames
        if writer is not None:
            writer.close()
    if frames == 0:
        raise InputError(f"{path}: no frames could be read")


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
