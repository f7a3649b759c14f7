"""The samples' source URIs (csi://, v4l2://, rtsp://, files, folders, globs) and GStreamer pipelines."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rtdetr_edge.errors import InputError


@pytest.fixture()
def media(tmp_path: Path) -> Path:
    (tmp_path / "clip.mp4").write_bytes(b"")  # parse_source only looks at names and existence
    (tmp_path / "photos").mkdir()
    for name in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / "photos" / name).write_bytes(b"")
    (tmp_path / "empty").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    "uri, kind, location",
    [
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
    ],
)
def test_source_uri_is_parsed_into_kind_and_location(
    samples: SimpleNamespace, media: Path, uri: str, kind: Any, location: str
) -> None:
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


def test_default_csi_pipeline_is_the_jetson_camera_pipeline(samples: SimpleNamespace) -> None:
    assert samples.sources.csi_pipeline() == (
        "nvarguscamerasrc sensor-id=0 ! "
        "video/x-raw(memory:NVMM), width=(int)1280, height=(int)720, framerate=(fraction)30/1, format=(string)NV12 ! "
        "nvvidconv flip-method=0 ! video/x-raw, width=(int)1280, height=(int)720, format=(string)BGRx ! "
        "videoconvert ! video/x-raw, format=(string)BGR ! appsink drop=true max-buffers=1 sync=false"
    )


@pytest.mark.parametrize(
    "flip, method, out_size",
    [
        ("none", 0, (1920, 1080)),
        ("counterclockwise", 1, (1080, 1920)),
        ("rotate-180", 2, (1920, 1080)),
        ("clockwise", 3, (1080, 1920)),
        ("horizontal", 4, (1920, 1080)),
        ("upper-right-diagonal", 5, (1080, 1920)),
        ("vertical", 6, (1920, 1080)),
        ("upper-left-diagonal", 7, (1080, 1920)),
    ],
)
def test_csi_flip_methods_rotate_the_output_size(
    samples: SimpleNamespace, flip: str, method: int, out_size: tuple[int, int]
) -> None:
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


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (
            {},
            'rtspsrc location="rtsp://cam:554/s?a=1&b=2" latency=200 protocols=tcp ! rtph264depay ! h264parse ! '
            "nvv4l2decoder ! nvvidconv ! video/x-raw, format=(string)BGRx ! videoconvert ! "
            "video/x-raw, format=(string)BGR ! appsink drop=true max-buffers=1 sync=false",
        ),
        (
            {"latency": 0, "codec": "h265", "decoder": "cpu", "transport": "udp"},
            'rtspsrc location="rtsp://cam:554/s?a=1&b=2" latency=0 protocols=udp ! rtph265depay ! h265parse ! '
            "avdec_h265 ! videoconvert ! video/x-raw, format=(string)BGR ! appsink drop=true max-buffers=1 sync=false",
        ),
        ({"codec": "mjpeg"}, "codec 'mjpeg'"),
        ({"decoder": "omx"}, "decoder 'omx'"),
        ({"transport": "http"}, "transport 'http'"),
        ({"latency": -1}, "latency must be >= 0"),
    ],
)
def test_rtsp_pipeline_per_codec_decoder_and_transport(
    samples: SimpleNamespace, kwargs: dict[str, Any], expected: str
) -> None:
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
    if not sys.platform.startswith("linux"):
        pytest.skip("only on Linux does no DISPLAY/WAYLAND_DISPLAY mean no display")
    assert samples.camera_app.display_available() is False
