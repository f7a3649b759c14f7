"""``rtdetr-detect --out DIR``'s contact sheet: ``DIR/index.html``, a thumbnail per result linking to it.

The page lies next to the annotated files and links to them by relative URL, so the folder can be
moved, copied off a Jetson or opened from a file manager. Thumbnails are small JPEGs under
``DIR/thumbnails/`` (a folder of thousands of results stays a light page; images load lazily).
The page loads nothing from the network: no script, no font, no remote style.
"""

from __future__ import annotations

import datetime
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np

from . import atomic
from .detections import Detections
from .errors import InputError
from .outputs import write_image

INDEX = "index.html"
THUMBNAILS = "thumbnails"
THUMBNAIL_SIZE = 320  # longest side, pixels


@dataclass(frozen=True)
class SheetEntry:
    """One result on the sheet."""

    source: str  # the input file, as given
    href: str  # the annotated file, URL relative to the sheet
    thumbnail: str  # its thumbnail, URL relative to the sheet
    name: str  # the annotated file's name
    kind: str  # "image" or "video"
    detections: int
    labels: str  # "2 person, 1 dog" (most frequent first)
    frames: int = 0  # videos


def check_sheet_paths(out: Path) -> None:
    """Before any work: the sheet's own names in ``out`` are free for it (``index.html`` not a folder,
    ``thumbnails`` not a file)."""
    if (out / INDEX).is_dir():
        raise InputError(f"--out {out}: {INDEX} there is a folder; the contact sheet is written under that name")
    if (out / THUMBNAILS).exists() and not (out / THUMBNAILS).is_dir():
        raise InputError(f"--out {out}: {THUMBNAILS} there is a file; the contact sheet's thumbnails go in that folder")


@dataclass
class ContactSheet:
    """Collects the results of one ``rtdetr-detect`` run and writes ``index.html`` at the end.

    Args:
        out: the results folder (the sheet and ``thumbnails/`` are written there).
        title: what produced the results (the model), shown at the top.
    """

    out: Path
    title: str
    entries: list[SheetEntry] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    label_totals: Counter[str] = field(default_factory=Counter)

    def add(self, source: Path, output_name: str, annotated: np.ndarray, labels: Counter[str], frames: int = 0) -> None:
        """Add one annotated file ``output_name`` (in ``out``) made from ``source``; ``annotated`` is
        the image (for a video, a frame) its thumbnail is made from; ``labels`` counts its detections."""
        # a short name of its own: the output's name (up to the file system's limit) plus a suffix may not fit
        thumb_name = f"{THUMBNAILS}/{hashlib.sha256(output_name.encode()).hexdigest()[:20]}.jpg"
        write_image(self.out / thumb_name, thumbnail(annotated))
        self.label_totals.update(labels)
        self.entries.append(
            SheetEntry(
                source=str(source),
                href=quote(output_name),
                thumbnail=quote(thumb_name),
                name=output_name,
                kind="video" if frames else "image",
                detections=sum(labels.values()),
                labels=label_summary(labels),
                frames=frames,
            )
        )

    def add_image(self, source: Path, output_name: str, annotated: np.ndarray, detections: Detections) -> None:
        self.add(source, output_name, annotated, Counter(d.label for d in detections))

    def write(self) -> Path | None:
        """Write ``index.html`` (atomically); None when there is nothing to show."""
        if not self.entries:
            return None
        from .html_pages import render

        page = SheetPage(
            title=self.title,
            created=datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            entries=self.entries,
            images=sum(e.kind == "image" for e in self.entries),
            videos=sum(e.kind == "video" for e in self.entries),
            detections=sum(self.label_totals.values()),
            labels=label_summary(self.label_totals),
            skipped=self.skipped,
        )
        return atomic.write_text(self.out / INDEX, render("contact_sheet.html.j2", page))


@dataclass(frozen=True)
class SheetPage:
    """What ``templates/contact_sheet.html.j2`` shows."""

    title: str
    created: str
    entries: list[SheetEntry]
    images: int
    videos: int
    detections: int
    labels: str
    skipped: list[str]


def thumbnail(image: np.ndarray, size: int = THUMBNAIL_SIZE) -> np.ndarray:
    """``image`` scaled down (never up) so its longest side is ``size`` pixels."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    if scale >= 1:
        return image
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def label_summary(labels: Counter[str]) -> str:
    """``"2 person, 1 dog"``, most frequent first; ``"nothing detected"`` when empty."""
    return ", ".join(f"{n} {label}" for label, n in labels.most_common()) or "nothing detected"
