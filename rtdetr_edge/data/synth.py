"""A procedural, seeded object-detection dataset in COCO format ("shapes").

Model hubs and COCO are out of reach on our CI machines, and random weights make accuracy
numbers meaningless, so the project trains and measures a small RT-DETR on scenes made here.
The scenes are built so that detection is not trivial:

* six classes of filled shapes, rotated, with random aspect ratio;
* sizes from a few pixels (COCO "small": area < 32^2) to a third of the image;
* solid, striped, checkered and noisy fills, sometimes outlined;
* cluttered backgrounds: gradients, textures, line clutter and distractor blobs;
* partial occlusion: later shapes may hide earlier ones, but each annotated object stays at
  least ``MIN_VISIBLE`` visible; its box is the box of its visible pixels (as in COCO);
* photometric noise, blur and JPEG compression.

The same ``seed`` always gives the same images and annotations (numpy ``default_rng``; OpenCV
drawing is deterministic).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .. import atomic
from ..errors import InputError

CLASSES: tuple[str, ...] = ("ellipse", "rectangle", "triangle", "star", "cross", "ring")
MIN_VISIBLE = 0.5  # fraction of an object's own pixels that must stay visible
SMALL_FRACTION = 0.3  # share of objects drawn at COCO-"small" size


@dataclass(frozen=True)
class SceneObject:
    """One annotated object: class index into :data:`CLASSES`, visible box (x, y, w, h), area."""

    class_id: int
    bbox: tuple[float, float, float, float]
    area: int


def _random_colour(rng: np.random.Generator, avoid: np.ndarray | None = None) -> np.ndarray:
    """A BGR colour, at least some distance from ``avoid`` so objects are never invisible."""
    for _ in range(20):
        hsv = np.array([[[rng.integers(0, 180), rng.integers(60, 256), rng.integers(60, 256)]]], np.uint8)
        bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)
        if avoid is None or np.abs(bgr - avoid).sum() > 120:
            return bgr
    return 255.0 - (avoid if avoid is not None else np.zeros(3, np.float32))


def _texture(rng: np.random.Generator, h: int, w: int, base: np.ndarray, kind: str) -> np.ndarray:
    """An HxWx3 float32 fill of ``kind`` (solid, stripes, checker, noise) around colour ``base``."""
    out = np.empty((h, w, 3), np.float32)
    out[:] = base
    if kind == "solid":
        return out
    other = _random_colour(rng, base)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "stripes":
        angle = rng.uniform(0, math.pi)
        period = rng.uniform(3, 10)
        phase = (xx * math.cos(angle) + yy * math.sin(angle)) / period
        mask = (np.floor(phase) % 2 == 0)[..., None]
    elif kind == "checker":
        cell = int(rng.integers(3, 9))
        mask = (((xx // cell) + (yy // cell)) % 2 == 0)[..., None]
    else:  # noise
        noise: np.ndarray = rng.normal(0, 1, (max(h // 4, 1), max(w // 4, 1))).astype(np.float32)
        noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR)
        mask = (noise > 0)[..., None]
    return np.where(mask, out, other).astype(np.float32)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Gradient + low-contrast texture + clutter (lines, arcs, blurred blobs)."""
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (xx * math.cos(angle) + yy * math.sin(angle)) / (abs(w * math.cos(angle)) + abs(h * math.sin(angle)) + 1)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    # low-frequency noise texture
    coarse = rng.normal(0, 1, (h // 16 + 2, w // 16 + 2, 3)).astype(np.float32)
    img += cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC) * rng.uniform(5, 25)
    img = np.clip(img, 0, 255).astype(np.uint8)
    # clutter: thin lines, arcs and blurred blobs that are not objects
    for _ in range(int(rng.integers(3, 15))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.random()
        if kind < 0.45:
            p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.line(img, p0, p1, colour, int(rng.integers(1, 3)), cv2.LINE_AA)
        elif kind < 0.75:
            centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            axes = (int(rng.integers(10, max(w // 2, 11))), int(rng.integers(10, max(h // 2, 11))))
            start = float(rng.uniform(0, 360))
            cv2.ellipse(
                img,
                centre,
                axes,
                float(rng.uniform(0, 360)),
                start,
                start + float(rng.uniform(30, 120)),
                colour,
                int(rng.integers(1, 3)),
                cv2.LINE_AA,
            )
        else:
            blob = np.zeros((h, w), np.float32)
            centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.circle(blob, centre, int(rng.integers(6, 30)), 1.0, -1)
            blob = cv2.GaussianBlur(blob, (0, 0), float(rng.uniform(4, 10)))[..., None] * rng.uniform(0.3, 0.7)
            img = (img * (1 - blob) + np.array(colour, np.float32) * blob).astype(np.uint8)
    return img


def _shape_polygons(
    cls: str, cx: float, cy: float, rx: float, ry: float, angle: float, rng: np.random.Generator
) -> list[np.ndarray]:
    """Polygons (float Nx2) whose union is the shape; ``ring`` is handled by the caller."""

    def rotate(pts: np.ndarray) -> np.ndarray:
        c, s = math.cos(angle), math.sin(angle)
        x = pts[:, 0] * rx
        y = pts[:, 1] * ry
        return np.stack([cx + x * c - y * s, cy + x * s + y * c], axis=1)

    if cls == "rectangle":
        return [rotate(np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64))]
    if cls == "triangle":
        a = np.array([-math.pi / 2, -math.pi / 2 + 2 * math.pi / 3, -math.pi / 2 + 4 * math.pi / 3])
        a = a + rng.uniform(-0.25, 0.25, 3)
        return [rotate(np.stack([np.cos(a), np.sin(a)], axis=1))]
    if cls == "star":
        points = int(rng.integers(5, 7))
        inner = rng.uniform(0.38, 0.55)
        a = np.arange(2 * points) * math.pi / points - math.pi / 2
        r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
        return [rotate(np.stack([r * np.cos(a), r * np.sin(a)], axis=1))]
    if cls == "cross":
        t = rng.uniform(0.28, 0.45)
        return [
            rotate(np.array([[-1, -t], [1, -t], [1, t], [-1, t]], np.float64)),
            rotate(np.array([[-t, -1], [t, -1], [t, 1], [-t, 1]], np.float64)),
        ]
    raise ValueError(cls)


def _shape_mask(
    cls: str, h: int, w: int, cx: float, cy: float, rx: float, ry: float, angle: float, rng: np.random.Generator
) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    shift = 4  # sub-pixel precision for small objects
    scale = 1 << shift
    if cls in ("ellipse", "ring"):
        centre = (round(float(cx) * scale), round(float(cy) * scale))
        axes = (max(round(float(rx) * scale), scale), max(round(float(ry) * scale), scale))
        cv2.ellipse(mask, centre, axes, math.degrees(angle), 0, 360, 1, -1, cv2.LINE_8, shift)
        if cls == "ring":
            k = rng.uniform(0.45, 0.7)
            inner = (max(int(axes[0] * k), 1), max(int(axes[1] * k), 1))
            cv2.ellipse(mask, centre, inner, math.degrees(angle), 0, 360, 0, -1, cv2.LINE_8, shift)
        return mask
    for poly in _shape_polygons(cls, cx, cy, rx, ry, angle, rng):
        cv2.fillPoly(mask, [np.round(poly * scale).astype(np.int32)], 1, cv2.LINE_8, shift)
    return mask


def render_scene(
    rng: np.random.Generator, width: int, height: int, max_objects: int = 8
) -> tuple[np.ndarray, list[SceneObject]]:
    """Render one BGR uint8 scene of ``width`` x ``height`` and its annotations."""
    img: np.ndarray = _background(rng, height, width).astype(np.float32)
    owner = np.full((height, width), -1, np.int16)
    full_area: list[int] = []
    classes: list[int] = []
    n_target = int(rng.integers(1, max_objects + 1))
    short = min(width, height)
    for _ in range(n_target * 4):
        if len(classes) >= n_target:
            break
        cls_id = int(rng.integers(0, len(CLASSES)))
        if rng.random() < SMALL_FRACTION:
            size = rng.uniform(7, 16)  # radius: area stays under 32^2
        else:
            size = rng.uniform(16, short * 0.33)
        aspect = rng.uniform(0.6, 1.6) if CLASSES[cls_id] != "star" else rng.uniform(0.85, 1.15)
        rx, ry = size * math.sqrt(aspect), size / math.sqrt(aspect)
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        mask = _shape_mask(CLASSES[cls_id], height, width, cx, cy, rx, ry, rng.uniform(0, math.pi), rng)
        area = int(mask.sum())
        if area < 20:
            continue
        sel = mask.astype(bool)
        # reject a placement that hides too much of an earlier object, or is mostly off-image
        covered = owner[sel]
        if covered.size and (covered >= 0).any():
            lost = np.bincount(covered[covered >= 0], minlength=len(classes))
            visible_now = np.bincount(owner[owner >= 0].ravel(), minlength=len(classes))
            if np.any((visible_now - lost) < MIN_VISIBLE * np.asarray(full_area)):
                continue
        ys, xs = np.nonzero(sel)
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        local_bg = img[y0:y1, x0:x1][sel[y0:y1, x0:x1]].mean(axis=0)
        colour = _random_colour(rng, local_bg)
        kind = rng.choice(["solid", "solid", "solid", "stripes", "checker", "noise"])
        tex = _texture(rng, int(y1 - y0), int(x1 - x0), colour, str(kind))
        region = img[y0:y1, x0:x1]
        m = sel[y0:y1, x0:x1]
        region[m] = tex[m]
        if rng.random() < 0.3:
            edge = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).astype(bool) & sel
            img[edge] = _random_colour(rng, colour)
        owner[sel] = len(classes)
        classes.append(cls_id)
        full_area.append(area)

    # photometric: brightness/contrast, blur, sensor noise
    img = img * rng.uniform(0.75, 1.25) + rng.uniform(-25, 25)
    if rng.random() < 0.4:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 1.2)))
    img += rng.normal(0, rng.uniform(1, 6), img.shape).astype(np.float32)
    image = np.clip(img, 0, 255).astype(np.uint8)

    objects = []
    for idx, cls_id in enumerate(classes):
        ys, xs = np.nonzero(owner == idx)
        if xs.size == 0:
            continue
        x0, y0 = float(xs.min()), float(ys.min())
        objects.append(SceneObject(cls_id, (x0, y0, float(xs.max() + 1 - x0), float(ys.max() + 1 - y0)), int(xs.size)))
    return image, objects


def coco_categories() -> list[dict[str, object]]:
    """COCO ``categories`` for :data:`CLASSES` (ids start at 1, as in COCO)."""
    return [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(CLASSES)]


def generate(
    out_dir: str | Path,
    num_images: int,
    seed: int,
    size: tuple[int, int] = (320, 240),
    max_objects: int = 8,
    jpeg_quality: int = 92,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write ``num_images`` scenes to ``out_dir/images`` and ``out_dir/annotations.json``.

    Args:
        out_dir: output directory (created).
        num_images: how many images.
        seed: random seed; the same seed gives the same dataset.
        size: image (width, height); default 320x240.
        max_objects: at most this many objects per image (at least 1).
        jpeg_quality: JPEG quality of the saved images.
        progress: called with 1 after each image (e.g. ``tqdm.update``).

    Returns:
        The path of ``annotations.json`` (written last and atomically, so a complete file means
        a complete dataset).
    """
    for flag, value, low in (("--num-images", num_images, 1), ("--seed", seed, 0), ("--max-objects", max_objects, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise InputError(f"{flag}: expected an integer >= {low}, got {value!r}")
    width, height = size
    if width < 32 or height < 32:
        raise InputError(f"--size must be at least 32x32, got {width}x{height}")
    out = Path(out_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    # images go to a hidden staging folder first: an interrupted run leaves neither new images nor
    # a damaged earlier dataset behind (the staging folder is removed on the way out)
    atomic.remove_stale_partials(out / "images")  # those of runs that were killed outright
    staging = Path(tempfile.mkdtemp(prefix=f".images.{os.getpid()}.", suffix=".partial", dir=out))
    try:
        images, annotations = _render_all(staging, num_images, seed, size, max_objects, jpeg_quality, progress)
        ann_path = out / "annotations.json"
        ann_path.unlink(missing_ok=True)  # no complete-dataset marker while images/ is swapped
        if (out / "images").exists():
            shutil.rmtree(out / "images")
        os.replace(staging, out / "images")
        atomic.write_json(
            ann_path,
            {
                "info": {"description": "rtdetr-edge synthetic shapes", "seed": seed, "version": 1},
                "images": images,
                "annotations": annotations,
                "categories": coco_categories(),
            },
            indent=None,
        )
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
    return ann_path


def _render_all(
    images_dir: Path,
    num_images: int,
    seed: int,
    size: tuple[int, int],
    max_objects: int,
    jpeg_quality: int,
    progress: Callable[[int], None] | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Render and save the scenes into ``images_dir``; their COCO images and annotations entries."""
    width, height = size
    rng = np.random.default_rng(seed)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for i in range(num_images):
        image, objects = render_scene(rng, width, height, max_objects=max_objects)
        name = f"{seed:06d}_{i:06d}.jpg"
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        (images_dir / name).write_bytes(buf.tobytes())
        image_id = i + 1
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for obj in objects:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": obj.class_id + 1,
                    "bbox": [round(v, 2) for v in obj.bbox],
                    "area": obj.area,
                    "iscrowd": 0,
                }
            )
        if progress is not None:
            progress(1)
    return images, annotations
