"""COCO 2017 on disk: find it, or fetch what calibration needs from the official COCO site.

Layout (the official one)::

    ROOT/annotations/instances_val2017.json
    ROOT/val2017/000000039769.jpg ...

ROOT is ``--coco-root``, else ``$RTDETR_COCO_ROOT``, else ``~/.cache/rtdetr-edge/coco``
(``$XDG_CACHE_HOME`` respected). When the annotations are missing, the official annotation
archive (242 MB, md5-checked) is downloaded with resume support; images are then fetched one
by one for the calibration subset only (a few hundred files instead of the 778 MB zip), each
written atomically and checked to decode.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .. import atomic
from ..errors import CalibrationError, InputError
from .coco import CocoDataset

log = logging.getLogger("rtdetr_edge")

BASE_URL = "http://images.cocodataset.org"
# (path under BASE_URL, size in bytes, md5) as published by COCO and checked by many projects
ANNOTATIONS_ARCHIVE = ("annotations/annotations_trainval2017.zip", 252907541, "f4bbac642086de4f52a3fdda2de5fa2c")
SPLITS = {"coco_val": "val2017", "coco_train": "train2017"}
_CHUNK = 1 << 20


def default_root() -> Path:
    if os.environ.get("RTDETR_COCO_ROOT"):
        return Path(os.environ["RTDETR_COCO_ROOT"])
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "rtdetr-edge" / "coco"


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, dest: Path, size: int | None = None, md5: str | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` with a progress bar, resuming a previous partial download.

    The data goes to ``dest.partial`` and is renamed into place only when complete (and, when
    ``md5`` is given, verified), so an interrupted download resumes and never looks finished.
    """
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file() and (md5 is None or _md5(dest) == md5):
        return dest
    part = dest.with_name(dest.name + ".partial")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            if have and resp.status != 206:  # server ignored the range: start over
                have = 0
            total = size or (have + int(resp.headers.get("Content-Length") or 0)) or None
            with (
                open(part, "ab" if have else "wb") as fh,
                tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=dest.name, file=sys.stderr) as bar,
            ):
                for chunk in iter(lambda: resp.read(_CHUNK), b""):
                    fh.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise CalibrationError(f"cannot download {url} ({exc}); partial data kept in {part} for resuming") from exc
    if md5 is not None:
        got = _md5(part)
        if got != md5:
            part.unlink()
            raise CalibrationError(f"{url}: md5 {got} does not match the published {md5}; deleted, try again")
    os.replace(part, dest)
    return dest


def ensure_annotations(split: str, root: Path, allow_download: bool = True) -> Path:
    """``ROOT/annotations/instances_<split>.json``, downloading the official archive if needed."""
    ann = root / "annotations" / f"instances_{split}.json"
    if ann.is_file():
        return ann
    if not allow_download:
        raise CalibrationError(f"COCO annotations not found at {ann}; pass --coco-root or allow the download")
    rel, size, md5 = ANNOTATIONS_ARCHIVE
    log.info("COCO annotations not found under %s; downloading %s (%.0f MB)", root, rel, size / 1e6)
    archive = download(f"{BASE_URL}/{rel}", root / "downloads" / Path(rel).name, size, md5)
    member = f"annotations/instances_{split}.json"
    try:
        with (
            zipfile.ZipFile(archive) as zf,
            atomic.replacing_file(ann) as tmp,
            zf.open(member) as src,
            open(tmp, "wb") as dst,
        ):
            for chunk in iter(lambda: src.read(_CHUNK), b""):
                dst.write(chunk)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise CalibrationError(f"{archive}: cannot extract {member} ({exc})") from exc
    return ann


def ensure_images(dataset: CocoDataset, image_ids: Iterable[int], split: str, allow_download: bool = True) -> list[int]:
    """Make sure the given images exist locally, fetching missing ones; returns the ids that failed."""
    import cv2

    failed = []
    for image_id in image_ids:
        im = dataset.image(image_id)
        if im.path.is_file():
            continue
        if not allow_download:
            failed.append(image_id)
            continue
        url = f"{BASE_URL}/{split}/{im.file_name}"
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                data = resp.read()
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            log.warning("cannot fetch %s: %s", url, exc)
            failed.append(image_id)
            continue
        if cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is None:
            log.warning("%s: downloaded data is not an image", url)
            failed.append(image_id)
            continue
        atomic.write_bytes(im.path, data)
    return failed


def open_split(
    name: str, root: str | os.PathLike[str] | None = None, allow_download: bool = True
) -> tuple[CocoDataset, str]:
    """The COCO 2017 split behind ``coco_val``/``coco_train`` as a dataset (images may be fetched later)."""
    if name not in SPLITS:
        raise InputError(f"--calib {name!r}: expected one of {', '.join(SPLITS)}, a folder or a COCO json")
    split = SPLITS[name]
    base = Path(root) if root else default_root()
    ann = ensure_annotations(split, base, allow_download)
    return CocoDataset(ann, base / split), split
