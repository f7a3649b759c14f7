"""Result writers on a full disk publish nothing under the final name and say so in one line.

The full disk is a real one: a small tmpfs mounted for the test (root in a container that
allows ``mount``); where mounting is refused the tests skip.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rtdetr_edge.outputs import JsonlWriter, OutputError, VideoWriter, write_image


def mount_small_disk(folder: Path, size: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode(errors='replace').strip()}")


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB filesystem."""
    folder = tmp_path / "disk"
    mount_small_disk(folder, "256k")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def _noise(n: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(0)
    for _ in range(n):
        yield rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_video_on_a_full_disk_keeps_the_earlier_file_and_leaves_no_temp(small_disk: Path) -> None:
    target = small_disk / "out.mp4"
    target.write_bytes(b"earlier result")
    pattern = r"out\.mp4: the video could not be written completely"
    with pytest.raises(OutputError, match=pattern), VideoWriter(target, 10, (320, 240)) as writer:
        for frame in _noise(40):  # ~40 x 30 KB of noise: far over 256 KiB
            writer.write(frame)
    assert target.read_bytes() == b"earlier result"
    assert _names(small_disk) == ["out.mp4"]


def test_jsonl_on_a_full_disk_keeps_the_earlier_file_and_leaves_no_temp(small_disk: Path) -> None:
    target = small_disk / "detections.jsonl"
    target.write_text('{"earlier":1}\n')
    pattern = r"detections\.jsonl: cannot write \(No space left on device\)"
    with pytest.raises(OutputError, match=pattern), JsonlWriter(target) as jsonl:
        for i in range(20000):
            jsonl.write({"i": i, "pad": "x" * 40})
    assert target.read_text() == '{"earlier":1}\n'
    assert _names(small_disk) == ["detections.jsonl"]


def test_image_on_a_full_disk_is_an_error_not_a_missing_file(small_disk: Path) -> None:
    (small_disk / "fill").write_bytes(b"\0" * (250 * 1024))
    with pytest.raises(OutputError, match=r"x\.png: cannot write \(No space left on device\)"):
        write_image(small_disk / "x.png", next(_noise(1)))
    assert _names(small_disk) == ["fill"]


def test_complete_outputs_are_published(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "v.avi", 10, (320, 240)) as writer:
        for frame in _noise(3):
            writer.write(frame)
    with JsonlWriter(tmp_path / "d.jsonl") as jsonl:
        jsonl.write({"a": 1})
    write_image(tmp_path / "i.jpg", next(_noise(1)))
    assert _names(tmp_path) == ["d.jsonl", "i.jpg", "v.avi"]
    assert (tmp_path / "d.jsonl").read_text() == '{"a":1}\n'


def test_a_writer_that_got_nothing_does_not_truncate_an_earlier_file(tmp_path: Path) -> None:
    target = tmp_path / "run.jsonl"
    target.write_text('{"earlier":1}\n')
    with JsonlWriter(target):
        pass  # e.g. the camera app failed at start-up
    assert target.read_text() == '{"earlier":1}\n'
    assert _names(tmp_path) == ["run.jsonl"]


def test_an_unencodable_image_type_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"x\.nope: OpenCV cannot encode"):
        write_image(tmp_path / "x.nope", next(_noise(1)))
    assert _names(tmp_path) == []
