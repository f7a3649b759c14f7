"""Image -> input tensor, exactly per the model contract, into a preallocated buffer.

RT-DETR stretch-resizes to the input size (no letterbox), converts to RGB, rescales by 1/255 and,
for the official weights, does not normalise. The Hugging Face processor resizes with Pillow's
bilinear filter, which is antialiased when downscaling. OpenCV has no antialiased bilinear, so we
pick per direction (``benchmarks/preprocess_parity.py`` measures the choice against Pillow):

* upscaling (or same size) on both axes: ``INTER_LINEAR_EXACT``, bit-exact with Pillow there;
* otherwise: ``INTER_AREA`` (a box filter, i.e. antialiased) when the image is at least
  ``AREA_MIN_FACTOR`` times the input size on some axis, where bilinear sampling would skip
  pixels, and ``INTER_LINEAR`` below that, where its two-tap average already covers each
  source pixel and costs a fifth of ``INTER_AREA``.

Bundles built with ``--frame-size`` avoid this approximation for camera frames of their size: their
frame-input graphs resize with Pillow's own filter inside the graph (``rtdetr_edge.export.frames``).

The resized uint8 image is the only intermediate; scaling and the HWC->CHW transpose write
straight into the caller's buffer (which the TensorRT backend pins or maps for the GPU).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .contract import Preprocessing
from .errors import InputError

# At a downscale factor below this, INTER_LINEAR (2 taps) is close to Pillow's antialiased
# bilinear (mean abs diff within ~0.1 grey levels of INTER_AREA) at a fraction of the cost.
AREA_MIN_FACTOR = 2.5

_UPSCALE = {"nearest": cv2.INTER_NEAREST_EXACT, "bicubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}


def resize_interpolation(
    src_wh: tuple[int, int], dst_wh: tuple[int, int], resample: str = "bilinear", antialias: bool = True
) -> int:
    """The OpenCV interpolation flag that best matches Pillow's ``resample`` for this resize.

    ``antialias=False`` (a processor resizing with plain 2-tap interpolation, e.g. RF-DETR's):
    INTER_LINEAR at every scale, which is that interpolation (half-pixel centres).
    """
    fx, fy = src_wh[0] / dst_wh[0], src_wh[1] / dst_wh[1]
    if fx <= 1.0 and fy <= 1.0:
        return _UPSCALE.get(resample, cv2.INTER_LINEAR_EXACT)
    if resample == "nearest":
        return cv2.INTER_NEAREST_EXACT
    if not antialias:
        return cv2.INTER_LINEAR
    if max(fx, fy) >= AREA_MIN_FACTOR:
        return cv2.INTER_AREA
    return cv2.INTER_LINEAR


def resize(
    image: np.ndarray, width: int, height: int, resample: str = "bilinear", antialias: bool = True
) -> np.ndarray:
    """Stretch-resize an HxWxC uint8 image to ``width`` x ``height`` (no copy if already that size)."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    flag = resize_interpolation((w, h), (width, height), resample, antialias)
    return cv2.resize(image, (width, height), interpolation=flag)


class Preprocessor:
    """Writes BGR uint8 images into an ``[N,3,H,W]`` float32 buffer per a :class:`Preprocessing`.

    Example:
        >>> pre = Preprocessor(contract.preprocessing)
        >>> batch = pre.allocate(2)
        >>> sizes = pre(images, out=batch)   # [(w, h), ...] of the originals
    """

    def __init__(self, spec: Preprocessing) -> None:
        self.spec = spec
        self.height, self.width = spec.height, spec.width
        # channel c of the input tensor comes from this channel of a BGR image
        self._src_channel = (2, 1, 0) if spec.channel_order == "RGB" else (0, 1, 2)
        mean = np.asarray(spec.mean, np.float32) if spec.do_normalize else np.zeros(3, np.float32)
        std = np.asarray(spec.std, np.float32) if spec.do_normalize else np.ones(3, np.float32)
        self._scale = (np.float32(spec.rescale_factor) / std).astype(np.float32)
        self._bias = (-mean / std).astype(np.float32)
        self._needs_bias = bool(np.any(self._bias != 0))

    def input_shape(self, batch: int) -> tuple[int, int, int, int]:
        return (batch, 3, self.height, self.width)

    def allocate(self, batch: int) -> np.ndarray:
        """A new float32 buffer for ``batch`` images (pinned/mapped buffers come from backends)."""
        return np.empty(self.input_shape(batch), np.float32)

    def into(self, image: np.ndarray, out: np.ndarray) -> tuple[int, int]:
        """Preprocess one HxWx3 uint8 BGR ``image`` into ``out`` ([3,H,W] float32 view).

        Returns:
            The original (width, height), needed to scale boxes back.
        """
        if out.shape != (3, self.height, self.width) or out.dtype != np.float32:
            raise InputError(
                f"preprocess buffer: expected float32 {(3, self.height, self.width)}, got {out.dtype} {out.shape}"
            )
        h, w = image.shape[:2]
        resized = resize(image, self.width, self.height, self.spec.resample, self.spec.antialias)
        for c in range(3):
            # OpenCV de-interleaves one channel (contiguous uint8), numpy scales it into the float32
            # plane: ~25% faster than a strided numpy read at 640x640
            plane = cv2.extractChannel(resized, int(self._src_channel[c]))
            np.multiply(plane, self._scale[c], out=out[c], dtype=np.float32)
            if self._needs_bias:
                out[c] += self._bias[c]
        return (w, h)

    def __call__(self, images: Sequence[np.ndarray], out: np.ndarray | None = None) -> list[tuple[int, int]]:
        """Preprocess a batch into ``out`` (allocated if None; must hold at least len(images))."""
        if out is None:
            raise InputError("preprocess: pass out=Preprocessor.allocate(n) (or a backend input buffer)")
        if out.shape[0] < len(images):
            raise InputError(f"preprocess buffer holds {out.shape[0]} images, got {len(images)}")
        return [self.into(img, out[i]) for i, img in enumerate(images)]

    def batch(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """Convenience: allocate a buffer and preprocess ``images`` into it."""
        out = self.allocate(len(images))
        return out, self(images, out)
