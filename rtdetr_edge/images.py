"""Turn whatever a user passes into a validated HxWx3 uint8 image in BGR order.

Accepted: file paths, numpy arrays (HxWx3 BGR by default, ``rgb=True`` for RGB; HxW grayscale;
HxWx4 with alpha), and PIL images (converted by duck typing, PIL is never imported here).
Anything else raises :class:`InputError` naming the input and what was expected.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import InputError

MIN_SIDE = 8  # smaller images carry no detectable content and usually mean a bug upstream
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def _jpeg_truncated(data: bytes) -> bool:
    # A complete JPEG ends with the EOI marker FFD9 (some writers pad a few bytes after it).
    return data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-64:]


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as HxWx3 uint8 BGR, with clear errors for bad files."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such image file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    if not data:
        raise InputError(f"{p}: empty file, expected an image")
    if _jpeg_truncated(data):
        raise InputError(f"{p}: truncated JPEG (no end-of-image marker); the file is incomplete")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"{p}: cannot decode as an image (expected JPEG, PNG, BMP, WebP or TIFF)")
    return as_bgr(image, name=str(p))


def as_bgr(image: Any, rgb: bool = False, name: str = "image") -> np.ndarray:
    """Validate an array or PIL image and return a contiguous HxWx3 uint8 BGR array.

    Args:
        image: HxW, HxWx1, HxWx3 or HxWx4 uint8 numpy array, or a PIL image.
        rgb: the array's colour channels are RGB(A), not OpenCV's BGR(A).
        name: how the input is called in error messages.
    """
    if hasattr(image, "mode") and hasattr(image, "convert") and not isinstance(image, np.ndarray):
        if image.mode not in ("RGB", "L", "RGBA"):
            image = image.convert("RGB")
        image, rgb = np.asarray(image), True
    if not isinstance(image, np.ndarray):
        raise InputError(f"{name}: expected a file path, numpy array or PIL image, got {type(image).__name__}")
    if image.dtype != np.uint8:
        bits = " (16-bit images are not supported; convert to 8-bit)" if image.dtype == np.uint16 else ""
        raise InputError(f"{name}: expected dtype uint8, got {image.dtype}{bits}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGR if rgb else cv2.COLOR_BGRA2BGR)
    elif image.ndim == 3 and image.shape[2] == 3:
        if rgb:
            image = image[..., ::-1]
    else:
        raise InputError(f"{name}: expected shape HxW, HxWx3 or HxWx4, got {image.shape}")
    h, w = image.shape[:2]
    if h < MIN_SIDE or w < MIN_SIDE:
        raise InputError(f"{name}: image is {w}x{h}; expected at least {MIN_SIDE}x{MIN_SIDE} pixels")
    return np.ascontiguousarray(image)


def load(source: Any, rgb: bool = False) -> np.ndarray:
    """Load one image from a path, array or PIL image as HxWx3 uint8 BGR."""
    if isinstance(source, (str, os.PathLike)):
        return read_image(source)
    return as_bgr(source, rgb=rgb)


def list_images(
    folder: str | os.PathLike[str], suffixes: tuple[str, ...] = IMAGE_SUFFIXES, what: str = "images"
) -> list[Path]:
    """Files directly inside ``folder`` whose suffix is one of ``suffixes``, sorted; none is an error.

    Args:
        folder: the folder.
        suffixes: lower-case suffixes to keep (default: the image files OpenCV reads).
        what: what the files are, for the error message.
    """
    d = Path(folder)
    if not d.is_dir():
        raise InputError(f"{d}: not a directory")
    files = sorted(p for p in d.iterdir() if p.suffix.lower() in suffixes and p.is_file())
    if not files:
        raise InputError(f"{d}: no {what} found (looked for {', '.join(suffixes)})")
    return files
