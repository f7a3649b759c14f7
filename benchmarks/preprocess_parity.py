#!/usr/bin/env python3
"""Our preprocessing vs transformers' RT-DETR image processor (Pillow), pixel by pixel and in time.

For several frame sizes, each candidate OpenCV resize is compared with Pillow's antialiased
bilinear (what ``RTDetrImageProcessor`` uses): max and mean absolute difference in 0-255 units
and the median time. The last rows compare the whole pipelines (our ``Preprocessor`` writing
the float tensor vs the Pillow processor) in the model's [0, 1] input units.

    python benchmarks/preprocess_parity.py
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import cv2
import numpy as np
from PIL import Image

from rtdetr_edge.contract import Preprocessing
from rtdetr_edge.data.synth import render_scene
from rtdetr_edge.preprocess import Preprocessor, resize_interpolation

from _common import median_ms, table, write_json

CASES = [((1280, 720), 640), ((1920, 1080), 640), ((640, 480), 640), ((320, 240), 256)]
CANDIDATES = {
    "INTER_LINEAR": cv2.INTER_LINEAR,
    "INTER_LINEAR_EXACT": cv2.INTER_LINEAR_EXACT,
    "INTER_AREA": cv2.INTER_AREA,
    "INTER_CUBIC": cv2.INTER_CUBIC,
}
NAMES = {v: k for k, v in CANDIDATES.items()}


def _pillow_resize(rgb: np.ndarray, size: int) -> Image.Image:
    return Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR)


def _transformers_preprocess(processor: Any, frame: np.ndarray) -> Any:
    return processor(images=frame[..., ::-1].copy(), return_tensors="np")


def main() -> int:
    from transformers.models.rt_detr.image_processing_pil_rt_detr import RTDetrImageProcessorPil

    rows, results = [], []
    for (w, h), size in CASES:
        frame = render_scene(np.random.default_rng(w), w, h)[0]
        rgb = frame[..., ::-1].copy()
        ref = np.asarray(_pillow_resize(rgb, size)).astype(np.float32)
        pil_ms = median_ms(functools.partial(_pillow_resize, rgb, size))
        chosen = resize_interpolation((w, h), (size, size), "bilinear")
        for name, flag in CANDIDATES.items():
            out = cv2.resize(rgb, (size, size), interpolation=flag).astype(np.float32)
            d = np.abs(out - ref)
            ms = median_ms(functools.partial(cv2.resize, rgb, (size, size), interpolation=flag))
            mark = "<- chosen" if flag == chosen else ""
            rows.append([f"{w}x{h}->{size}", name, float(d.max()), float(d.mean()), ms, pil_ms, mark])
            results.append(
                {
                    "case": f"{w}x{h}->{size}",
                    "resize": name,
                    "max_abs": float(d.max()),
                    "mean_abs": float(d.mean()),
                    "ms": ms,
                    "pillow_ms": pil_ms,
                    "chosen": bool(mark),
                }
            )
    print("resize vs Pillow BILINEAR (0-255 units)")
    print(table(["case", "opencv", "max |d|", "mean |d|", "ms", "pillow ms", ""], rows))

    rows = []
    pipeline = []
    for (w, h), size in CASES:
        frame = render_scene(np.random.default_rng(w), w, h)[0]
        pre = Preprocessor(Preprocessing(height=size, width=size))
        buf = pre.allocate(1)
        processor = RTDetrImageProcessorPil(size={"height": size, "width": size})
        theirs = _transformers_preprocess(processor, frame)["pixel_values"][0]
        pre([frame], out=buf)
        d = np.abs(buf[0] - theirs)
        ours_ms = median_ms(functools.partial(pre, [frame], out=buf))
        theirs_ms = median_ms(functools.partial(_transformers_preprocess, processor, frame), repeat=10)
        rows.append([f"{w}x{h}->{size}", float(d.max()), float(d.mean()), ours_ms, theirs_ms])
        pipeline.append(
            {
                "case": f"{w}x{h}->{size}",
                "max_abs": float(d.max()),
                "mean_abs": float(d.mean()),
                "ours_ms": ours_ms,
                "transformers_ms": theirs_ms,
            }
        )
    print("\nwhole preprocessing: ours vs transformers' RTDetrImageProcessor (model input units, [0, 1])")
    print(table(["case", "max |d|", "mean |d|", "ours ms", "transformers ms"], rows))
    path = write_json("preprocess_parity.json", {"resize": results, "pipeline": pipeline})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
