"""Reading COCO-format detection sets (``annotations.json`` + an image folder).

Used by evaluation, calibration and training alike, so they all see the same images and the same
label mapping. Category ids in COCO are arbitrary integers (1..90 with gaps for COCO itself);
the model's labels are indices into its ``class_names``; :func:`label_to_category` maps one to
the other by name.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class CocoImage:
    id: int
    file_name: str
    width: int
    height: int
    path: Path


class CocoDataset:
    """A COCO-format annotation file and the folder its ``file_name``s are relative to.

    Args:
        annotations: path of the COCO json.
        images_dir: folder holding the images; default ``<json dir>/images`` if it exists,
            else the json's own folder.
    """

    def __init__(self, annotations: str | os.PathLike[str], images_dir: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(annotations)
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such COCO annotation file")
        try:
            data = json.loads(self.path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{self.path}: not a readable JSON file ({exc})") from exc
        if not isinstance(data, dict):
            raise InputError(f"{self.path}: expected a COCO JSON object with 'images', got {type(data).__name__}")
        for key in ("images", "categories"):
            if not isinstance(data.get(key), list):
                raise InputError(f"{self.path}: not a COCO detection file (missing list '{key}')")
        if images_dir is None:
            images_dir = self.path.parent / "images" if (self.path.parent / "images").is_dir() else self.path.parent
        self.images_dir = Path(images_dir)
        self.raw: dict[str, Any] = data
        self.categories: list[dict[str, Any]] = sorted(data["categories"], key=lambda c: c["id"])
        try:
            self.images = [
                CocoImage(
                    int(im["id"]),
                    str(im["file_name"]),
                    int(im.get("width", 0)),
                    int(im.get("height", 0)),
                    self.images_dir / str(im["file_name"]),
                )
                for im in data["images"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{self.path}: malformed 'images' entry ({exc!r})") from exc
        self._anns: dict[int, list[dict[str, Any]]] = defaultdict(list)
        annotations = data.get("annotations", [])
        if not isinstance(annotations, list):
            raise InputError(f"{self.path}: 'annotations' must be a list, got {type(annotations).__name__}")
        for index, ann in enumerate(annotations):
            self._anns[self._checked_annotation(index, ann)].append(ann)
        self._by_id = {im.id: im for im in self.images}

    def _checked_annotation(self, index: int, ann: object) -> int:
        """The image id of annotation ``index``; InputError naming the file unless it is well formed."""
        where = f"{self.path}: annotations[{index}]"
        if not isinstance(ann, dict):
            raise InputError(f"{where}: expected a JSON object, got {type(ann).__name__}")
        if "id" in ann:
            where += f" (id {ann['id']!r})"
        for key in ("image_id", "category_id"):
            value = ann.get(key)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InputError(f"{where}: {key} must be an integer, got {value!r}")
        bbox = ann.get("bbox")
        if (
            not isinstance(bbox, list)
            or len(bbox) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)
        ):
            raise InputError(f"{where}: bbox must be 4 finite numbers [x, y, width, height], got {bbox!r}")
        if bbox[2] < 0 or bbox[3] < 0:
            raise InputError(f"{where}: bbox width and height must be >= 0, got {bbox!r}")
        return int(ann["image_id"])

    def __len__(self) -> int:
        return len(self.images)

    @property
    def category_names(self) -> list[str]:
        return [str(c["name"]) for c in self.categories]

    def image(self, image_id: int) -> CocoImage:
        return self._by_id[image_id]

    def annotations(self, image_id: int, include_crowd: bool = False) -> list[dict[str, Any]]:
        return [a for a in self._anns.get(image_id, []) if include_crowd or not a.get("iscrowd", 0)]

    def targets(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Non-crowd boxes as float32 ``[M,4]`` xywh pixels and their category ids ``[M]``."""
        anns = self.annotations(image_id)
        boxes = np.array([a["bbox"] for a in anns], np.float32).reshape(-1, 4)
        cats = np.array([a["category_id"] for a in anns], np.int64)
        return boxes, cats

    def subset(self, image_ids: list[int]) -> dict[str, Any]:
        """A COCO dict restricted to ``image_ids`` (for writing held-out or calibration splits)."""
        keep = set(image_ids)
        return {
            "info": self.raw.get("info", {}),
            "images": [im for im in self.raw["images"] if int(im["id"]) in keep],
            "annotations": [a for a in self.raw.get("annotations", []) if int(a["image_id"]) in keep],
            "categories": self.raw["categories"],
        }


def label_to_category(class_names: list[str] | tuple[str, ...], dataset: CocoDataset) -> dict[int, int]:
    """Map model label index -> dataset category id, by class name (case-insensitive).

    Raises InputError when none of the dataset's categories is known to the model.
    """
    by_name = {str(c["name"]).strip().lower(): int(c["id"]) for c in dataset.categories}
    mapping = {i: by_name[n.strip().lower()] for i, n in enumerate(class_names) if n.strip().lower() in by_name}
    if not mapping:
        raise InputError(
            f"{dataset.path}: none of its categories ({', '.join(dataset.category_names[:8])}...) "
            f"match the model's class names ({', '.join(list(class_names)[:8])}...)"
        )
    return mapping
