"""Frame readers: a background thread captures, the main loop takes.

``LatestFrameSource`` is for live sources (cameras, streams): it reads as fast as the source
delivers and keeps only the newest frame, so a model slower than the camera sees what the camera
sees now instead of a growing queue (latency, not backlog); skipped frames are counted as
``dropped``. A stream that drops is reopened with exponential backoff.

``SequentialSource`` is for files (videos, image folders): every frame, in order, decoded a few
frames ahead; N frames in, N frames out.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from rtdetr_edge import InputError

log = logging.getLogger("samples")


class Capture(Protocol):
    """What the readers need from ``cv2.VideoCapture`` (tests pass fakes)."""

    def read(self) -> tuple[bool, Any]: ...

    def isOpened(self) -> bool: ...

    def release(self) -> None: ...

    def get(self, prop: int) -> float: ...


@dataclass
class Frame:
    """One captured frame.

    Attributes:
        image: HxWx3 BGR uint8.
        index: position in the source, counting from 0 across reconnects and loops; gaps are
            frames a live source dropped.
        timestamp: ``time.time()`` when it was captured.
        pts_ms: position in a video file, when known.
        name: the image file name, for image folders.
    """

    image: np.ndarray
    index: int
    timestamp: float
    pts_ms: float | None = None
    name: str | None = None


class FrameSource:
    """Base of the two readers: a thread fills, :meth:`read` takes. Use as a context manager."""

    live = False

    def __init__(self, name: str, fps: float) -> None:
        self.name = name
        self.fps = fps
        self.dropped = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def ended(self) -> bool:
        """True once no more frames will come (end of file, reconnects given up, or closed)."""
        raise NotImplementedError

    def start(self) -> FrameSource:
        self._thread = threading.Thread(target=self._guarded_run, name=f"capture:{self.name}", daemon=True)
        self._thread.start()
        return self

    def _guarded_run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer's thread by read()
            self._error = exc
        finally:
            self._finish()

    def _run(self) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        pass

    def read(self, timeout: float | None = None) -> Frame | None:
        """The next frame, or None on timeout or at the end (check :attr:`ended`)."""
        raise NotImplementedError

    def _raise_error(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            # a capture blocked in read() cannot be interrupted; the thread is a daemon
            self._thread.join(timeout=3.0)

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_END = object()


class SequentialSource(FrameSource):
    """Every frame of a file source, in order, decoded ahead on a thread into a small queue.

    Args:
        name: for messages.
        frames: called once per pass; yields ``(image, pts_ms, name)``.
        fps: nominal rate (for the output video).
        loop: extra passes (-1 = forever).
        queue_size: frames decoded ahead (bounded: decoding never runs away from inference).
    """

    def __init__(
        self,
        name: str,
        frames: Callable[[], Iterator[tuple[np.ndarray, float | None, str | None]]],
        fps: float,
        loop: int = 0,
        queue_size: int = 4,
    ) -> None:
        super().__init__(name, fps)
        self._frames = frames
        self._loop = loop
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._ended = False

    @property
    def ended(self) -> bool:
        return self._ended

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        index, passes = 0, 0
        while not self._stop.is_set() and (self._loop < 0 or passes <= self._loop):
            produced = 0
            for image, pts, name in self._frames():
                if not self._put(Frame(image, index, time.time(), pts, name)):
                    return
                index += 1
                produced += 1
            if produced == 0:
                break  # an empty pass would loop forever
            passes += 1

    def _finish(self) -> None:
        self._put(_END)

    def read(self, timeout: float | None = None) -> Frame | None:
        if self._ended:
            return None
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _END:
            self._ended = True
            self._raise_error()
            return None
        frame: Frame = item
        return frame


class LatestFrameSource(FrameSource):
    """A live source: the thread reads as fast as the source delivers and keeps only the newest.

    Args:
        name: for messages.
        opener: returns an opened capture; called again to reconnect.
        fps: nominal rate.
        backoff: first and longest wait between reconnect attempts, in seconds (doubles each time).
        max_reconnects: give up after this many failed attempts in a row (None = never).
    """

    live = True

    def __init__(
        self,
        name: str,
        opener: Callable[[], Capture],
        fps: float,
        backoff: tuple[float, float] = (0.5, 10.0),
        max_reconnects: int | None = None,
    ) -> None:
        super().__init__(name, fps)
        self._opener = opener
        self._backoff = backoff
        self._max_reconnects = max_reconnects
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._seq = 0  # frames captured
        self._taken = 0  # seq of the last frame handed out
        self._done = False
        self._cap: Capture | None = None
        self.reconnects = 0

    @property
    def ended(self) -> bool:
        return self._done and self._seq == self._taken

    def start(self) -> FrameSource:
        """Open the source now, so a wrong URI fails here and not on a thread."""
        self._cap = self._opener()
        if not self._cap.isOpened():
            raise InputError(f"{self.name}: cannot open this source")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        if not self.fps and fps and 0 < fps < 1000:
            self.fps = float(fps)
        return super().start()

    def _reconnect(self) -> Capture | None:
        delay, longest = self._backoff
        failures = 0
        while not self._stop.is_set():
            log.warning("%s: stream lost; reconnecting in %.1f s", self.name, delay)
            if self._stop.wait(delay):
                return None
            try:
                cap = self._opener()
            except Exception as exc:  # noqa: BLE001 - a user-supplied opener may raise anything (bad network); keep trying
                log.warning("%s: reconnect failed: %s", self.name, exc)
                cap = None
            if cap is not None and cap.isOpened():
                self.reconnects += 1
                log.warning("%s: reconnected", self.name)
                return cap
            if cap is not None:
                cap.release()
            failures += 1
            if self._max_reconnects is not None and failures >= self._max_reconnects:
                log.error("%s: giving up after %d reconnect attempts", self.name, failures)
                return None
            delay = min(delay * 2, longest)
        return None

    def _run(self) -> None:
        cap = self._cap
        while cap is not None and not self._stop.is_set():
            ok, image = cap.read()
            if not ok or image is None:
                cap.release()
                cap = self._cap = self._reconnect()
                continue
            with self._cond:
                self._latest = Frame(image, self._seq, time.time())
                self._seq += 1
                self._cond.notify_all()
        if cap is not None:
            cap.release()

    def _finish(self) -> None:
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def read(self, timeout: float | None = None) -> Frame | None:
        with self._cond:
            self._cond.wait_for(lambda: self._seq > self._taken or self._done, timeout=timeout)
            if self._seq == self._taken:  # timed out, or ended with nothing new
                self._raise_error()
                return None
            self.dropped += self._seq - self._taken - 1
            self._taken = self._seq
            return self._latest
