#!/usr/bin/env python3
"""multi_stream: several cameras, streams or files on one model, one batched inference per tick.

Each tick takes the newest frame of every stream (at most ``--wait`` seconds for them), runs all
of them as one batch (``Detector.detect_batch``, or a Triton server with ``--server``, which
batches the concurrent requests itself), then hands each stream its own detections: its own
ByteTrack tracker (``--track``), its own JSON lines and annotated video under ``--out``.

Live sources (csi://, v4l2://, rtsp://) keep only their newest frame, so when inference is slower
than the cameras the frames in between are dropped and counted, never queued. Files are read
frame by frame (N in, N out) unless ``--realtime``, which replays them at their own frame rate as
a camera would deliver them, dropping (and counting) what inference cannot keep up with.
Ctrl-C or SIGTERM finishes the tick in flight and closes every output.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import camera_app
import cv2
import numpy as np

from rtdetr_edge import InputError
from rtdetr_edge.detections import Detections
from rtdetr_edge.outputs import JsonlWriter, VideoWriter, check_output_file

import capture
import sources

log = logging.getLogger("samples")

EXAMPLES = """\
examples:
  python3 samples/multi_stream.py csi://0 csi://1 rtsp://cam3:8554/s --model build/shapes --out runs/streams
  python3 samples/multi_stream.py a.mp4 b.mp4 c.mp4 d.mp4 --model build/shapes --realtime --track
  python3 samples/multi_stream.py a.mp4 b.mp4 --server http://localhost:8000 --out runs/streams --save-video
"""

Infer = Callable[[list[np.ndarray]], list[Detections]]


class PacedCapture:
    """A file read no faster than ``fps`` (as a camera delivers it); ``read`` fails at the end."""

    def __init__(self, cap: capture.Capture, fps: float) -> None:
        self._cap = cap
        self._period = 1.0 / fps
        self._next = time.perf_counter()

    def read(self) -> tuple[bool, Any]:
        delay = self._next - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        self._next = max(self._next + self._period, time.perf_counter() - self._period)
        return self._cap.read()

    def isOpened(self) -> bool:
        return bool(self._cap.isOpened())

    def release(self) -> None:
        self._cap.release()

    def get(self, prop: int) -> float:
        return float(self._cap.get(prop))


class _FileAsLive(capture.LatestFrameSource):
    """A live source over a file: its end is the end (a camera's read failure would reconnect)."""

    def _reconnect(self) -> capture.Capture | None:
        return None


def realtime_file_source(path: str, fps: float = 0.0) -> capture.FrameSource:
    """A video file replayed at its frame rate (or ``fps``) as a live source: newest frame, drops counted."""
    probe = cv2.VideoCapture(path)
    if not probe.isOpened():
        raise InputError(f"{path}: cannot open as a video")
    rate = fps or float(probe.get(cv2.CAP_PROP_FPS) or 0.0) or 30.0
    probe.release()
    return _FileAsLive(path, lambda: PacedCapture(cv2.VideoCapture(path), rate), rate).start()


def open_stream(text: str, opts: sources.CaptureOptions, realtime: bool) -> capture.FrameSource:
    spec = sources.parse_source(text)
    if realtime and spec.kind == "video":
        return realtime_file_source(spec.location, opts.rate)
    return sources.open_source(spec, opts)


@dataclass
class StreamStats:
    """What one stream did: frames inferred, frames its source dropped, detections."""

    name: str
    frames: int = 0
    dropped: int = 0
    detections: int = 0


@dataclass
class RunStats:
    """A run of :func:`run_streams`: ticks (one inference each), frames, seconds, batch sizes."""

    streams: list[StreamStats]
    ticks: int = 0
    seconds: float = 0.0
    batch_sizes: dict[int, int] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.streams)

    @property
    def dropped(self) -> int:
        return sum(s.dropped for s in self.streams)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def run_streams(
    streams: Sequence[capture.FrameSource],
    infer: Infer,
    on_result: Callable[[int, capture.Frame, Detections], None] | None = None,
    stopped: Callable[[], bool] = lambda: False,
    max_frames: int = 0,
    wait: float = 0.05,
) -> RunStats:
    """Tick until every stream ended (or ``stopped()``, or ``max_frames`` frames per stream).

    Each tick waits at most ``wait`` seconds in all for the streams' next frames, runs the frames
    it got as one ``infer`` call and passes each stream's result to ``on_result(i, frame, dets)``.
    """
    stats = RunStats([StreamStats(s.name) for s in streams])
    active = list(range(len(streams)))
    t0 = time.perf_counter()
    while active and not stopped():
        deadline = time.perf_counter() + wait
        batch: list[tuple[int, capture.Frame]] = []
        for i in list(active):
            frame = streams[i].read(timeout=max(0.0, deadline - time.perf_counter()))
            if frame is not None:
                batch.append((i, frame))
            elif streams[i].ended:
                active.remove(i)
        if not batch:
            continue
        results = infer([f.image for _, f in batch])
        stats.ticks += 1
        stats.batch_sizes[len(batch)] = stats.batch_sizes.get(len(batch), 0) + 1
        for (i, frame), dets in zip(batch, results):
            s = stats.streams[i]
            s.frames += 1
            s.detections += len(dets)
            if on_result is not None:
                on_result(i, frame, dets)
            if max_frames and s.frames >= max_frames and i in active:
                active.remove(i)
    stats.seconds = time.perf_counter() - t0
    for s, src in zip(stats.streams, streams):
        s.dropped = src.dropped
    return stats


def one_at_a_time(infer: Infer) -> Infer:
    """The baseline: the same frames, one inference each."""
    return lambda images: [infer([im])[0] for im in images]


@dataclass
class StreamOutputs:
    """One stream's tracker and files: ``OUT/stream<i>.jsonl`` and, with video, ``OUT/stream<i>.mp4``."""

    index: int
    name: str
    fps: float
    out: Path | None
    video: bool
    tracker: Any = None
    jsonl: JsonlWriter | None = None
    writer: VideoWriter | None = None

    def handle(self, stack: contextlib.ExitStack, frame: capture.Frame, dets: Detections, dropped: int) -> None:
        ids: list[int] | None = None
        if self.tracker is not None:
            dets, track_ids = self.tracker(dets)
            ids = [int(t) for t in track_ids]
        if self.out is None:
            return
        records = dets.to_list()
        for rec, tid in zip(records, ids or []):
            rec["track_id"] = tid
        if self.jsonl is None:
            self.jsonl = stack.enter_context(JsonlWriter(self.out / f"stream{self.index}.jsonl"))
        self.jsonl.write(
            {
                "stream": self.index,
                "source": self.name,
                "source_index": frame.index,
                "timestamp": round(frame.timestamp, 6),
                "image_size": [int(frame.image.shape[1]), int(frame.image.shape[0])],
                "dropped_so_far": dropped,
                "detections": records,
            }
        )
        if self.video:
            canvas = dets.draw(frame.image)
            camera_app.draw_hud(canvas, [f"stream {self.index}: {self.name}  dropped {dropped}"])
            if self.writer is None:
                h, w = canvas.shape[:2]
                self.writer = stack.enter_context(VideoWriter(self.out / f"stream{self.index}.mp4", self.fps, (w, h)))
            self.writer.write(canvas)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="multi_stream.py",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("sources", nargs="+", help="csi://N, v4l2:///dev/videoN, rtsp://..., video files, image folders")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--model", help="bundle directory, .onnx or .engine (local inference)")
    g.add_argument("--server", help="a Triton server with an rtdetr-triton repository (http://HOST:PORT)")
    p.add_argument("--out", default=None, help="folder for stream<i>.jsonl (and stream<i>.mp4 with --save-video)")
    p.add_argument("--save-video", action="store_true", help="also write annotated stream<i>.mp4 under --out")
    p.add_argument("--track", action="store_true", help="ByteTrack per stream (needs supervision)")
    p.add_argument("--realtime", action="store_true", help="replay video files at their frame rate, as cameras")
    p.add_argument("--one-at-a-time", action="store_true", help="the baseline: one inference per frame, no batching")
    p.add_argument("--conf", type=float, default=0.3, help="score threshold (default 0.3)")
    p.add_argument("--max-frames", type=int, default=0, help="stop each stream after N frames (default 0: no limit)")
    p.add_argument("--wait", type=float, default=0.05, help="longest wait per tick for the streams' frames (0.05 s)")
    p.add_argument("--input-rate", type=float, default=0.0, help="capture frame rate (cameras; --realtime files)")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    return p


def _open_model(args: argparse.Namespace) -> tuple[Infer, Callable[[], None]]:
    if args.server:
        from rtdetr_edge.serving.client import TritonDetector

        remote = TritonDetector(args.server, conf=args.conf)
        return remote.detect_batch, remote.close
    from rtdetr_edge import Detector
    from rtdetr_edge.engine import BundleEngines

    det = Detector(args.model, conf=args.conf, engines=BundleEngines())
    return det.detect_batch, det.close


def run(args: argparse.Namespace) -> int:
    specs = [sources.parse_source(s) for s in args.sources]  # every URI checked before anything opens
    out = Path(args.out) if args.out else None
    if out is not None:
        for i in range(len(specs)):
            check_output_file(out / f"stream{i}.jsonl", "--out")
    elif args.save_video:
        raise InputError("--save-video needs --out")
    opts = sources.CaptureOptions(rate=args.input_rate)
    infer, close = _open_model(args)
    if args.one_at_a_time:
        infer = one_at_a_time(infer)
    with contextlib.ExitStack() as stack:
        stack.callback(close)
        stop = stack.enter_context(camera_app.StopSignal())
        streams = [stack.enter_context(open_stream(s, opts, args.realtime)) for s in args.sources]
        outputs = [StreamOutputs(i, s.name, s.fps or 30.0, out, args.save_video) for i, s in enumerate(streams)]
        if args.track:
            import track

            for o in outputs:
                o.tracker = track.ByteTracker(fps=o.fps)
        print(f"running {len(streams)} streams (Ctrl-C to stop)", file=sys.stderr, flush=True)

        def on_result(i: int, frame: capture.Frame, dets: Detections) -> None:
            outputs[i].handle(stack, frame, dets, streams[i].dropped)

        stats = run_streams(streams, infer, on_result, lambda: stop.stopped, args.max_frames, args.wait)
        stop.interruptible = False  # from here on the ExitStack closes the writers
    mean_batch = stats.frames / stats.ticks if stats.ticks else 0.0
    print(
        f"{stats.frames} frames from {len(stats.streams)} streams in {stats.seconds:.1f} s ({stats.fps:.1f} FPS in "
        f"all), {stats.ticks} inferences (mean batch {mean_batch:.2f}), {stats.dropped} dropped",
        file=sys.stderr,
    )
    for i, s in enumerate(stats.streams):
        print(
            f"  stream {i} {s.name}: {s.frames} frames, {s.dropped} dropped, {s.detections} detections", file=sys.stderr
        )
    return 128 + stop.signum if stop.signum else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    camera_app.setup_logging(args.quiet)
    return camera_app.guarded(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
