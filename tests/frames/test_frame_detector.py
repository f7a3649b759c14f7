"""The Detector's frame path: uint8 frames copied into the frame graph's input buffer, host path
for other sizes (one log line per size)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from rtdetr_edge import Detector
from rtdetr_edge.bundle import Bundle
from rtdetr_edge.data.synth import render_scene
from rtdetr_edge.errors import InputError


def _frame(w: int, h: int, seed: int = 0) -> np.ndarray:
    import cv2

    # scenes are rendered at least 160x120 (smaller ones have no room for objects), then shrunk
    scene = render_scene(np.random.default_rng(seed), max(w, 160), max(h, 120))[0]
    return np.ascontiguousarray(cv2.resize(scene, (w, h), interpolation=cv2.INTER_AREA))


def test_frame_path_equals_host_path_where_the_host_is_pillow_exact(frames_bundle: Path) -> None:
    """64x48 upscales to 64x64: the host path (INTER_LINEAR_EXACT) is bit-exact with Pillow there."""
    frames = [_frame(64, 48, i) for i in range(3)]
    with (
        Detector(frames_bundle, precision="fp32", conf=0.05) as det,
        Detector(frames_bundle, precision="fp32", conf=0.05, frames=False) as host,
    ):
        ours, theirs = det(frames), host(frames)
        assert det._frame_backends[(64, 48)] is not None and not host._frame_backends
        assert det.last_times.preprocess < host.last_times.preprocess * 10  # a copy, timed where preprocessing was
    for a, b in zip(ours, theirs):
        assert len(a) == len(b) > 0
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-2)
        assert a.image_size == b.image_size == (64, 48)


def test_frame_path_boxes_are_in_frame_pixels(frames_bundle: Path) -> None:
    frame = _frame(128, 96)
    with Detector(frames_bundle, precision="fp32", conf=0.05) as det:
        dets = det(frame)
        assert det._frame_backends[(128, 96)] is not None
    with Detector(frames_bundle, precision="fp32", conf=0.05, frames=False) as host:
        ref = host(frame)
    # the host path's OpenCV resize differs from Pillow's at a downscale; the boxes still agree to ~a pixel
    assert dets.image_size == (128, 96) and len(dets) > 0
    assert abs(len(dets) - len(ref)) <= max(2, len(ref) // 10)
    assert float(np.abs(dets.xyxy[:3] - ref.xyxy[:3]).max()) < 8.0


def test_other_sizes_fall_back_with_one_log_line_per_size(
    frames_bundle: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Detector(frames_bundle, precision="fp16", conf=0.05) as det:
        with caplog.at_level(logging.INFO, logger="rtdetr_edge"):
            mixed = det([_frame(100, 90), _frame(64, 48), _frame(100, 90, 1)])
            det(_frame(100, 90, 2))
            det(_frame(120, 80))
        lines = [r.getMessage() for r in caplog.records if "preprocessing on the host" in r.getMessage()]
        assert lines == [
            "100x90 images: preprocessing on the host (the bundle's frame-input artifacts are for 64x48, 128x96)",
            "120x80 images: preprocessing on the host (the bundle's frame-input artifacts are for 64x48, 128x96)",
        ]
        assert [d.image_size for d in mixed] == [(100, 90), (64, 48), (100, 90)]  # order kept across routes
        assert det._frame_backends[(64, 48)] is not None and det._frame_backends[(100, 90)] is None


def test_int8_frame_artifact_detects(frames_bundle: Path) -> None:
    frames = [_frame(128, 96, i) for i in range(2)]
    with (
        Detector(frames_bundle, precision="int8", conf=0.05) as det,
        Detector(frames_bundle, precision="int8", conf=0.05, frames=False) as host,
    ):
        ours, theirs = det(frames), host(frames)
        assert det._frame_backends[(128, 96)] is not None
    for a, b in zip(ours, theirs):
        assert a.image_size == b.image_size and abs(len(a) - len(b)) <= max(2, len(b) // 5)


def test_frame_artifact_opened_alone_takes_only_its_size(frames_bundle: Path) -> None:
    path = Bundle(frames_bundle).frame_onnx_path("fp32", (64, 48))
    with Detector(path, conf=0.05) as det:
        assert len(det(_frame(64, 48))) > 0
        with pytest.raises(InputError, match=r"takes 64x48 frames .* got a 64x64 image"):
            det(_frame(64, 64))
