"""Fixtures of the sample tests: the sample modules, the model they run, a synthetic video."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from tests.helpers import REFERENCE_MODEL, SAMPLES
from tests.samples.support import N_FRAMES, SIZE, count_frames


@pytest.fixture(scope="module")
def samples() -> Iterator[SimpleNamespace]:
    """The sample modules, imported the way ``python samples/x.py`` finds them (plain names)."""
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(SAMPLES))
    import camera_app

    import capture
    import sources
    import track

    yield SimpleNamespace(sources=sources, capture=capture, camera_app=camera_app, track=track)
    mp.undo()


@pytest.fixture(scope="module")
def model(request: pytest.FixtureRequest) -> SimpleNamespace:
    """The reference bundle if the reference model exists, else the tiny one (with conf 0 so that
    its random detections still exercise drawing and the JSON output)."""
    if (REFERENCE_MODEL / "config.json").is_file():
        return SimpleNamespace(path=request.getfixturevalue("reference_bundle"), reference=True, conf="0.3")
    return SimpleNamespace(path=request.getfixturevalue("tiny_bundle"), reference=False, conf="0.0")


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """N_FRAMES of a synthetic shapes scene panning right, written with cv2.VideoWriter."""
    from rtdetr_edge.data.synth import render_scene

    scene = render_scene(np.random.default_rng(5), 2 * SIZE[0], SIZE[1])[0]
    path = tmp_path_factory.mktemp("video") / "synthetic.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, SIZE)
    assert writer.isOpened()
    for i in range(N_FRAMES):
        writer.write(np.ascontiguousarray(scene[:, 4 * i : 4 * i + SIZE[0]]))
    writer.release()
    assert count_frames(path) == N_FRAMES
    return path
