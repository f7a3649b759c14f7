"""rtdetr-detect from the command line, in-process: images, folders and videos; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from tests.helpers import Cli


def test_detect_cli_writes_annotated_images_video_and_jsonl(
    cli: Cli, tiny_bundle: Path, scene: np.ndarray, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        cv2.imwrite(str(src / f"img{i}.jpg"), scene)
    (src / "broken.jpg").write_bytes((src / "img0.jpg").read_bytes()[:500])
    video = tmp_path / "clip.mp4"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), 10, (320, 240))
    for _ in range(5):
        vw.write(cv2.resize(scene, (320, 240)))
    vw.release()
    out = tmp_path / "out"
    run = cli(
        "rtdetr-detect",
        str(src),
        str(video),
        "--model",
        str(tiny_bundle),
        "--out",
        str(out),
        "--conf",
        "0.0",
        "--max-det",
        "3",
        "--batch",
        "2",
    )
    assert run.code == 0, run.err
    assert "broken.jpg: truncated JPEG" in run.err, run.err
    assert "3 images, 5 video frames, 24 detections, 1 skipped" in run.err
    lines = (out / "detections.jsonl").read_text().splitlines()
    assert len(lines) == 8 and json.loads(lines[-1])["frame"] == 4
    assert sorted(p.name for p in out.iterdir()) == [
        "clip.mp4",
        "detections.jsonl",
        "img0.jpg",
        "img1.jpg",
        "img2.jpg",
        "index.html",  # the contact sheet (tests/cli/test_detect_contact_sheet.py)
        "thumbnails",
    ]
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5


def test_empty_folder_and_missing_file_are_one_line_errors(cli: Cli, tiny_bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    run = cli("rtdetr-detect", str(tmp_path / "empty"), "--model", str(tiny_bundle), "--out", str(tmp_path / "o"))
    assert "no images or videos found" in run.one_line_error()
    run = cli("rtdetr-detect", str(tmp_path / "missing.jpg"), "--model", str(tiny_bundle))
    assert "no such file or folder" in run.one_line_error()
