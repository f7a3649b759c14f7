"""Bad option values fail where the options are made, one line naming the option (issue 15, item 13)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rtdetr_edge import Detector
from rtdetr_edge.backends.options import TensorRTOptions
from rtdetr_edge.detections import Detections
from rtdetr_edge.errors import InputError
from rtdetr_edge.postprocess import PostprocessOptions

BAD_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"conf": 1.5}, r"conf: expected a number in \[0, 1\], got 1.5"),
    ({"conf": -0.1}, r"conf: expected a number in \[0, 1\]"),
    ({"conf": math.nan}, r"conf: expected a number in \[0, 1\], got nan"),
    ({"conf": "0.5"}, r"conf: expected a number"),
    ({"max_det": 0}, r"max_det: expected an integer >= 1, got 0"),
    ({"max_det": -1}, r"max_det: expected an integer >= 1, got -1"),
    ({"max_det": 2.5}, r"max_det: expected an integer >= 1"),
    ({"classes": "1"}, r"classes: expected None or a non-empty list of integer class ids, got '1'"),
    ({"classes": 1}, r"classes: expected None or a non-empty list"),
    ({"classes": []}, r"classes: .* empty list"),
    ({"classes": [1, "a"]}, r"classes: 'a' is not one of the model's classes \(thing0, thing1"),
    ({"classes": [1, 99]}, r"classes: class id 99: expected 0\.\.4 \(the model has 5 classes\)"),
    ({"classes": [True]}, r"classes: .* >= 0, got True"),
    ({"classes": [-1]}, r"classes: .* >= 0, got -1"),
    ({"max_batch": 0}, r"max_batch: expected an integer >= 1 or None, got 0"),
    ({"max_batch": -2}, r"max_batch: expected an integer >= 1 or None, got -2"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_OPTIONS, ids=[str(k) for k, _ in BAD_OPTIONS])
def test_detector_rejects_bad_options(tiny_bundle: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        Detector(tiny_bundle, **kwargs)


PER_CALL = [b for b in BAD_OPTIONS if "max_batch" not in b[0]]


@pytest.mark.parametrize(("kwargs", "message"), PER_CALL, ids=[str(k) for k, _ in PER_CALL])
def test_per_call_options_are_checked_too(
    tiny_bundle: Path, scene: np.ndarray, kwargs: dict[str, Any], message: str
) -> None:
    with Detector(tiny_bundle) as det, pytest.raises(InputError, match=message):
        det(scene, **kwargs)


def test_good_values_are_normalised() -> None:
    opts = PostprocessOptions(conf=np.float32(0.5), classes=np.array([2, 0]), max_det=np.int64(3))  # type: ignore[arg-type]  # arrays are accepted at run time
    assert opts.conf == 0.5 and opts.classes == (2, 0) and opts.max_det == 3
    assert PostprocessOptions(conf=0, classes=(1,)).classes == (1,)
    assert PostprocessOptions(conf=1).conf == 1.0


def test_missing_cuda_device_is_named(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rtdetr_edge.cuda import buffers

    monkeypatch.setattr(buffers, "device_count", lambda: 1)
    with pytest.raises(InputError, match=r"device 9: expected a CUDA device index below 1"):
        Detector(tiny_bundle, tensorrt=TensorRTOptions(device=9))
    with pytest.raises(InputError, match="device"):
        TensorRTOptions(device="cuda:9")  # type: ignore[arg-type]
    Detector(tiny_bundle, backend="onnxruntime", tensorrt=TensorRTOptions(device=9)).close()


def test_call_after_close_is_one_line(tiny_bundle: Path, scene: np.ndarray) -> None:
    det = Detector(tiny_bundle)
    det.close()
    det.close()  # idempotent
    with pytest.raises(InputError, match=r"is closed; make a new Detector"):
        det(scene)
    with pytest.raises(InputError, match="is closed"):
        det.detect_batch([scene])


def test_to_json_never_writes_nan() -> None:
    dets = Detections(np.array([[0, 0, math.nan, 4]]), np.array([math.nan]), np.array([0]), ("a",), (8, 8))
    text = dets.to_json()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["detections"][0] == {"label": "a", "class_id": 0, "score": None, "xyxy": [0, 0, None, 4]}
    assert dets.to_coco(1) == []  # not a COCO number


def test_to_coco_names_unmapped_classes() -> None:
    dets = Detections(np.array([[0, 0, 2, 2], [1, 1, 3, 3]]), np.array([0.9, 0.8]), np.array([0, 1]), ("a", "b"))
    with pytest.raises(InputError, match=r"class ids 1 \('b'\) have no entry in category_ids"):
        dets.to_coco(7, {0: 10})
    assert [e["category_id"] for e in dets.to_coco(7, {0: 10}, unmapped="skip")] == [10]
    assert [e["category_id"] for e in dets.to_coco(7, {0: 10, 1: 11})] == [10, 11]
