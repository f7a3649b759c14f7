"""Images for a check, fed exactly as the runtime feeds them (a Polygraphy data loader).

``--data`` may be a folder of images, a COCO json, ``coco_val``/``coco_train`` (already on
disk; nothing is downloaded) or ``synthetic``. Images the bundle was calibrated on
(``calib/manifest.json``, located through the recorded calibration source) are left out, whichever
way the data names them (the COCO json or its image folder): a check on calibration images
flatters INT8. Without ``--data`` the check uses the bundle's own calibration
source minus its manifest (the build's held-out images) when that source is on this machine,
else generated scenes (:func:`rtdetr_edge.data.synth.render_scene`, fixed seed). The report says
which was used.

:class:`CheckDataLoader` is what Polygraphy calls a data loader: an iterable of feed dicts
``{input_name: float32 [1,3,H,W]}``, made by the runtime's :class:`~rtdetr_edge.preprocess.Preprocessor`.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle import Bundle
from ..contract import ModelContract
from ..data.coco import CocoDataset
from ..data.sources import open_source
from ..errors import InputError, RtdetrEdgeError
from ..images import read_image
from ..preprocess import Preprocessor

log = logging.getLogger("rtdetr_edge")

DEFAULT_NUM_IMAGES = 100  # enough for intervals that do not flip a verdict; inputs held in memory (~5 MB each at 640)
SYNTHETIC = "synthetic"
SYNTHETIC_SEED = 20240607
SYNTHETIC_SIZES = ((640, 480), (1280, 720), (480, 640), (512, 512))  # varied aspect ratios, as in export/verify


@dataclass
class ImageSource:
    """The images a check runs on.

    Attributes:
        kind: ``"folder"``, ``"coco"`` or ``"synthetic"``.
        spec: what was asked for (``--data``, or the bundle's calibration source).
        description: one line for the report.
        paths: image files in order (empty for synthetic scenes).
        num_synthetic: scenes to generate (synthetic only).
        excluded_calibration: calibration images left out.
        missing: files listed by a COCO json but not on disk (skipped).
        dataset: the annotations of a COCO source (its ground truth; None otherwise).
        image_ids: the dataset's image id of each of ``paths`` (COCO sources).
    """

    kind: str
    spec: str
    description: str
    paths: list[Path] = field(default_factory=list)
    num_synthetic: int = 0
    excluded_calibration: int = 0
    missing: int = 0
    dataset: CocoDataset | None = None
    image_ids: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return self.num_synthetic if self.kind == SYNTHETIC else len(self.paths)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "spec": self.spec,
            "description": self.description,
            "images": len(self),
            "excluded_calibration": self.excluded_calibration,
            "missing": self.missing,
        }


def synthetic_source(num_images: int, why: str = "") -> ImageSource:
    text = f"{num_images} generated scenes (rtdetr_edge.data.synth, seed {SYNTHETIC_SEED})"
    return ImageSource(SYNTHETIC, SYNTHETIC, text + (f"; {why}" if why else ""), num_synthetic=num_images)


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def calibration_paths(bundle: Bundle, coco_root: str | os.PathLike[str] | None = None) -> set[Path]:
    """Resolved paths of the images the bundle's INT8 was made with: calibrated on, or that chose its
    ranges and exclusions (empty if unknown or not on this machine)."""
    spec, manifest = bundle.calibration()
    if not spec or not manifest:
        return set()
    # the calibration subset, and the held-out images that chose ranges or exclusions
    entries = list(manifest.get("images", [])) + list(manifest.get("decision_images", []))
    try:
        if Path(spec).is_dir():
            return {_resolved(Path(spec) / str(e["file"])) for e in entries}
        source = open_source(spec, "calibration source", bundle.calib_images_dir, coco_root, allow_download=False)
        ids = {int(e["id"]) for e in entries}
        return {_resolved(path) for image_id, path in source.images if image_id in ids}
    except (RtdetrEdgeError, KeyError, TypeError, ValueError) as exc:
        log.info("check: cannot locate the calibration images of %s (%s)", spec, exc)
        return set()


def _select(paths: list[Path], calib: set[Path], num_images: int) -> tuple[list[Path], int]:
    kept = [p for p in paths if _resolved(p) not in calib] if calib else paths
    return kept[:num_images], len(paths) - len(kept)


def _describe(count: int, what: str, excluded: int) -> str:
    text = f"{count} images from {what}"
    return text + (
        f" not used for calibration ({excluded} calibration and range-choice images left out)" if excluded else ""
    )


def resolve_images(
    data: str | os.PathLike[str] | None,
    bundle: Bundle,
    num_images: int = DEFAULT_NUM_IMAGES,
    images_dir: str | os.PathLike[str] | None = None,
    coco_root: str | os.PathLike[str] | None = None,
) -> ImageSource:
    """Choose the check images (see the module docstring).

    Args:
        data: folder, COCO json, ``coco_val``/``coco_train``, ``synthetic``, or None for the default.
        bundle: the bundle being checked (its calibration source and manifest).
        num_images: at most this many images, in the source's order (default 100).
        images_dir: image folder of a COCO json (default: next to it; for the default data, the
            build's ``--calib-images``).
        coco_root: COCO 2017 root for ``coco_val``/``coco_train``.
    """
    if num_images < 1:
        raise InputError(f"--num-images must be >= 1, got {num_images}")
    calib_spec, _ = bundle.calibration()
    if data is None:
        if calib_spec is None:
            return synthetic_source(num_images, "the bundle records no calibration source")
        calib_images_dir = images_dir or bundle.calib_images_dir
        try:
            source = _resolve(calib_spec, bundle, num_images, calib_images_dir, coco_root)
        except RtdetrEdgeError as exc:
            log.info("check: calibration source %s is not usable here (%s); using generated scenes", calib_spec, exc)
            return synthetic_source(num_images, f"the calibration source {calib_spec} is not on this machine")
        if len(source) == 0:
            return synthetic_source(num_images, f"the calibration source {calib_spec} has no held-out images")
        source.description += " (the bundle's calibration source)"
        return source
    spec = os.fspath(data)
    source = _resolve(spec, bundle, num_images, images_dir, coco_root)
    if len(source) == 0:
        raise InputError(
            f"--data {spec}: no images left to check (all {source.excluded_calibration} are calibration "
            f"images{f', {source.missing} missing' if source.missing else ''})"
        )
    return source


def _resolve(
    spec: str,
    bundle: Bundle,
    num_images: int,
    images_dir: str | os.PathLike[str] | None,
    coco_root: str | os.PathLike[str] | None,
) -> ImageSource:
    if spec == SYNTHETIC:
        return synthetic_source(num_images)
    calib = calibration_paths(bundle, coco_root)
    source = open_source(spec, "--data", images_dir, coco_root, allow_download=False)
    if source.dataset is None:
        chosen, excluded = _select([p for _, p in source.images], calib, num_images)
        return ImageSource(
            "folder", spec, _describe(len(chosen), f"folder {spec}", excluded), chosen, excluded_calibration=excluded
        )
    present = [p for _, p in source.images if p.is_file()]
    chosen, excluded = _select(present, calib, num_images)
    ids = {p: i for i, p in source.images}
    return ImageSource(
        "coco",
        spec,
        _describe(len(chosen), spec, excluded),
        chosen,
        excluded_calibration=excluded,
        missing=len(source.images) - len(present),
        dataset=source.dataset,
        image_ids=[ids[p] for p in chosen],
    )


class CheckDataLoader:
    """Polygraphy data loader: ``{input_name: float32 [1,3,H,W]}`` per image, by our preprocessing.

    Iterating reads and preprocesses the images one at a time; unreadable files are skipped with a
    warning (listed in :attr:`skipped`). :attr:`sizes` and :attr:`names` describe the images fed,
    in order, once iterated; :attr:`fed` the index into the source's paths of each (synthetic:
    the scene number).

    Args:
        source: from :func:`resolve_images`.
        contract: the model contract (preprocessing, input name).
    """

    def __init__(self, source: ImageSource, contract: ModelContract) -> None:
        if contract.min_batch > 1:
            raise InputError(
                f"the graph needs batches of at least {contract.min_batch}; rtdetr-check feeds one image at a time"
            )
        self.source = source
        self.input_name = contract.input_name
        self.preprocessor = Preprocessor(contract.preprocessing)
        self.sizes: list[tuple[int, int]] = []
        self.names: list[str] = []
        self.fed: list[int] = []
        self.index = -1
        self.skipped: list[str] = []

    def __len__(self) -> int:
        return len(self.source)

    def images(self) -> Iterator[tuple[str, np.ndarray]]:
        """(name, BGR uint8 image) for every usable image, in order (:attr:`index`: its index in the source)."""
        if self.source.kind == SYNTHETIC:
            from ..data.synth import render_scene

            rng = np.random.default_rng(SYNTHETIC_SEED)
            for i in range(self.source.num_synthetic):
                w, h = SYNTHETIC_SIZES[i % len(SYNTHETIC_SIZES)]
                self.index = i
                yield f"synthetic-{i:04d}", render_scene(rng, w, h)[0]
            return
        for index, path in enumerate(self.source.paths):
            try:
                image = read_image(path)
            except InputError as exc:
                log.warning("check: skipping %s", exc)
                self.skipped.append(str(exc))
                continue
            self.index = index
            yield path.name, image

    def __iter__(self) -> Iterator[OrderedDict[str, np.ndarray]]:
        self.sizes, self.names, self.fed, self.skipped = [], [], [], []
        for name, image in self.images():
            batch = self.preprocessor.allocate(1)
            self.sizes.append(self.preprocessor.into(image, batch[0]))
            self.names.append(name)
            self.fed.append(self.index)
            yield OrderedDict([(self.input_name, batch)])
