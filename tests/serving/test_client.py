"""TritonDetector without a server: URLs, what is sent, the missing-extra error; the steps the
Python-backend models run compute what Detector computes (no Triton needed)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from rtdetr_edge import Detector
from rtdetr_edge.errors import InputError, MissingDependencyError
from rtdetr_edge.images import decode_image, read_image
from rtdetr_edge.serving import client as client_module
from rtdetr_edge.serving import steps
from rtdetr_edge.serving.client import TritonDetector
from tests.helpers import SAMPLES


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://h:8000/", ("http", "h:8000")),
        ("grpc://h:8001", ("grpc", "h:8001")),
        ("localhost:8000", ("http", "localhost:8000")),
        ("localhost", ("http", "localhost:8000")),
        ("grpc://localhost", ("grpc", "localhost:8001")),
        ("http://[::1]:8000", ("http", "[::1]:8000")),
        # checked before tritonclient sees them (its constructors fail half-way, then print a traceback)
        ("https://h:8000", None),
        ("http://[::1", None),
        ("http://127.0.0.1:99999", None),
        ("http://127.0.0.1:0", None),
        ("http://h:8000/v2/models", None),
        ("http://:8000", None),
    ],
)
def test_urls(url: str, expected: tuple[str, str] | None) -> None:
    if expected is None:
        with pytest.raises(InputError, match=r"--server .*: expected http://HOST:PORT"):
            client_module._split_url(url)
    else:
        assert client_module._split_url(url) == expected


def test_missing_tritonclient_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tritonclient.http", None)  # import raises ImportError
    with pytest.raises(MissingDependencyError, match=re.escape('pip install "rtdetr-edge[serve]"')):
        TritonDetector("http://127.0.0.1:1")


def test_what_is_sent_decodes_to_the_same_pixels(scene: np.ndarray) -> None:
    path = SAMPLES / "images" / "scene_0.jpg"
    assert TritonDetector.encode(path) == path.read_bytes()  # files go as they are
    assert np.array_equal(decode_image(TritonDetector.encode(scene)), scene)  # arrays as lossless PNG
    rgb = cv2.cvtColor(scene, cv2.COLOR_BGR2RGB)
    assert np.array_equal(decode_image(TritonDetector.encode(rgb, rgb=True)), scene)
    with pytest.raises(InputError, match=r"cannot read"):
        TritonDetector.encode(Path("/nonexistent.jpg"))


def test_the_model_steps_compute_what_detector_computes(reference_bundle: Path) -> None:
    files = sorted((SAMPLES / "images").glob("*.jpg"))
    with Detector(reference_bundle) as det:
        want = det([str(p) for p in files])
        tensors, sizes = zip(*(steps.preprocess(p.read_bytes(), det.preprocessor, p.name) for p in files))
        step = steps.TensorStep.open(reference_bundle / "model.onnx", threads=1, max_batch=1)  # two chunks
        outputs = step(np.concatenate(tensors))
        step.close()
        got = steps.postprocess(outputs, np.concatenate(sizes), det.contract, det.options)
    assert got == want
    assert [d.image_size for d in got] == [(read_image(p).shape[1], read_image(p).shape[0]) for p in files]
    with pytest.raises(InputError, match="cannot decode as an image"):
        steps.preprocess(b"junk", det.preprocessor, "junk.bin")
