"""Image inputs: every accepted form, and clear errors for bad ones."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rtdetr_edge import images as image_io
from rtdetr_edge.errors import InputError


def _jpeg(path: Path, img: np.ndarray) -> Path:
    cv2.imwrite(str(path), img)
    return path


def test_every_image_form_is_normalised_to_bgr(tmp_path: Path, scene: np.ndarray) -> None:
    from PIL import Image

    bgr = image_io.load(scene)
    assert bgr.shape == scene.shape and bgr.dtype == np.uint8
    rgb = scene[..., ::-1].copy()
    assert np.array_equal(image_io.load(rgb, rgb=True), scene)
    assert np.array_equal(image_io.load(Image.fromarray(rgb)), scene)
    gray = cv2.cvtColor(scene, cv2.COLOR_BGR2GRAY)
    assert image_io.load(gray).shape == scene.shape
    bgra = cv2.cvtColor(scene, cv2.COLOR_BGR2BGRA)
    assert np.array_equal(image_io.load(bgra), scene)
    png = tmp_path / "a.png"
    cv2.imwrite(str(png), scene)
    assert np.array_equal(image_io.load(png), scene)


def _truncated(tmp_path: Path, scene: np.ndarray) -> Path:
    data = _jpeg(tmp_path / "full.jpg", scene).read_bytes()
    p = tmp_path / "truncated.jpg"
    p.write_bytes(data[: len(data) // 2])
    return p


def _tiny(tmp_path: Path, scene: np.ndarray) -> Path:
    return _jpeg(tmp_path / "one.png", scene[:1, :1])


def _text(tmp_path: Path, scene: np.ndarray) -> Path:
    p = tmp_path / "notes.jpg"
    p.write_text("hello")
    return p


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda t, s: t / "missing.jpg", "no such image file"),
        (_truncated, "truncated JPEG"),
        (_tiny, "expected at least 8x8"),
        (_text, "cannot decode"),
    ],
)
def test_unreadable_image_files_are_refused_with_their_path(
    tmp_path: Path, scene: np.ndarray, make, message: str
) -> None:
    path = make(tmp_path, scene)
    with pytest.raises(InputError, match=message) as exc:
        image_io.load(path)
    assert str(path) in str(exc.value)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((32, 32, 3), np.float32), "expected dtype uint8, got float32"),
        (np.zeros((32, 32, 3), np.uint16), "16-bit"),
        (np.zeros((32, 32, 2), np.uint8), "expected shape HxW, HxWx3 or HxWx4"),
        (np.zeros((2, 32, 32, 3), np.uint8), "expected shape"),
        (np.zeros((1, 1, 3), np.uint8), "expected at least 8x8"),
        (b"not-an-array", "expected a file path, numpy array or PIL image"),
    ],
)
def test_arrays_of_wrong_dtype_or_shape_are_refused(array, message: str) -> None:
    with pytest.raises(InputError, match=message):
        image_io.as_bgr(array, name="frame")


def test_a_folder_without_images_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no images found"):
        image_io.list_images(tmp_path)
