"""Turn whatever a user passes into a validated HxWx3 uint8 image in BGR order.

Accepted: file paths, numpy arrays (HxWx3 BGR by default, ``rgb=True`` for RGB; HxW grayscale;
HxWx4 with alpha), and PIL images of any mode (converted by duck typing, PIL is never imported
here; 16-bit modes scaled to 8 bit). Files and PIL images are turned upright by their EXIF
orientation.
Anything else raises :class:`InputError` naming the input and what was expected.

Decompression bombs: an encoded file's width and height are read from its header before it is
decoded (PNG, JPEG, BMP, WebP, TIFF, GIF), and a file of more than :data:`MAX_IMAGE_PIXELS` pixels
is refused, as Pillow's ``Image.MAX_IMAGE_PIXELS`` guard does (a 2.6 MB PNG can decode to 2.7 GB).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import InputError

MIN_SIDE = 8  # smaller images carry no detectable content and usually mean a bug upstream
PIXELS_ENV = "RTDETR_EDGE_MAX_IMAGE_PIXELS"
# Pillow's own default limit (``PIL.Image.MAX_IMAGE_PIXELS``: ~0.25 GiB of 24-bit pixels; 8K video
# frames are 33 M). Set the module attribute, or the environment variable above (for processes
# such as a Triton server), to another number; None (or "none") turns the check off.
MAX_IMAGE_PIXELS: int | None = 89_478_485


def max_pixels() -> int | None:
    """The pixel limit in force: ``$RTDETR_EDGE_MAX_IMAGE_PIXELS`` if set, else :data:`MAX_IMAGE_PIXELS`."""
    text = os.environ.get(PIXELS_ENV)
    if text is None:
        return MAX_IMAGE_PIXELS
    if text.strip().lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"${PIXELS_ENV}: expected a number of pixels >= 1 or none, got {text!r}")
    return value


def check_pixels(width: int, height: int, name: str) -> None:
    """InputError naming ``name`` if a ``width`` x ``height`` image exceeds the pixel limit."""
    limit = max_pixels()
    if limit is not None and width * height > limit:
        raise InputError(
            f"{name}: {width}x{height} is {width * height:,} pixels, above the limit of {limit:,} "
            f"(rtdetr_edge.images.MAX_IMAGE_PIXELS or ${PIXELS_ENV}; it guards against decompression bombs)"
        )


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    end = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack(end + "I", data[4:8])
    if offset + 2 > len(data):
        return None
    (count,) = struct.unpack(end + "H", data[offset : offset + 2])
    found: dict[int, int] = {}
    for k in range(count):
        entry = data[offset + 2 + 12 * k : offset + 14 + 12 * k]
        if len(entry) < 12:
            break
        tag, kind = struct.unpack(end + "HH", entry[:4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
            fmt = end + ("H" if kind == 3 else "I")
            found[tag] = struct.unpack(fmt, entry[8 : 8 + struct.calcsize(fmt)])[0]
    return (found[256], found[257]) if 256 in found and 257 in found else None


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from an encoded image's header, without decoding it (None: format not known here)."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            return struct.unpack(">II", data[16:24])
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
        if data[:2] == b"BM":
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            chunk = data[12:16]
            if chunk == b"VP8X":
                w = int.from_bytes(data[24:27], "little") + 1
                return w, int.from_bytes(data[27:30], "little") + 1
            if chunk == b"VP8L":
                bits = int.from_bytes(data[21:25], "little")
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_size(data)
    except struct.error:  # a header cut short: the decoder says what is wrong with it
        return None
    return None


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
    return decode_image(data, str(p))


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode an encoded image file's bytes as HxWx3 uint8 BGR, exactly as :func:`read_image` does.

    ``name`` (the file, or what the bytes came from) starts each error message.
    """
    if not data:
        raise InputError(f"{name}: empty file, expected an image")
    if _jpeg_truncated(data):
        raise InputError(f"{name}: truncated JPEG (no end-of-image marker); the file is incomplete")
    size = header_size(data)
    if size is not None:
        check_pixels(size[0], size[1], name)  # before decoding: a small file can decode to gigabytes
    # IMREAD_COLOR (unlike IMREAD_UNCHANGED) applies the EXIF orientation, as phones and the camera
    # app's folder source expect, and makes every file 8-bit BGR (16-bit samples scaled, alpha dropped)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"{name}: cannot decode as an image (expected JPEG, PNG, BMP, WebP or TIFF)")
    if size is None:  # a format whose header is not read here: checked once decoded
        check_pixels(image.shape[1], image.shape[0], name)
    return as_bgr(image, name=name)


# EXIF orientation -> numpy ops turning the stored pixels upright (what PIL's exif_transpose does)
_ORIENT: dict[int, Any] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.swapaxes(a[::-1, ::-1], 0, 1),
    8: lambda a: np.rot90(a, 1),
}


def _pil_orientation(image: Any) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))
    except (AttributeError, OSError, ValueError, TypeError, SyntaxError, KeyError):  # no or unreadable EXIF: as stored
        return 1


def _pil_array(image: Any, name: str) -> np.ndarray:
    """A PIL image (any mode) as an RGB, RGBA or L uint8 array, upright by its EXIF orientation."""
    mode = str(image.mode)
    orientation = _pil_orientation(image)
    try:
        if mode.startswith("I;16") or mode in ("I", "F"):
            arr = np.asarray(image)
            if mode.startswith("I;16") or mode == "I":  # 16-bit samples (mode I holds them as int32)
                arr = (np.clip(arr.astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
            else:  # float: 0..255 as PIL's own conversion to L
                arr = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
        else:
            if mode == "La":  # premultiplied alpha: PIL converts it only to LA
                image, mode = image.convert("LA"), "LA"
            if mode == "RGBa":
                image, mode = image.convert("RGBA"), "RGBA"
            if mode not in ("RGB", "L", "RGBA"):
                image = image.convert("RGBA" if mode in ("LA", "PA") else "RGB")
            arr = np.asarray(image)
    except (OSError, ValueError, SyntaxError) as exc:  # a lazily opened file that is truncated or corrupt
        where = getattr(image, "filename", "") or name
        raise InputError(f"{where}: cannot read the PIL image ({exc})") from exc
    return np.ascontiguousarray(_ORIENT[orientation](arr)) if orientation in _ORIENT else arr


def as_bgr(image: Any, rgb: bool = False, name: str = "image") -> np.ndarray:
    """Validate an array or PIL image and return a contiguous HxWx3 uint8 BGR array.

    Args:
        image: HxW, HxWx1, HxWx3 or HxWx4 uint8 numpy array, or a PIL image.
        rgb: the array's colour channels are RGB(A), not OpenCV's BGR(A).
        name: how the input is called in error messages.
    """
    if hasattr(image, "mode") and hasattr(image, "convert") and not isinstance(image, np.ndarray):
        image, rgb = _pil_array(image, name), True
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
