"""Published outputs get the permissions a plain open() would give (umask), not mkstemp's 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rtdetr_edge import atomic
from rtdetr_edge.outputs import JsonlWriter, VideoWriter


@pytest.fixture()
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_outputs_follow_the_umask(tmp_path: Path, umask_022: None) -> None:
    with JsonlWriter(tmp_path / "d.jsonl") as jsonl:
        jsonl.write({"a": 1})
    with VideoWriter(tmp_path / "v.mp4", 10.0, (32, 32)) as video:
        for _ in range(3):
            video.write(np.zeros((32, 32, 3), np.uint8))
    atomic.write_json(tmp_path / "r.json", {"a": 1})
    for name in ("d.jsonl", "v.mp4", "r.json"):
        assert _mode(tmp_path / name) == 0o644, name
