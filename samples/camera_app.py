#!/usr/bin/env python3
"""camera_app: RT-DETR on a camera, an RTSP stream, a video file or an image folder.

Shows boxes, labels, scores, FPS and per-stage latency in a window (when there is a display),
and writes an annotated video and one JSON line per frame. Ctrl-C (SIGINT) or SIGTERM stops it
cleanly: the current frame is finished and every output file is closed, so what was processed
so far is a playable video and a complete JSONL file. A second signal stops at once (the files
are still closed).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

import cv2
import numpy as np

from rtdetr_edge import Detector, InputError, RtdetrEdgeError
from rtdetr_edge.detections import Detections
from rtdetr_edge.engine import BundleEngines
from rtdetr_edge.outputs import JsonlWriter, VideoWriter, check_output_file

# samples/ is a folder of scripts, not a package: `python samples/camera_app.py` puts this
# folder on sys.path, so sibling modules import by their plain name.
import capture
import sources

log = logging.getLogger("samples")

EXAMPLES = """\
sources (jetson-inference style):
  csi://0                MIPI CSI camera (GStreamer nvarguscamerasrc)
  v4l2:///dev/video0, 0  USB / V4L2 camera
  rtsp://host:8554/cam   RTSP stream (GStreamer rtspsrc, else FFmpeg)
  clip.mp4, photos/      video file, image folder (every frame is processed)

examples:
  python3 samples/camera_app.py csi://0 --model build/shapes
  python3 samples/camera_app.py v4l2:///dev/video0 --model build/shapes --output run.mp4 --jsonl run.jsonl
  python3 samples/camera_app.py rtsp://192.168.1.20:8554/cam --model build/shapes --input-rtsp-latency 100
  python3 samples/camera_app.py clip.mp4 --model build/shapes --no-display --output out.mp4 --max-frames 100
"""

# what a frame hook returns: the annotated image and one JSON-ready dict per detection
HookResult = tuple[np.ndarray, list[dict[str, Any]]]
FrameHook = Callable[[np.ndarray, Detections, capture.Frame], HookResult]
# builds the per-run hook once the source (its fps) and the detector are known
HookFactory = Callable[[capture.FrameSource, Detector], FrameHook]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options every sample shares (camera_app, track)."""
    p.add_argument("source", help="csi://N, v4l2:///dev/videoN or N, rtsp://..., a video file or an image folder")
    p.add_argument("--model", required=True, help="bundle directory, .onnx or .engine")
    p.add_argument("--output", default=None, help="annotated video to write (.mp4 or .avi)")
    p.add_argument("--jsonl", default=None, help="JSON lines to write, one per frame")
    p.add_argument(
        "--no-display",
        "--headless",
        dest="no_display",
        action="store_true",
        help="never open a window (the default when there is no display)",
    )
    p.add_argument("--max-frames", type=int, default=0, help="stop after N frames (default 0: no limit)")
    p.add_argument("--conf", type=float, default=0.3, help="score threshold (default 0.3)")
    p.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "onnxruntime", "tensorrt"],
        help="inference backend (default auto: TensorRT where present)",
    )
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "int8"])
    p.add_argument(
        "--output-fps",
        type=float,
        default=0.0,
        help="frame rate of --output (default: the source's; a live source that drops frames "
        "then plays back faster than real time)",
    )
    g = p.add_argument_group("input options (as jetson-inference names them)")
    g.add_argument("--input-width", type=int, default=0, help="capture width (CSI default 1280)")
    g.add_argument("--input-height", type=int, default=0, help="capture height (CSI default 720)")
    g.add_argument("--input-rate", type=float, default=0.0, help="capture frame rate (CSI default 30)")
    g.add_argument("--input-flip", default="none", choices=sources.FLIP_METHODS, help="CSI flip/rotation")
    g.add_argument("--input-codec", default="h264", choices=sorted(sources.RTSP_CODECS), help="RTSP codec")
    g.add_argument(
        "--input-decoder",
        default="auto",
        choices=["auto", "nvv4l2decoder", "cpu"],
        help="RTSP decoder (default auto: NVDEC on a Jetson)",
    )
    g.add_argument("--input-rtsp-latency", type=int, default=200, help="RTSP jitter buffer in ms (default 200)")
    g.add_argument("--input-rtsp-transport", default="tcp", choices=["tcp", "udp"])
    g.add_argument(
        "--input-loop", type=int, default=0, help="files: extra passes over the input (-1 = forever, default 0)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")


def parser(prog: str = "camera_app.py", description: str | None = __doc__) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description=description, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(p)
    return p


def capture_options(args: argparse.Namespace) -> sources.CaptureOptions:
    return sources.CaptureOptions(
        width=args.input_width,
        height=args.input_height,
        rate=args.input_rate,
        flip=args.input_flip,
        codec=args.input_codec,
        rtsp_latency=args.input_rtsp_latency,
        rtsp_transport=args.input_rtsp_transport,
        decoder=args.input_decoder,
        loop=args.input_loop,
    )


def display_available() -> bool:
    """True if OpenCV has a GUI backend and (on Linux) an X11 or Wayland display is set."""
    gui = re.search(r"GUI:\s*(\S+)", cv2.getBuildInformation())
    if gui is None or gui.group(1).upper() == "NONE":
        return False
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    return True


class StopSignal:
    """SIGINT/SIGTERM set a flag the loop checks between frames; a second signal raises KeyboardInterrupt.

    Finishing the frame in flight and then closing the writers is what leaves a playable video:
    an MP4 is only complete once its index is written at close.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self.interruptible = True  # False once the outputs are being closed: never cut that short
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            if self.interruptible:
                self.interruptible = False
                raise KeyboardInterrupt
            return
        self.signum = signum
        print(
            f"\n{signal.Signals(signum).name}: finishing the current frame and closing the outputs "
            "(again to stop at once)",
            file=sys.stderr,
            flush=True,
        )

    @property
    def stopped(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> StopSignal:
        for s in self.SIGNALS:
            self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)


class RateMeter:
    """Frames per second, smoothed (exponential moving average over about a second)."""

    def __init__(self) -> None:
        self.fps = 0.0
        self._last: float | None = None

    def tick(self) -> float:
        now = time.perf_counter()
        if self._last is not None:
            dt = max(now - self._last, 1e-6)
            alpha = min(1.0, dt)  # weight by elapsed time: ~1 s memory whatever the rate
            self.fps = 1.0 / dt if self.fps == 0.0 else (1 - alpha) * self.fps + alpha / dt
        self._last = now
        return self.fps


def draw_hud(canvas: np.ndarray, lines: Sequence[str], font_scale: float = 0.5) -> np.ndarray:
    """Write text lines top-left on a dark band (in place)."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    sizes = [cv2.getTextSize(t, font, font_scale, 1) for t in lines]
    line_h = max((h + b for (_, h), b in sizes), default=0) + 4
    width = max((w for (w, _), _ in sizes), default=0) + 8
    band = canvas[: line_h * len(lines) + 4, : width + 4]
    band[:] = (band * 0.35).astype(canvas.dtype)
    for i, text in enumerate(lines):
        cv2.putText(canvas, text, (6, (i + 1) * line_h), font, font_scale, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def default_hook(image: np.ndarray, dets: Detections, frame: capture.Frame) -> HookResult:
    return dets.draw(image), dets.to_list()


def _record(
    n: int, frame: capture.Frame, det: Detector, dets_out: list[dict[str, Any]], latency_ms: float
) -> dict[str, Any]:
    t = det.last_times
    rec: dict[str, Any] = {"frame": n, "source_index": frame.index, "timestamp": round(frame.timestamp, 6)}
    if frame.pts_ms is not None:
        rec["pts_ms"] = round(frame.pts_ms, 3)
    if frame.name is not None:
        rec["name"] = frame.name
    rec.update(
        {
            "image_size": [int(frame.image.shape[1]), int(frame.image.shape[0])],
            "latency_ms": round(latency_ms, 3),
            "times_ms": {
                "preprocess": round(t.preprocess, 3),
                "infer": round(t.infer, 3),
                "postprocess": round(t.postprocess, 3),
            },
            "detections": dets_out,
        }
    )
    return rec


def run(args: argparse.Namespace, hook_factory: HookFactory | None = None) -> int:
    """The shared capture -> detect -> annotate -> output loop. Returns the exit code."""
    spec = sources.parse_source(args.source)
    for flag, value in (("--output", args.output), ("--jsonl", args.jsonl)):
        if value:
            check_output_file(value, flag)  # before the model loads and the camera opens
    if args.output and args.jsonl and os.path.abspath(args.output) == os.path.abspath(args.jsonl):
        raise InputError(f"--output and --jsonl name the same file {args.output}")
    show = not args.no_display and display_available()
    if not args.no_display and not show:
        log.info("no display (or OpenCV without GUI): running headless")
    # engines are built (once, minutes on a Jetson) and cached in the bundle on first use
    det = Detector(args.model, conf=args.conf, backend=args.backend, precision=args.precision, engines=BundleEngines())
    log.info("%r", det)
    n, t_start = 0, time.perf_counter()
    meter = RateMeter()
    with contextlib.ExitStack() as stack:
        stack.callback(det.close)
        stop = stack.enter_context(StopSignal())
        src = stack.enter_context(sources.open_source(spec, capture_options(args)))
        hook = hook_factory(src, det) if hook_factory else default_hook
        # the outputs open with the first frame, once start-up succeeded; an earlier --jsonl or
        # --output is replaced only when the new one is complete (the writers publish on close)
        jsonl: JsonlWriter | None = None
        writer: VideoWriter | None = None
        if show:
            stack.callback(cv2.destroyAllWindows)
        last_report = time.perf_counter()
        while not stop.stopped and not (args.max_frames and n >= args.max_frames):
            frame = src.read(timeout=0.5)
            if frame is None:
                if src.ended:
                    break
                continue  # live source between frames (or reconnecting): check for a stop, wait again
            dets = det.detect_batch([frame.image])[0]
            canvas, dets_out = hook(frame.image, dets, frame)
            latency_ms = (time.time() - frame.timestamp) * 1e3
            fps = meter.tick()
            t = det.last_times
            draw_hud(
                canvas,
                [
                    f"{fps:5.1f} FPS  latency {latency_ms:5.1f} ms  dropped {src.dropped}",
                    f"pre {t.preprocess:.1f}  infer {t.infer:.1f}  post {t.postprocess:.1f} ms  "
                    f"{len(dets_out)} objects",
                ],
            )
            if args.output:
                if writer is None:
                    h, w = canvas.shape[:2]
                    writer = stack.enter_context(VideoWriter(args.output, args.output_fps or src.fps or 30.0, (w, h)))
                writer.write(canvas)
            if args.jsonl:
                if jsonl is None:
                    jsonl = stack.enter_context(JsonlWriter(args.jsonl))
                jsonl.write(_record(n, frame, det, dets_out, latency_ms))
            n += 1
            if n == 1:
                outs = [o for o in (args.output, args.jsonl) if o] + (["window"] if show else [])
                print(
                    f"running: {src.name} -> {', '.join(outs) or 'no outputs'} (Ctrl-C to stop)",
                    file=sys.stderr,
                    flush=True,
                )
            if show:
                cv2.imshow("rtdetr-edge", canvas)
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
            now = time.perf_counter()
            if not args.quiet and now - last_report >= 2.0:
                last_report = now
                print(
                    f"frame {n}: {fps:.1f} FPS, infer {t.infer:.1f} ms, latency {latency_ms:.0f} ms, "
                    f"dropped {src.dropped}",
                    file=sys.stderr,
                    flush=True,
                )
        stop.interruptible = False  # from here on the ExitStack closes the writers
    dt = time.perf_counter() - t_start
    written = [f"{p}" for p in (args.output if writer is not None else None, args.jsonl if jsonl else None) if p]
    print(
        f"{n} frames in {dt:.1f} s ({n / dt if dt else 0:.1f} FPS), {src.dropped} dropped"
        + (f"; wrote {', '.join(written)}" if written else ""),
        file=sys.stderr,
        flush=True,
    )
    return 128 + stop.signum if stop.signum else 0


def setup_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("samples", "rtdetr_edge"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.WARNING if quiet else logging.INFO)
        logger.propagate = False


def main(
    argv: Sequence[str] | None = None,
    hook_factory: HookFactory | None = None,
    arg_parser: argparse.ArgumentParser | None = None,
) -> int:
    args = (arg_parser or parser()).parse_args(argv)
    setup_logging(args.quiet)
    return guarded(lambda: run(args, hook_factory))


def guarded(body: Callable[[], int]) -> int:
    """Run a sample's body: our errors and OSError as one line (exit 1), Ctrl-C as exit 130."""
    try:
        return body()
    except RtdetrEdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # disk full, read-only, permission denied: one line naming the path
        where = " -> ".join(os.fsdecode(p) for p in (exc.filename, exc.filename2) if p is not None)
        print(f"error: {where + ': ' if where else ''}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopped; the outputs were closed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
