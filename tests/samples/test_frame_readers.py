"""The samples' frame readers: live sources keep the newest frame and reconnect; files lose none."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest

from rtdetr_edge.errors import InputError


class FakeCapture:
    """A cv2.VideoCapture stand-in: `frames` frames (each filled with its number), then failure."""

    def __init__(self, frames: int, opened: bool = True, delay: float = 0.0, start: int = 0) -> None:
        self.left, self.opened, self.delay, self.next = frames, opened, delay, start
        self.released = False

    def isOpened(self) -> bool:
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
    src = samples.capture.LatestFrameSource(
        "fake", lambda: next(caps, FakeCapture(0, opened=False)), 0.0, max_reconnects=1, backoff=(0.01, 0.01)
    ).start()
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
