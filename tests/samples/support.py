"""Constants and helpers of the sample tests: the synthetic video's size, reading outputs, sample command lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import cv2
import pytest

from tests.helpers import SAMPLES

N_FRAMES = 12


SIZE = (320, 240)


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
    return [
        sys.executable,
        str(SAMPLES / script),
        str(source),
        "--model",
        str(bundle),
        "--backend",
        "onnxruntime",
        "--no-display",
        "--conf",
        conf,
        *extra,
    ]


def needs_tracker(script: str) -> None:
    if script == "track.py":
        pytest.importorskip("supervision", reason="track.py needs supervision (pip install supervision)")
