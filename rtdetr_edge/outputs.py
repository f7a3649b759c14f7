"""Writers for results that must never be lost or half-written: videos, JSON lines, images.

Each writes to a temporary sibling and publishes it under its final name only when it is
complete: on ``close()`` the data is flushed and fsynced (a video is also read back and its
frame count checked), and only then renamed into place. ``close()`` runs from ``__exit__`` even
on Ctrl-C or SIGTERM (``KeyboardInterrupt``), so whatever was processed so far ends up as a
complete, playable video and a complete JSONL file. When a write fails (disk full, quota,
read-only, file too large) the temporary file is deleted, nothing under the final name is
touched (an earlier result stays as it was) and :class:`OutputError` names the path in one line.
A writer that received nothing publishes nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from . import atomic
from .errors import InputError, RtdetrEdgeError

_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".avi": "MJPG", ".mkv": "mp4v", ".mov": "mp4v"}


class OutputError(RtdetrEdgeError):
    """A result file could not be written completely; nothing was published under its name."""


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _tmp_path(target: Path) -> Path:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix, dir=target.parent)
        os.close(fd)
        os.chmod(name, 0o666 & ~atomic._umask())  # mkstemp makes 0600 files
    except OSError as exc:
        raise OutputError(f"{target}: cannot write ({_reason(exc)})") from exc
    return Path(name)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(tmp: Path, target: Path) -> None:
    """fsync ``tmp`` and rename it over ``target``; on failure delete ``tmp`` and raise OutputError."""
    try:
        _fsync_file(tmp)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{target}: cannot write ({_reason(exc)}); nothing was written under this name") from exc


class VideoWriter:
    """Atomic video writer (``.mp4`` with mp4v, ``.avi`` with MJPG).

    OpenCV's writer reports no write errors, so ``close()`` reads the finished temporary file
    back: a file OpenCV cannot open, or one with fewer frames than were written (disk full), is
    deleted and :class:`OutputError` raised instead of publishing an unplayable video.

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
        self._failed = False

    def write(self, frame: np.ndarray) -> None:
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        assert self._writer is not None, "write() after close()"
        try:
            self._writer.write(frame)
        except Exception:
            self._failed = True
            raise
        self.frames += 1

    def _readable_frames(self) -> int:
        cap = cv2.VideoCapture(str(self._tmp))
        try:
            if not cap.isOpened():
                return 0
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            if count >= self.frames:
                return count
            # no index, or a count estimated from the duration (mkv): count the frames themselves
            count = 0
            while count < self.frames and cap.grab():
                count += 1
            return count
        finally:
            cap.release()

    def discard(self) -> None:
        """Drop what was written; nothing is published."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._tmp.unlink(missing_ok=True)

    def close(self) -> Path:
        """Finish the file and move it into place when complete (idempotent)."""
        if self._writer is None:
            return self.path
        self._writer.release()
        self._writer = None
        if not self.frames or self._failed:
            self._tmp.unlink(missing_ok=True)
            return self.path
        got = self._readable_frames()
        if got < self.frames:
            self._tmp.unlink(missing_ok=True)
            raise OutputError(
                f"{self.path}: the video could not be written completely ({got} of {self.frames} frames "
                "readable; disk full?); nothing was written under this name"
            )
        _publish(self._tmp, self.path)
        return self.path

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class JsonlWriter:
    """Atomic JSON-lines writer: one JSON object per :meth:`write`; published on close.

    Only complete lines are published: a line cut short by Ctrl-C is dropped, and after a failed
    write (disk full) nothing is published at all.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._tmp = _tmp_path(self.path)
        try:
            self._fh: Any = open(self._tmp, "wb")  # noqa: SIM115 - the writer owns the handle; close() renames
        except OSError as exc:
            self._tmp.unlink(missing_ok=True)
            raise OutputError(f"{self.path}: cannot write ({_reason(exc)})") from exc
        self.lines = 0
        self._complete = 0  # bytes of complete lines
        self._failed = False

    def write(self, record: dict[str, Any]) -> None:
        assert self._fh is not None, "write() after close()"
        if self._failed:
            raise OutputError(f"{self.path}: an earlier write failed")
        data = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
        try:
            self._fh.write(data)
        except OSError as exc:
            self._failed = True
            raise OutputError(
                f"{self.path}: cannot write ({_reason(exc)}); nothing was written under this name"
            ) from exc
        self._complete += len(data)
        self.lines += 1

    def discard(self) -> None:
        """Drop what was written; nothing is published (an earlier file stays as it was)."""
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()
            self._fh = None
        self._tmp.unlink(missing_ok=True)

    def close(self) -> Path:
        """Publish the complete lines (idempotent); nothing when none were written or a write failed."""
        if self._fh is None:
            return self.path
        if self._failed or not self.lines:
            self.discard()
            return self.path
        try:
            self._fh.flush()
            self._fh.truncate(self._complete)
            self._fh.close()
        except OSError as exc:
            self._fh = None
            self._tmp.unlink(missing_ok=True)
            raise OutputError(
                f"{self.path}: cannot write ({_reason(exc)}); nothing was written under this name"
            ) from exc
        self._fh = None
        _publish(self._tmp, self.path)
        return self.path

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def check_output_file(path: str | os.PathLike[str], what: str) -> Path:
    """Fail early (before long work) if the file ``path`` cannot be written: one-line InputError.

    Refuses an existing folder, a parent that is a file, and a parent folder this process cannot
    write in (tried, not read off permission bits: root, read-only mounts, full quotas).
    """
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{what} {path}: is a folder; name a file")
    try:
        atomic.check_writable_dir(p.parent, what)
    except InputError as exc:  # name the user's path, not only its parent
        detail = str(exc).removeprefix(f"{what} {p.parent}: ")
        raise InputError(f"{what} {path}: {detail}") from None
    return p


def write_image(path: str | os.PathLike[str], image: np.ndarray) -> Path:
    """Encode ``image`` by ``path``'s suffix and write it atomically (checked; OutputError on failure)."""
    target = Path(path)
    suffix = target.suffix.lower() or ".jpg"
    try:
        ok, buf = cv2.imencode(suffix, image)
    except cv2.error as exc:
        raise OutputError(f"{target}: OpenCV cannot encode an image of this type ({exc})") from None
    if not ok:
        raise OutputError(f"{target}: OpenCV cannot encode an image of this type")
    try:
        atomic.write_bytes(target, buf.tobytes())
    except OSError as exc:
        raise OutputError(f"{target}: cannot write ({_reason(exc)}); nothing was written under this name") from exc
    return target
