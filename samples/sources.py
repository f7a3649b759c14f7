"""Video sources named the way Jetson users name them: URI parsing and GStreamer pipelines.

URIs follow jetson-inference's ``videoSource``::

    csi://0                 MIPI CSI camera 0 (GStreamer nvarguscamerasrc)
    v4l2:///dev/video0      V4L2 (USB) camera; also ``/dev/video0`` or a bare index ``0``
    rtsp://user:pw@host/s   RTSP stream (GStreamer rtspsrc, else OpenCV's FFmpeg backend)
    clip.mp4, file://clip   video file
    photos/, 'photos/*.jpg' image folder or glob, or one image file

:func:`open_source` returns a reader from capture.py: live sources (camera, stream) keep only
the newest frame and reconnect with backoff; files deliver every frame.

The pipeline-string builders are pure functions so they can be unit-tested without GStreamer.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from rtdetr_edge import InputError
from rtdetr_edge.images import IMAGE_SUFFIXES, list_images

from capture import Capture, FrameSource, LatestFrameSource, SequentialSource

log = logging.getLogger("samples")

# nvvidconv / nvarguscamerasrc ``flip-method`` values, named as jetson-inference's --input-flip.
FLIP_METHODS = (
    "none",
    "counterclockwise",
    "rotate-180",
    "clockwise",
    "horizontal",
    "upper-right-diagonal",
    "vertical",
    "upper-left-diagonal",
)
_ROTATING_FLIPS = {"counterclockwise", "clockwise", "upper-right-diagonal", "upper-left-diagonal"}
# codec -> (RTP depayloader, parser, software decoder)
RTSP_CODECS = {"h264": ("rtph264depay", "h264parse", "avdec_h264"), "h265": ("rtph265depay", "h265parse", "avdec_h265")}
_UNSUPPORTED_SCHEMES = ("rtp", "rtmp", "webrtc", "display", "http", "https", "udp")


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source URI.

    Attributes:
        kind: ``"csi"``, ``"v4l2"``, ``"rtsp"``, ``"video"`` or ``"images"``.
        location: sensor id (csi), device path or index (v4l2), URL (rtsp), path (video, images).
        files: the image files, for ``"images"``.
    """

    kind: str
    location: str
    files: tuple[Path, ...] = ()

    @property
    def live(self) -> bool:
        return self.kind in ("csi", "v4l2", "rtsp")


@dataclass
class CaptureOptions:
    """Capture settings, named after jetson-inference's ``--input-*`` options.

    Attributes:
        width, height: capture size; 0 = the source's own (CSI: 1280x720).
        rate: frames per second; 0 = the source's own (CSI: 30).
        flip: one of :data:`FLIP_METHODS` (CSI only; applied by nvvidconv).
        codec: ``"h264"`` or ``"h265"`` (RTSP through GStreamer).
        rtsp_latency: rtspsrc jitter-buffer latency in ms (200; jetson-inference uses 2000).
        rtsp_transport: ``"tcp"`` (robust) or ``"udp"`` (lower latency on a clean network).
        decoder: ``"auto"`` (NVDEC on a Jetson, else software), ``"nvv4l2decoder"`` or ``"cpu"``.
        loop: file sources only: extra passes over the input (-1 = forever, 0 = once).
    """

    width: int = 0
    height: int = 0
    rate: float = 0.0
    flip: str = "none"
    codec: str = "h264"
    rtsp_latency: int = 200
    rtsp_transport: str = "tcp"
    decoder: str = "auto"
    loop: int = 0


def parse_source(text: str) -> SourceSpec:
    """Parse a jetson-inference style source URI (see the module docstring)."""
    text = str(text).strip()
    if not text:
        raise InputError("empty source; expected csi://0, v4l2:///dev/video0, rtsp://..., a file or a folder")
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower() if sep else ""
    if scheme == "csi":
        if not rest.isdigit():
            raise InputError(f"{text}: expected csi://N with a sensor id, e.g. csi://0")
        return SourceSpec("csi", str(int(rest)))
    if scheme == "v4l2":
        if rest.isdigit():
            return SourceSpec("v4l2", str(int(rest)))
        if not rest.startswith("/dev/"):
            raise InputError(f"{text}: expected v4l2:///dev/videoN (three slashes) or v4l2://N")
        return SourceSpec("v4l2", rest)
    if scheme in ("rtsp", "rtsps"):
        if not rest or rest.startswith("/"):
            raise InputError(f"{text}: expected rtsp://[user:password@]host[:port]/path")
        return SourceSpec("rtsp", text)
    if scheme == "file":
        text = rest
    elif sep:
        if scheme in _UNSUPPORTED_SCHEMES:
            raise InputError(
                f"{text}: {scheme}:// inputs are not supported by this sample; use csi://, v4l2://, "
                "rtsp://, a video file or an image folder"
            )
        raise InputError(f"{text}: unknown scheme {scheme!r}; expected csi://, v4l2://, rtsp://, file://")
    if text.isdigit():
        return SourceSpec("v4l2", str(int(text)))
    if text.startswith("/dev/video"):
        return SourceSpec("v4l2", text)
    if any(c in text for c in "*?["):
        files = tuple(sorted(Path(p) for p in glob.glob(text) if Path(p).suffix.lower() in IMAGE_SUFFIXES))
        if not files:
            raise InputError(f"{text}: no images match this pattern")
        return SourceSpec("images", text, files)
    path = Path(text)
    if path.is_dir():
        return SourceSpec("images", str(path), tuple(list_images(path)))
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return SourceSpec("images", str(path), (path,))
        return SourceSpec("video", str(path))
    raise InputError(f"{text}: no such file or folder (and not csi://, v4l2://, rtsp:// or a device index)")


def _fraction(rate: float) -> str:
    """GStreamer framerate: 30 -> '30/1', 12.5 -> '25/2', 29.97 -> '30000/1001' (NTSC rates)."""
    ntsc = round(rate * 1.001)
    if abs(rate - ntsc / 1.001) < 0.005 < abs(rate - ntsc):
        return f"{ntsc * 1000}/1001"
    f = Fraction(rate).limit_denominator(1000)
    return f"{f.numerator}/{f.denominator}"


def csi_pipeline(
    sensor_id: int | str = 0, width: int = 1280, height: int = 720, rate: float = 30, flip: str = "none"
) -> str:
    """GStreamer pipeline for a MIPI CSI camera, for ``cv2.VideoCapture(p, cv2.CAP_GSTREAMER)``.

    nvarguscamerasrc delivers NV12 in NVMM (GPU) memory; nvvidconv flips/rotates and copies it
    to system memory as BGRx; videoconvert drops the x (OpenCV wants BGR). The appsink keeps one
    buffer and drops older ones so a slow consumer never builds a backlog.
    """
    if flip not in FLIP_METHODS:
        raise InputError(f"flip {flip!r}: expected one of {', '.join(FLIP_METHODS)}")
    if width <= 0 or height <= 0 or rate <= 0:
        raise InputError(f"CSI capture needs a positive size and rate, got {width}x{height}@{rate}")
    # a 90-degree rotation swaps the output size
    out_w, out_h = (height, width) if flip in _ROTATING_FLIPS else (width, height)
    return (
        f"nvarguscamerasrc sensor-id={int(sensor_id)} ! "
        f"video/x-raw(memory:NVMM), width=(int){width}, height=(int){height}, "
        f"framerate=(fraction){_fraction(rate)}, format=(string)NV12 ! "
        f"nvvidconv flip-method={FLIP_METHODS.index(flip)} ! "
        f"video/x-raw, width=(int){out_w}, height=(int){out_h}, format=(string)BGRx ! "
        "videoconvert ! video/x-raw, format=(string)BGR ! "
        "appsink drop=true max-buffers=1 sync=false"
    )


def rtsp_pipeline(
    url: str, latency: int = 200, codec: str = "h264", decoder: str = "nvv4l2decoder", transport: str = "tcp"
) -> str:
    """GStreamer pipeline for an RTSP stream, for ``cv2.VideoCapture(p, cv2.CAP_GSTREAMER)``.

    Args:
        url: ``rtsp://`` URL (quoted in the pipeline, so ``&`` and ``;`` are safe).
        latency: rtspsrc jitter buffer in ms; lower is fresher but less tolerant of network jitter.
        codec: ``"h264"`` or ``"h265"``.
        decoder: ``"nvv4l2decoder"`` (Jetson hardware decoder, output in NVMM converted by
            nvvidconv) or ``"cpu"`` (libav software decoder, for desktops).
        transport: ``"tcp"`` or ``"udp"``.
    """
    if codec not in RTSP_CODECS:
        raise InputError(f"codec {codec!r}: expected one of {', '.join(RTSP_CODECS)}")
    if transport not in ("tcp", "udp"):
        raise InputError(f"RTSP transport {transport!r}: expected tcp or udp")
    if '"' in url or "\\" in url:
        raise InputError(f"{url}: quotes and backslashes are not allowed in an RTSP URL")
    if latency < 0:
        raise InputError(f"RTSP latency must be >= 0 ms, got {latency}")
    depay, parse, soft = RTSP_CODECS[codec]
    if decoder == "nvv4l2decoder":
        decode = "nvv4l2decoder ! nvvidconv ! video/x-raw, format=(string)BGRx ! videoconvert"
    elif decoder == "cpu":
        decode = f"{soft} ! videoconvert"
    else:
        raise InputError(f"decoder {decoder!r}: expected nvv4l2decoder or cpu")
    return (
        f'rtspsrc location="{url}" latency={int(latency)} protocols={transport} ! '
        f"{depay} ! {parse} ! {decode} ! video/x-raw, format=(string)BGR ! "
        "appsink drop=true max-buffers=1 sync=false"
    )


def opencv_has_gstreamer() -> bool:
    """True if this OpenCV was built with GStreamer (pip wheels are not; JetPack's and Ubuntu's are)."""
    return re.search(r"GStreamer:\s*YES", cv2.getBuildInformation()) is not None


def is_jetson() -> bool:
    """True on a Jetson (or in an L4T container on one)."""
    if Path("/etc/nv_tegra_release").exists():
        return True
    try:
        return "jetson" in Path("/proc/device-tree/model").read_text(errors="ignore").lower()
    except OSError:
        return False


def _video_frames(path: str) -> Callable[[], Iterator[tuple[np.ndarray, float | None, str | None]]]:
    def frames() -> Iterator[tuple[np.ndarray, float | None, str | None]]:
        cap = cv2.VideoCapture(path)
        if not cap.isOpened():
            raise InputError(f"{path}: cannot open as a video")
        try:
            while True:
                ok, image = cap.read()
                if not ok:
                    break
                yield image, float(cap.get(cv2.CAP_PROP_POS_MSEC)), None
        finally:
            cap.release()

    return frames


def _image_frames(files: tuple[Path, ...]) -> Callable[[], Iterator[tuple[np.ndarray, float | None, str | None]]]:
    def frames() -> Iterator[tuple[np.ndarray, float | None, str | None]]:
        for f in files:
            image = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if image is None:
                log.warning("%s: unreadable image, skipped", f)
                continue
            yield image, None, f.name

    return frames


def _open_with_timeouts(source: str, api: int, timeout_ms: int = 10000) -> cv2.VideoCapture:
    """Open with open/read timeouts where the backend takes them, so a dead stream returns, not hangs."""
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
    cap = cv2.VideoCapture(source, api, params)
    if not cap.isOpened():  # older OpenCV builds refuse parameters they do not know
        cap = cv2.VideoCapture(source, api)
    return cap


def _rtsp_opener(url: str, opts: CaptureOptions) -> Callable[[], Capture]:
    decoder = opts.decoder
    if decoder == "auto":
        decoder = "nvv4l2decoder" if is_jetson() else "cpu"
    pipeline = rtsp_pipeline(url, opts.rtsp_latency, opts.codec, decoder, opts.rtsp_transport)
    use_gst = opencv_has_gstreamer()

    def opener() -> Capture:
        if use_gst:
            cap = cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER)
            if cap.isOpened():
                return cap
            log.warning("%s: GStreamer pipeline did not open; falling back to FFmpeg", url)
        # FFmpeg reads its options from this variable; TCP avoids smeared frames from lost UDP packets
        os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", f"rtsp_transport;{opts.rtsp_transport}")
        cap = _open_with_timeouts(url, cv2.CAP_FFMPEG)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    return opener


def _v4l2_opener(location: str, opts: CaptureOptions) -> Callable[[], Capture]:
    device: int | str = int(location) if location.isdigit() else location
    api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY

    def opener() -> Capture:
        cap = cv2.VideoCapture(device, api)
        if not cap.isOpened() and api != cv2.CAP_ANY:
            cap = cv2.VideoCapture(device)
        if opts.width and opts.height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, opts.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, opts.height)
        if opts.rate:
            cap.set(cv2.CAP_PROP_FPS, opts.rate)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's queue is backlog too
        return cap

    return opener


def open_source(
    spec: SourceSpec, opts: CaptureOptions | None = None, *, max_reconnects: int | None = None
) -> FrameSource:
    """Open ``spec`` and start its reader thread (a live source is opened before this returns)."""
    opts = opts or CaptureOptions()
    if spec.kind == "csi":
        if not opencv_has_gstreamer():
            raise InputError(
                "csi:// needs OpenCV built with GStreamer (this one is not: pip's opencv-python "
                "wheels never are). On a Jetson use JetPack's OpenCV (python3 -c 'import cv2' "
                "outside any venv) or the Dockerfile.jetson image"
            )
        pipeline = csi_pipeline(spec.location, opts.width or 1280, opts.height or 720, opts.rate or 30, opts.flip)
        log.info("GStreamer: %s", pipeline)
        return LatestFrameSource(
            f"csi://{spec.location}",
            lambda: cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER),
            opts.rate or 30,
            max_reconnects=max_reconnects,
        ).start()
    if spec.kind == "v4l2":
        return LatestFrameSource(
            f"v4l2:{spec.location}", _v4l2_opener(spec.location, opts), opts.rate, max_reconnects=max_reconnects
        ).start()
    if spec.kind == "rtsp":
        return LatestFrameSource(
            spec.location, _rtsp_opener(spec.location, opts), opts.rate, max_reconnects=max_reconnects
        ).start()
    if spec.kind == "video":
        cap = cv2.VideoCapture(spec.location)
        if not cap.isOpened():
            raise InputError(f"{spec.location}: cannot open as a video")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        cap.release()
        return SequentialSource(
            spec.location, _video_frames(spec.location), opts.rate or fps or 30.0, loop=opts.loop
        ).start()
    if spec.kind == "images":
        return SequentialSource(spec.location, _image_frames(spec.files), opts.rate or 30.0, loop=opts.loop).start()
    raise InputError(f"unknown source kind {spec.kind!r}")
