"""Named image sources: ``coco_val``/``coco_train``, a COCO-format json, or a folder of images.

One parser for the syntax every host tool accepts (``rtdetr-build --calib``, ``rtdetr-check
--data``), so a source means the same images wherever it is named.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, RtdetrEdgeError
from ..images import IMAGE_SUFFIXES, list_images
from .coco import CocoDataset
from .coco_splits import SPLITS, open_split


@dataclass
class ImageSource:
    """Images named by a source spec.

    Attributes:
        spec: the spec as given.
        images: (image id, path); folders number their sorted files from 1.
        dataset: the annotations (None for a plain folder).
        coco_split: ``coco_val``/``coco_train`` when the source is a COCO 2017 split (its images
            may still need fetching).
    """

    spec: str
    images: list[tuple[int, Path]]
    dataset: CocoDataset | None = None
    coco_split: str | None = None

    def __len__(self) -> int:
        return len(self.images)


def open_source(
    spec: str,
    flag: str,
    images_dir: str | os.PathLike[str] | None = None,
    coco_root: str | os.PathLike[str] | None = None,
    allow_download: bool = True,
) -> ImageSource:
    """Resolve ``spec`` (given on the command line as ``flag``) into its images.

    Args:
        spec: ``coco_val``, ``coco_train``, a COCO ``.json`` file, or a folder of images.
        flag: the argument's name for error messages (``--calib``, ``--data``).
        images_dir: image folder of a COCO json (default: next to it).
        coco_root: COCO 2017 root for the splits.
        allow_download: fetch a split's missing annotation file.

    Raises:
        InputError: naming ``flag`` and what was expected.
    """
    if spec in SPLITS:
        try:
            ds, split = open_split(spec, coco_root, allow_download)
        except RtdetrEdgeError as exc:
            raise InputError(f"{flag} {spec}: {exc}") from exc
        return ImageSource(spec, [(im.id, im.path) for im in ds.images], ds, split)
    path = Path(spec)
    if path.is_dir():
        try:
            files = list_images(path)
        except InputError:
            found = sorted(p.name for p in path.glob("*.json"))
            hint = f"; it holds {found[0]}: pass {path / found[0]} (a COCO json) instead" if found else ""
            raise InputError(
                f"{flag} {spec}: the folder has no images ({', '.join(IMAGE_SUFFIXES)}) directly inside{hint}"
            ) from None
        return ImageSource(spec, list(enumerate(files, start=1)))
    if path.is_file() and path.suffix.lower() == ".json":
        ds = CocoDataset(path, images_dir)
        return ImageSource(spec, [(im.id, im.path) for im in ds.images], ds)
    raise InputError(f"{flag} {spec}: not an existing folder of images, a COCO .json file, or {'/'.join(SPLITS)}")
