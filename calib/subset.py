"""Calibration sources and reproducible, category-stratified subsets.

``--calib`` names a source: ``coco_val``/``coco_train`` (COCO 2017, see :mod:`rtdetr_edge.data.coco_splits`; parsed by :func:`rtdetr_edge.data.sources.open_source`), a COCO
json (any COCO-format set) or a folder of images. A subset is chosen deterministically from the
seed: for annotated sources every category present is covered (rarest first), then the rest is
filled so small, medium and large objects are spread evenly. The manifest (image ids, files,
coverage and a hash) goes into the bundle, so the same calibration can be rerun exactly, and
evaluation can exclude it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rtdetr_edge.data.coco import CocoDataset
from rtdetr_edge.data.sources import ImageSource
from rtdetr_edge.errors import CalibrationError, InputError

log = logging.getLogger("rtdetr_edge")

DEFAULT_CALIB_SIZE = 256  # enough for stable 2048-bin histograms; TensorRT suggests ~500 for ImageNet
SIZE_BUCKETS = (("small", 0.0, 32.0**2), ("medium", 32.0**2, 96.0**2), ("large", 96.0**2, float("inf")))


def _image_buckets(ds: CocoDataset, image_id: int) -> tuple[set[int], set[str]]:
    cats: set[int] = set()
    sizes: set[str] = set()
    for ann in ds.annotations(image_id):
        cats.add(int(ann["category_id"]))
        area = float(ann.get("area") or ann["bbox"][2] * ann["bbox"][3])
        sizes.update(name for name, lo, hi in SIZE_BUCKETS if lo <= area < hi)
    return cats, sizes


@dataclass
class Subset:
    """The chosen images and how well they cover the source."""

    images: list[tuple[int, Path]]
    coverage: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    source: str = ""

    @property
    def ids(self) -> list[int]:
        return [i for i, _ in self.images]

    def manifest(self) -> dict[str, Any]:
        entries = [{"id": i, "file": p.name} for i, p in self.images]
        digest = hashlib.sha256(json.dumps([self.source, self.seed, entries]).encode()).hexdigest()
        return {
            "source": self.source,
            "seed": self.seed,
            "size": len(entries),
            "images": entries,
            "coverage": self.coverage,
            "sha256": digest,
        }


def select_subset(
    source: ImageSource, size: int = DEFAULT_CALIB_SIZE, seed: int = 0, exclude_ids: set[int] | None = None
) -> Subset:
    """Pick ``size`` images deterministically (stratified by category and object size if annotated)."""
    if size < 1:
        raise InputError(f"--calib-size must be >= 1, got {size}")
    rng = np.random.default_rng(seed)
    pool = [(i, p) for i, p in source.images if not exclude_ids or i not in exclude_ids]
    order = [pool[k] for k in rng.permutation(len(pool))]
    if len(order) < size:
        raise CalibrationError(
            f"--calib {source.spec}: only {len(order)} images available, fewer than "
            f"--calib-size {size}; lower --calib-size or add images"
        )
    ds = source.dataset
    if ds is None:
        return Subset(order[:size], {"images_available": len(pool), "stratified": False}, seed, source.spec)

    info = {i: _image_buckets(ds, i) for i, _ in order}
    chosen: list[tuple[int, Path]] = []
    taken: set[int] = set()
    cat_count = {int(c["id"]): 0 for c in ds.categories}
    for i, _ in order:
        for c in info[i][0]:
            cat_count[c] = cat_count.get(c, 0) + 1
    present = [c for c, n in sorted(cat_count.items(), key=lambda kv: kv[1]) if n > 0]
    covered: set[int] = set()
    # 1) every category present at least once, rarest first
    for cat in present:
        if cat in covered or len(chosen) >= size:
            continue
        for i, p in order:
            if i not in taken and cat in info[i][0]:
                chosen.append((i, p))
                taken.add(i)
                covered |= info[i][0]
                break
    # 2) fill, each time from the object-size bucket seen least so far
    size_count = {name: 0 for name, _, _ in SIZE_BUCKETS}
    for i, _ in chosen:
        for s in info[i][1]:
            size_count[s] += 1
    remaining = [(i, p) for i, p in order if i not in taken]
    while len(chosen) < size and remaining:
        want = min(size_count, key=lambda k: size_count[k])
        pick = next((k for k, (i, _) in enumerate(remaining) if want in info[i][1]), 0)
        i, p = remaining.pop(pick)
        chosen.append((i, p))
        for s in info[i][1]:
            size_count[s] += 1
        covered |= info[i][0]
    coverage = {
        "categories_in_source": len(present),
        "categories_covered": len(covered & set(present)),
        "images_with_size": size_count,
        "images_available": len(pool),
        "stratified": True,
    }
    return Subset(chosen, coverage, seed, source.spec)
