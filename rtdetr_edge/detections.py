"""``Detections``: the detections of one image as numpy arrays.

A small, validated dataclass: ``xyxy`` boxes in pixels, ``scores``, ``class_ids`` and the model's
``class_names`` table. Supports boolean-mask / index / slice selection (``dets[dets.scores > .5]``),
``len``, iteration, JSON and COCO-results export, drawing with OpenCV, and conversion to
``supervision.Detections`` without this module importing supervision.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import cv2
import numpy as np

from .errors import InputError

__all__ = ["Detection", "Detections"]


class Detection(NamedTuple):
    """One detection, as yielded by iterating over :class:`Detections`."""

    xyxy: tuple[float, float, float, float]
    score: float
    class_id: int
    label: str


def _finite(value: float, digits: int) -> float | None:
    return round(value, digits) if np.isfinite(value) else None


@dataclass(eq=False)
class Detections:
    """Detections of one image.

    Attributes:
        xyxy: float32 ``[M,4]`` boxes (x0, y0, x1, y1) in pixels of the original image.
        scores: float32 ``[M]`` confidences in [0, 1], sorted high to low by the Detector.
        class_ids: int32 ``[M]`` indices into ``class_names``.
        class_names: the model's label names (shared by all detections of a model).
        image_size: (width, height) of the image the boxes refer to, if known.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    class_names: tuple[str, ...] = field(default=())
    image_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        self.xyxy = (
            np.asarray(self.xyxy, np.float32).reshape(-1, 4)
            if np.size(self.xyxy) == 0
            else np.asarray(self.xyxy, np.float32)
        )
        self.scores = np.asarray(self.scores, np.float32)
        self.class_ids = np.asarray(self.class_ids, np.int32)
        self.class_names = tuple(self.class_names)
        if self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            raise InputError(f"Detections.xyxy: expected shape (M, 4), got {self.xyxy.shape}")
        m = self.xyxy.shape[0]
        if self.scores.shape != (m,):
            raise InputError(f"Detections.scores: expected shape ({m},), got {self.scores.shape}")
        if self.class_ids.shape != (m,):
            raise InputError(f"Detections.class_ids: expected shape ({m},), got {self.class_ids.shape}")
        if self.class_names and m and (self.class_ids.min() < 0 or self.class_ids.max() >= len(self.class_names)):
            raise InputError(
                f"Detections.class_ids: expected values in [0, {len(self.class_names)}), "
                f"got {self.class_ids.min()}..{self.class_ids.max()}"
            )

    @classmethod
    def empty(cls, class_names: tuple[str, ...] = (), image_size: tuple[int, int] | None = None) -> Detections:
        return cls(
            np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32), class_names, image_size
        )

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def __eq__(self, other: object) -> bool:
        """Same boxes, scores and class ids (exactly, in order), class names and image size."""
        if not isinstance(other, Detections):
            return NotImplemented
        return (
            self.class_names == other.class_names
            and self.image_size == other.image_size
            and np.array_equal(self.xyxy, other.xyxy)
            and np.array_equal(self.scores, other.scores)
            and np.array_equal(self.class_ids, other.class_ids)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable arrays: not hashable, as a dataclass with eq

    def __iter__(self) -> Iterator[Detection]:
        names = self.labels
        for i in range(len(self)):
            box = tuple(float(v) for v in self.xyxy[i])
            yield Detection(box, float(self.scores[i]), int(self.class_ids[i]), names[i])  # type: ignore[arg-type]

    def __getitem__(self, index: Any) -> Detections:
        """Select by boolean mask, integer array, slice or int (always returns Detections)."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        if isinstance(index, np.ndarray) and index.dtype == bool and index.shape != (len(self),):
            raise InputError(f"Detections: boolean mask of shape {index.shape} for {len(self)} detections")
        return Detections(
            self.xyxy[index], self.scores[index], self.class_ids[index], self.class_names, self.image_size
        )

    def __repr__(self) -> str:
        items = ", ".join(f"{d.label} {d.score:.2f} [{', '.join(f'{v:.1f}' for v in d.xyxy)}]" for d in list(self)[:10])
        more = f", ... {len(self) - 10} more" if len(self) > 10 else ""
        return f"Detections({len(self)}: {items}{more})"

    @property
    def labels(self) -> list[str]:
        """Class name of each detection (the id as text if the model has no names)."""
        n = len(self.class_names)
        return [self.class_names[c] if c < n else str(c) for c in self.class_ids.tolist()]

    # supervision-style aliases, so code written for ``sv.Detections`` can read these directly
    @property
    def confidence(self) -> np.ndarray:
        return self.scores

    @property
    def class_id(self) -> np.ndarray:
        return self.class_ids

    @property
    def area(self) -> np.ndarray:
        return (self.xyxy[:, 2] - self.xyxy[:, 0]) * (self.xyxy[:, 3] - self.xyxy[:, 1])

    def to_list(self) -> list[dict[str, Any]]:
        """One dict per detection; a non-finite score or coordinate (NaN, inf) is None (JSON null)."""
        return [
            {
                "label": d.label,
                "class_id": d.class_id,
                "score": _finite(d.score, 5),
                "xyxy": [_finite(v, 2) for v in d.xyxy],
            }
            for d in self
        ]

    def to_json(self) -> str:
        """Strict JSON: never ``NaN``/``Infinity`` (non-finite values are ``null``, see :meth:`to_list`)."""
        return json.dumps(
            {"image_size": list(self.image_size) if self.image_size else None, "detections": self.to_list()},
            allow_nan=False,
        )

    def to_coco(
        self,
        image_id: int,
        category_ids: Mapping[int, int] | Sequence[int] | None = None,
        unmapped: Literal["raise", "skip"] = "raise",
    ) -> list[dict[str, Any]]:
        """COCO results entries (``bbox`` xywh); ``category_ids`` maps class id -> COCO category id
        (a dict, or a list whose item ``i`` is class ``i``'s category id).

        A detection whose class has no entry in ``category_ids`` raises InputError naming the
        classes (``unmapped="raise"``, default) or is left out (``unmapped="skip"``). Detections
        with a non-finite score or box are left out (COCO results must be numbers).
        """
        if unmapped not in ("raise", "skip"):
            raise InputError(f"to_coco: unmapped: expected 'raise' or 'skip', got {unmapped!r}")
        if isinstance(image_id, (bool, np.bool_)) or not isinstance(image_id, (int, np.integer)):
            raise InputError(f"to_coco: image_id: expected an integer, got {image_id!r}")
        if category_ids is not None and not isinstance(category_ids, Mapping):
            if isinstance(category_ids, (str, bytes)) or not isinstance(category_ids, (Sequence, np.ndarray)):
                raise InputError(
                    f"to_coco: category_ids: expected a dict class id -> category id or a list of category "
                    f"ids in class order, got {type(category_ids).__name__}"
                )
            category_ids = dict(enumerate(category_ids))
        if category_ids is not None:
            bad = [v for v in category_ids.values() if isinstance(v, bool) or not isinstance(v, (int, np.integer))]
            if bad:
                raise InputError(f"to_coco: category_ids: expected integer category ids, got {bad[0]!r}")
        if category_ids is not None and unmapped == "raise":
            missing = sorted({c for c in self.class_ids.tolist() if c not in category_ids})
            if missing:
                n = len(self.class_names)
                names = ", ".join(f"{c} ({self.class_names[c]!r})" if c < n else str(c) for c in missing)
                raise InputError(
                    f"to_coco: class ids {names} have no entry in category_ids; map every class, "
                    'filter the detections first, or pass unmapped="skip"'
                )
        out = []
        for d in self:
            cat = d.class_id if category_ids is None else category_ids.get(d.class_id)
            if cat is None or not all(np.isfinite([d.score, *d.xyxy])):
                continue
            x0, y0, x1, y1 = d.xyxy
            out.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(cat),
                    "score": d.score,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                }
            )
        return out

    def supervision_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``supervision.Detections(**kwargs)``."""
        return {
            "xyxy": self.xyxy.copy(),
            "confidence": self.scores.copy(),
            "class_id": self.class_ids.astype(int),
            "data": {"class_name": np.array(self.labels)},
        }

    def to_supervision(self, sv: Any = None) -> Any:
        """A ``supervision.Detections``; pass the imported module as ``sv`` or it is imported here."""
        if sv is None:
            from ._optional import require

            sv = require("supervision", "converting to supervision.Detections")
        return sv.Detections(**self.supervision_kwargs())

    def draw(self, image: np.ndarray, thickness: int = 2, font_scale: float = 0.5, copy: bool = True) -> np.ndarray:
        """Draw boxes, labels and scores on a BGR uint8 image (a copy unless ``copy=False``).

        The best detection is drawn last, so where boxes overlap its label is the one on top.
        """
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            got = (
                f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            )
            raise InputError(f"Detections.draw: expected an HxWx3 BGR uint8 image, got {got}")
        canvas = image.copy() if copy else image
        items = list(self)
        for i in np.argsort(-self.scores, kind="stable")[::-1]:  # worst first, best last (on top)
            d = items[int(i)]
            if not all(np.isfinite(d.xyxy)):
                continue  # a NaN/inf box has nowhere to be drawn
            colour = _colour(d.class_id)
            h, w = canvas.shape[:2]
            # far-outside coordinates would overflow OpenCV's int: a pixel outside the edge is enough
            x0, x1 = (int(np.clip(round(v), -1, w)) for v in (d.xyxy[0], d.xyxy[2]))
            y0, y1 = (int(np.clip(round(v), -1, h)) for v in (d.xyxy[1], d.xyxy[3]))
            cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, thickness, cv2.LINE_AA)
            text = f"{d.label} {d.score:.2f}"
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
            ty = max(y0, th + base)
            cv2.rectangle(canvas, (x0, ty - th - base), (x0 + tw, ty), colour, -1)
            cv2.putText(
                canvas, text, (x0, ty - base), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1, cv2.LINE_AA
            )
        return canvas


def _colour(class_id: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class (golden-ratio hue walk)."""
    hue = int((class_id * 0.618033988749895 % 1.0) * 179)
    hsv = np.array([[[hue, 200, 220]]], np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)
