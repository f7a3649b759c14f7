"""EXIF orientation and PIL modes (issue 15, items 9 and 12): one reader for files and PIL images."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from rtdetr_edge import images as image_io
from rtdetr_edge.errors import InputError


def _marked() -> np.ndarray:
    """A 40x64 RGB image with a red block at the top left: any rotation or flip moves it."""
    rgb = np.zeros((40, 64, 3), np.uint8)
    rgb[:10, :16] = (255, 0, 0)
    rgb[30:, 50:] = (0, 0, 255)
    return rgb


def _exif_jpeg(path: Path, orientation: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(_marked()).save(path, "JPEG", quality=95, exif=exif.tobytes())
    return path


@pytest.mark.parametrize("orientation", range(2, 9))
def test_files_and_pil_images_are_turned_upright(tmp_path: Path, orientation: int) -> None:
    path = _exif_jpeg(tmp_path / f"phone_{orientation}.jpg", orientation)
    with Image.open(path) as im:
        upright = cv2.cvtColor(np.asarray(ImageOps.exif_transpose(im)), cv2.COLOR_RGB2BGR)
        from_pil = image_io.as_bgr(im)
    from_file = image_io.read_image(path)
    assert from_file.shape == upright.shape, f"orientation {orientation}: read sideways"
    assert np.abs(from_file.astype(int) - upright).mean() < 3
    assert from_pil.shape == upright.shape and np.abs(from_pil.astype(int) - upright).mean() < 1


def test_pil_16_bit_is_scaled_not_white() -> None:
    deep = (np.arange(64 * 32).reshape(32, 64) * 32).astype(np.uint16)
    im = Image.fromarray(deep)
    assert im.mode.startswith("I;16")
    out = image_io.as_bgr(im)
    assert np.array_equal(out[..., 0], (deep >> 8).astype(np.uint8)) and out.min() == 0 and out.max() > 200
    i32 = Image.fromarray(deep.astype(np.int32))
    assert i32.mode == "I" and np.array_equal(image_io.as_bgr(i32)[..., 1], (deep >> 8).astype(np.uint8))


def test_every_pil_mode_becomes_bgr() -> None:
    grey = Image.fromarray(np.full((16, 24), 120, np.uint8))
    for mode in ("La", "LA", "P", "PA", "CMYK", "1", "RGBa", "F", "YCbCr"):
        im = grey.convert("LA").convert("La") if mode == "La" else grey.convert("RGBA").convert(mode)
        out = image_io.as_bgr(im)
        assert out.shape == (16, 24, 3) and out.dtype == np.uint8, mode


def test_pil_opened_truncated_file_is_one_line(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(buf, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with Image.open(path) as im, pytest.raises(InputError, match=r"cut\.png: cannot read the PIL image"):
        image_io.as_bgr(im)


def test_16_bit_png_file_is_scaled(tmp_path: Path) -> None:
    deep = np.zeros((16, 16, 3), np.uint16)
    deep[..., 2] = 0xFF00
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), deep)
    assert image_io.read_image(path)[0, 0].tolist() == [0, 0, 255]
