"""rtdetr-detect never overwrites its inputs or earlier results, and never loses an output silently."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers import CLI_MODULES, REPO, Cli
from tests.runtime.test_full_disk_outputs import mount_small_disk


def _video(path: Path, frames: int, image: np.ndarray, size: tuple[int, int] = (160, 120)) -> Path:
    fourcc = "MJPG" if path.suffix == ".avi" else "mp4v"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), 10, size)
    for _ in range(frames):
        vw.write(cv2.resize(image, size))
    vw.release()
    return path


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_out_that_is_or_holds_a_source_is_refused(
    cli: Cli, tiny_bundle: Path, scene: np.ndarray, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "x.jpg"), scene)
    original = (photos / "x.jpg").read_bytes()
    for out in (photos, tmp_path):
        run = cli("rtdetr-detect", str(photos), "--model", str(tiny_bundle), "--out", str(out))
        assert "choose another folder" in run.one_line_error()
    run = cli("rtdetr-detect", str(photos / "x.jpg"), "--model", str(tiny_bundle), "--out", str(photos))
    assert "contains the input" in run.one_line_error()
    assert _names(photos) == ["x.jpg"] and (photos / "x.jpg").read_bytes() == original


def test_same_names_from_different_places_give_separate_outputs(
    cli: Cli, tiny_bundle: Path, scene: np.ndarray, tmp_path: Path
) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "x.jpg"), scene)
    _video(tmp_path / "good.mp4", 3, scene)
    _video(tmp_path / "good.avi", 2, scene)
    out = tmp_path / "out"
    srcs = [str(tmp_path / "a"), str(tmp_path / "b" / "x.jpg"), str(tmp_path / "good.mp4"), str(tmp_path / "good.avi")]
    run = cli("rtdetr-detect", *srcs, "--model", str(tiny_bundle), "--out", str(out), "-q")
    assert run.code == 0, run.err
    assert _names(out) == [
        "detections.jsonl",
        "good.mp4",
        "good_2.mp4",
        "index.html",  # the contact sheet and its thumbnails
        "thumbnails",
        "x.jpg",
        "x_2.jpg",
    ]
    frames = [int(cv2.VideoCapture(str(out / n)).get(cv2.CAP_PROP_FRAME_COUNT)) for n in ("good.mp4", "good_2.mp4")]
    assert frames == [3, 2]


def test_a_failed_run_never_replaces_earlier_results(
    cli: Cli, tiny_bundle: Path, scene: np.ndarray, tmp_path: Path
) -> None:
    good = _video(tmp_path / "good.mp4", 4, scene)
    bad = tmp_path / "random.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    out = tmp_path / "o" / "k"
    assert cli("rtdetr-detect", str(good), "--model", str(tiny_bundle), "--out", str(out), "-q").code == 0
    earlier = (out / "detections.jsonl").read_text()
    sheet = (out / "index.html").read_text()
    assert len(earlier.splitlines()) == 4
    for extra in ([], ["--exist-ok"]):
        run = cli("rtdetr-detect", str(bad), "--model", str(tiny_bundle), "--out", str(out), "-q", *extra)
        assert run.code == 1, run.err
        assert (out / "detections.jsonl").read_text() == earlier
        assert _names(tmp_path / "o") == ["k"]  # no empty k2 left behind
        assert _names(out) == ["detections.jsonl", "good.mp4", "index.html", "thumbnails"]
        assert (out / "index.html").read_text() == sheet  # nothing came of the run: the sheet stays


def test_an_existing_out_gets_a_new_numbered_run_folder_unless_exist_ok(
    cli: Cli, tiny_bundle: Path, scene: np.ndarray, tmp_path: Path
) -> None:
    img = tmp_path / "in" / "x.jpg"
    img.parent.mkdir()
    cv2.imwrite(str(img), scene)
    out = tmp_path / "runs" / "demo"
    for _ in range(3):
        assert cli("rtdetr-detect", str(img), "--model", str(tiny_bundle), "--out", str(out), "-q").code == 0
    assert _names(tmp_path / "runs") == ["demo", "demo2", "demo3"]
    run = cli("rtdetr-detect", str(img), "--model", str(tiny_bundle), "--out", str(out), "--exist-ok")
    assert run.code == 0 and f"Results in {out}/" in run.err
    assert _names(tmp_path / "runs") == ["demo", "demo2", "demo3"]
    assert "--exist-ok" in cli("rtdetr-detect", "--help").out


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "disk"
    mount_small_disk(folder, "256k")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_is_one_line_and_leaves_no_half_written_image(
    cli: Cli, tiny_bundle: Path, small_disk: Path, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        cv2.imwrite(str(src / f"n{i}.png"), rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))  # ~900 KB each
    run = cli("rtdetr-detect", str(src), "--model", str(tiny_bundle), "--out", str(small_disk / "o"), "-q")
    line = run.one_line_error()
    assert "n0.png" in line and "No space left on device" in line
    assert not [n for n in _names(small_disk / "o") if n.startswith(".") or n.endswith(".png")]


def test_out_under_a_regular_file_is_one_line(cli: Cli, tiny_bundle: Path, scene: np.ndarray, tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "x.jpg"), scene)
    run = cli(
        "rtdetr-detect", str(tmp_path / "x.jpg"), "--model", str(tiny_bundle), "--out", str(tmp_path / "x.jpg" / "o")
    )
    assert "is not a directory" in run.one_line_error()


def test_sigterm_keeps_what_was_processed_and_no_temp_files(
    tiny_bundle: Path, scene: np.ndarray, tmp_path: Path
) -> None:
    clip = _video(tmp_path / "long.mp4", 3000, scene, (64, 48))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            CLI_MODULES["rtdetr-detect"],
            str(clip),
            "--model",
            str(tiny_bundle),
            "--out",
            str(out),
            "-q",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (out.is_dir() and any(n.startswith(".long.") for n in os.listdir(out))):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert _names(out) == ["detections.jsonl", "long.mp4"]
    lines = (out / "detections.jsonl").read_text().splitlines()
    assert 0 < len(lines) < 3000 and json.loads(lines[-1])["frame"] == len(lines) - 1
    frames = int(cv2.VideoCapture(str(out / "long.mp4")).get(cv2.CAP_PROP_FRAME_COUNT))
    assert len(lines) - 1 <= frames <= len(lines)  # the signal may fall between a frame's line and its image
