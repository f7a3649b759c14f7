"""The samples (camera_app, track) run as users run them: ``python samples/x.py``, headless, ONNX Runtime.

They run on a synthetic video (tests/samples/conftest.py) with the reference model when
models/rtdetr-shapes exists and the tiny random model otherwise."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from tests.helpers import SAMPLES
from tests.samples.support import N_FRAMES, SIZE, count_frames, needs_tracker, read_jsonl, sample_cmd


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
    cmd = sample_cmd(
        "camera_app.py",
        folder,
        model.path,
        model.conf,
        "--output",
        str(tmp_path / "f.avi"),
        "--jsonl",
        str(tmp_path / "f.jsonl"),
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert count_frames(tmp_path / "f.avi") == 4
    assert [r["name"] for r in read_jsonl(tmp_path / "f.jsonl")] == [f"{i}.jpg" for i in range(4)]
    # --input-loop -1 would run forever; --max-frames stops it
    proc = subprocess.run(
        sample_cmd(
            "camera_app.py",
            video,
            model.path,
            model.conf,
            "--input-loop",
            "-1",
            "--max-frames",
            str(N_FRAMES + 3),
            "--jsonl",
            str(tmp_path / "m.jsonl"),
        ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    records = read_jsonl(tmp_path / "m.jsonl")
    assert [r["source_index"] for r in records] == list(range(N_FRAMES + 3))
    assert records[N_FRAMES]["pts_ms"] == 0.0, "the second pass starts at the beginning of the file"


@pytest.mark.parametrize(
    "script, sig", [("camera_app.py", signal.SIGINT), ("camera_app.py", signal.SIGTERM), ("track.py", signal.SIGINT)]
)
def test_signal_mid_run_leaves_playable_outputs(
    script: str, sig: signal.Signals, model: SimpleNamespace, video: Path, tmp_path: Path
) -> None:
    needs_tracker(script)
    out, jsonl = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    cmd = sample_cmd(
        script, video, model.path, model.conf, "--input-loop", "-1", "--output", str(out), "--jsonl", str(jsonl)
    )
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
    code = r"""
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
"""
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
        dets = Detections(
            shifted[order],
            np.array([0.9, 0.8, 0.85], np.float32)[order],
            np.array([0, 1, 2])[order],
            ("a", "b", "c"),
            (320, 240),
        )
        tracked, ids = tracker(dets)
        history.append({int(c): int(i) for c, i in zip(tracked.class_ids, ids)})
    assert history[-1].keys() == {0, 1, 2}
    assert len(set(history[-1].values())) == 3
    assert all(h == history[-1] for h in history[2:]), history
    empty, ids = tracker(Detections.empty(("a", "b", "c")))
    assert len(empty) == 0 and ids.shape == (0,)


def test_sample_help_names_the_source_schemes() -> None:
    for script in ("camera_app.py", "track.py"):
        proc = subprocess.run(
            [sys.executable, str(SAMPLES / script), "--help"], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0 and "csi://" in proc.stdout, proc.stderr
