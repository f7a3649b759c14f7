"""samples/multi_stream.py: several streams, one batched inference per tick, per-stream outputs,
and dropped frames counted when inference is slower than the sources."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest

from rtdetr_edge import Detector
from rtdetr_edge.detections import Detections
from tests.helpers import SAMPLES
from tests.samples.support import N_FRAMES, count_frames, read_jsonl


@pytest.fixture(scope="module")
def ms(samples: SimpleNamespace) -> Iterator[ModuleType]:
    import multi_stream

    yield multi_stream


def _frames(video: Path) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(video))
    out = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        out.append(image)
    cap.release()
    return out


def test_one_inference_per_tick_and_per_stream_outputs(model: SimpleNamespace, video: Path, tmp_path: Path) -> None:
    out = tmp_path / "streams"
    proc = subprocess.run(
        [sys.executable, str(SAMPLES / "multi_stream.py"), str(video), str(video), str(video), "--model",
         str(model.path), "--conf", model.conf, "--out", str(out), "--save-video"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"{3 * N_FRAMES} frames from 3 streams" in proc.stderr
    assert f"{N_FRAMES} inferences (mean batch 3.00), 0 dropped" in proc.stderr, proc.stderr
    with Detector(model.path, conf=float(model.conf)) as det:
        want = [d.to_list() for d in det(_frames(video))]
    for i in range(3):
        records = read_jsonl(out / f"stream{i}.jsonl")
        assert [r["source_index"] for r in records] == list(range(N_FRAMES))
        assert {r["stream"] for r in records} == {i}
        assert [r["detections"] for r in records] == want  # each stream gets its own frames' detections
        assert count_frames(out / f"stream{i}.mp4") == N_FRAMES


def test_frames_are_dropped_and_counted_when_inference_is_slower(ms: ModuleType, video: Path) -> None:
    # the 12-frame, 10 FPS video replayed as a camera (--realtime) into a model taking 0.25 s a tick
    def slow(images: list[np.ndarray]) -> list[Detections]:
        time.sleep(0.25)
        return [Detections.empty() for _ in images]

    streams = [ms.realtime_file_source(str(video)) for _ in range(2)]
    try:
        stats = ms.run_streams(streams, slow)
    finally:
        for s in streams:
            s.close()
    for s in stats.streams:
        assert 0 < s.frames < N_FRAMES
        assert s.dropped > 0
        assert s.frames + s.dropped <= N_FRAMES  # a frame is either inferred or dropped, never both
    assert set(stats.batch_sizes) <= {1, 2} and stats.ticks < 2 * N_FRAMES


def test_batched_and_one_at_a_time_see_the_same_frames(ms: ModuleType, model: SimpleNamespace, video: Path) -> None:
    seen: dict[str, list[tuple[int, int, int]]] = {"batched": [], "single": []}
    calls: dict[str, list[int]] = {"batched": [], "single": []}
    with Detector(model.path, conf=float(model.conf)) as det:
        for mode in seen:

            def infer(images: list[np.ndarray], mode: str = mode) -> list[Detections]:
                calls[mode].append(len(images))
                return det.detect_batch(images)

            streams = [ms.sources.open_source(ms.sources.parse_source(str(video))) for _ in range(2)]
            run = infer if mode == "batched" else ms.one_at_a_time(infer)
            stats = ms.run_streams(streams, run, lambda i, f, d, m=mode: seen[m].append((i, f.index, len(d))))
            assert stats.frames == 2 * N_FRAMES and stats.dropped == 0
    assert sorted(seen["batched"]) == sorted(seen["single"])
    assert calls["batched"] == [2] * N_FRAMES and calls["single"] == [1] * (2 * N_FRAMES)


def test_bad_arguments_are_one_line(model: SimpleNamespace, video: Path, tmp_path: Path) -> None:
    def error(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, str(SAMPLES / "multi_stream.py"), *args], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
        return lines[0]

    assert "nope.mp4" in error(str(video), str(tmp_path / "nope.mp4"), "--model", str(model.path))
    assert error(str(video), "--model", str(model.path), "--save-video") == "error: --save-video needs --out"
    (tmp_path / "file").write_text("x")
    assert "--out" in error(str(video), "--model", str(model.path), "--out", str(tmp_path / "file"))
