#!/usr/bin/env python3
"""track: multi-object tracking (ByteTrack) on the Detector's output, with track ids in the
overlay and in the JSON lines. Same sources, outputs and options as camera_app.py.

ByteTrack comes from supervision, an optional dependency (``pip install supervision``, or
``pip install "rtdetr-edge[track]"``): ``sv.ByteTrack`` in supervision 0.20-0.30; from 0.31 on
it lives in Roboflow's ``trackers`` package (``ByteTrackTracker``), which is used when installed.
Detections go to supervision as ``Detections.to_supervision()``; rtdetr-edge never imports it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import camera_app
import cv2
import numpy as np

from rtdetr_edge import Detector
from rtdetr_edge.detections import Detections

import capture

INSTALL_HINT = (
    "track.py needs ByteTrack from supervision: pip install supervision "
    '(or pip install "rtdetr-edge[track]"). supervision 0.20-0.30 ships sv.ByteTrack; '
    "from 0.31 on also pip install trackers"
)


class MissingTracker(RuntimeError):
    """supervision (with a ByteTrack) is not installed."""


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


class ByteTracker:
    """ByteTrack over :class:`Detections`: returns the tracked detections and their track ids.

    Args:
        fps: the source's frame rate (how long ``lost_buffer`` frames last).
        activation: score a detection needs to start a track (0.25).
        lost_buffer: frames a lost track is kept to be found again (30 at 30 FPS).
        match: supervision's minimum matching threshold (0.8).
        min_frames: frames a track must be seen before it gets an id (1).
    """

    def __init__(
        self,
        fps: float = 30.0,
        activation: float = 0.25,
        lost_buffer: int = 30,
        match: float = 0.8,
        min_frames: int = 1,
    ) -> None:
        self.sv = _import("supervision")
        if self.sv is None:
            raise MissingTracker(INSTALL_HINT)
        trackers = _import("trackers")
        self._update: Callable[[Any], Any]
        if trackers is not None and hasattr(trackers, "ByteTrackTracker"):
            tracker = trackers.ByteTrackTracker(
                frame_rate=fps,
                track_activation_threshold=activation,
                lost_track_buffer=lost_buffer,
                minimum_consecutive_frames=min_frames,
            )
            self.backend = f"trackers {getattr(trackers, '__version__', '')}".strip()
            self._update = tracker.update
        elif hasattr(self.sv, "ByteTrack"):
            with warnings.catch_warnings():  # deprecated in 0.28 in favour of `trackers`; still works
                warnings.simplefilter("ignore")
                tracker = self.sv.ByteTrack(
                    track_activation_threshold=activation,
                    lost_track_buffer=lost_buffer,
                    minimum_matching_threshold=match,
                    frame_rate=fps,
                    minimum_consecutive_frames=min_frames,
                )
            self.backend = f"supervision {self.sv.__version__}"
            self._update = tracker.update_with_detections
        else:
            raise MissingTracker(f"supervision {self.sv.__version__} has no ByteTrack. {INSTALL_HINT}")

    def __call__(self, dets: Detections) -> tuple[Detections, np.ndarray]:
        out = self._update(dets.to_supervision(self.sv))
        n = len(out.xyxy)
        ids = np.full(n, -1, int) if out.tracker_id is None else np.asarray(out.tracker_id, int)
        keep = ids >= 0  # -1: seen, but not a confirmed track yet
        conf = np.zeros(n, np.float32) if out.confidence is None else out.confidence
        cls = np.zeros(n, np.int32) if out.class_id is None else out.class_id
        tracked = Detections(
            np.asarray(out.xyxy).reshape(-1, 4)[keep],
            np.asarray(conf)[keep],
            np.asarray(cls)[keep],
            dets.class_names,
            dets.image_size,
        )
        return tracked, ids[keep]


def draw_tracks(image: np.ndarray, dets: Detections, ids: np.ndarray) -> np.ndarray:
    """Boxes, labels and scores (Detections.draw) plus ``#id`` in each box's lower-left corner."""
    canvas = dets.draw(image)
    for (x0, _, _, y1), tid in zip(dets.xyxy, ids):
        org = (int(x0) + 3, int(y1) - 4)
        cv2.putText(canvas, f"#{tid}", org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(canvas, f"#{tid}", org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def track_hook(tracker: ByteTracker) -> camera_app.FrameHook:
    def hook(image: np.ndarray, dets: Detections, frame: capture.Frame) -> camera_app.HookResult:
        tracked, ids = tracker(dets)
        records = [dict(rec, track_id=int(tid)) for rec, tid in zip(tracked.to_list(), ids)]
        return draw_tracks(image, tracked, ids), records

    return hook


def parser() -> argparse.ArgumentParser:
    p = camera_app.parser(prog="track.py", description=__doc__)
    g = p.add_argument_group("tracking (ByteTrack)")
    g.add_argument("--track-activation", type=float, default=0.25, help="score to start a track (default 0.25)")
    g.add_argument("--track-buffer", type=int, default=30, help="frames a lost track is kept (default 30)")
    g.add_argument("--track-match", type=float, default=0.8, help="matching threshold (default 0.8)")
    g.add_argument("--track-min-frames", type=int, default=1, help="frames before a track gets an id (default 1)")
    # ByteTrack's second association uses low-score boxes: let them through the detector
    p.set_defaults(conf=0.1)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    settings = dict(
        activation=args.track_activation,
        lost_buffer=args.track_buffer,
        match=args.track_match,
        min_frames=args.track_min_frames,
    )
    try:
        ByteTracker(**settings)  # fail before loading the model if supervision is missing
    except MissingTracker as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    def factory(src: capture.FrameSource, det: Detector) -> camera_app.FrameHook:
        tracker = ByteTracker(fps=src.fps or 30.0, **settings)
        camera_app.log.info("tracking with ByteTrack (%s)", tracker.backend)
        return track_hook(tracker)

    return camera_app.main(argv, hook_factory=factory, arg_parser=p)


if __name__ == "__main__":
    sys.exit(main())
