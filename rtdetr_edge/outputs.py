"""Writers for results that must never be lost or half-written: videos and JSON lines.

Both write to a temporary sibling and rename into place on ``close()``. ``close()`` runs from
``__exit__`` even on Ctrl-C or an exception, so whatever was processed so far ends up as a
complete, playable video and a complete JSONL file; nothing is ever left under the final name
half-written.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from .errors import InputError

_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".avi": "MJPG", ".mkv": "mp4v", ".mov": "mp4v"}


def _tmp_path(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    return Path(name)


class VideoWriter:
    """Atomic video writer (``.mp4`` with mp4v, ``.avi`` with MJPG).

    Args:
        path: final file.
        fps: frames per second.
        size: (width, height); frames of another size are resized to it.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in _FOURCC:
            raise InputError(f"{self.path}: unsupported video type {suffix!r}; use {', '.join(_FOURCC)}")
        self.size = (int(size[0]), int(size[1]))
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self._tmp = _tmp_path(self.path)
        self._writer: cv2.VideoWriter | None = cv2.VideoWriter(
            str(self._tmp), cv2.VideoWriter.fourcc(*_FOURCC[suffix]), self.fps, self.size
        )
        if not self._writer.isOpened():
            self._tmp.unlink(missing_ok=True)
            raise InputError(f"{self.path}: OpenCV cannot open a video writer for it")
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        assert self._writer is not None, "write() after close()"
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> Path:
        """Finish the file and move it into place (idempotent)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            if self.frames:
                os.replace(self._tmp, self.path)
            else:
                self._tmp.unlink(missing_ok=True)
        return self.path

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class JsonlWriter:
    """Atomic JSON-lines writer: one JSON object per :meth:`write`; renamed into place on close."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._tmp = _tmp_path(self.path)
        self._fh: Any = open(self._tmp, "w", encoding="utf-8")  # noqa: SIM115 - the writer owns the handle; close() renames
        self.lines = 0

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.lines += 1

    def close(self) -> Path:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
            os.replace(self._tmp, self.path)
        return self.path

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
