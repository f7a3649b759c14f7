"""Calibration batches: the runtime's own preprocessing, streamed, cached on disk.

Batches are ``{input_name: float32 [B,3,H,W]}`` dicts (any iterable of those feeds the ONNX Runtime
collector and the TensorRT calibrator alike). They are made by exactly the
:class:`~rtdetr_edge.preprocess.Preprocessor` the Detector uses, so calibration sees what
deployment sees. Preprocessed batches are cached under a key of (model contract, subset
manifest, batch size, and each image's resolved absolute path, size and modification time): a
second calibration of the same model on the same files reads them back instead of decoding and
resizing again, while other data at the same relative path (or a file changed in place) never
shares an entry. A cache entry that cannot be read back (truncated batch, broken marker) is
discarded with a warning naming its file, and the batches are made again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from rtdetr_edge import atomic
from rtdetr_edge.contract import ModelContract
from rtdetr_edge.errors import CalibrationError, RtdetrEdgeError
from rtdetr_edge.images import read_image
from rtdetr_edge.preprocess import Preprocessor

log = logging.getLogger("rtdetr_edge")

_DONE = "complete.json"


def default_cache_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "rtdetr-edge" / "calib-batches"


DEFAULT_CACHE_MAX_BYTES = 1 << 30  # a few builds' subsets (256 images at 640x640: ~315 MB each)


def _entry_bytes(entry: Path) -> int:
    return sum(f.stat().st_size for f in entry.iterdir() if f.is_file())


def prune_cache(cache_dir: str | os.PathLike[str], max_bytes: int, keep: Path | None = None) -> list[Path]:
    """Remove the least recently used entries of ``cache_dir`` (never ``keep``) until it holds at
    most ``max_bytes``; returns the removed entries. Errors (a read-only cache) only log."""
    root = Path(cache_dir)
    try:
        entries = []
        for entry in root.iterdir():
            if entry.is_dir():
                done = entry / _DONE
                used = done.stat().st_mtime if done.is_file() else entry.stat().st_mtime
                entries.append((used, entry, _entry_bytes(entry)))
    except OSError as exc:
        log.warning("calibration cache: cannot read %s to keep it under its size limit (%s)", root, exc)
        return []
    total = sum(size for _, _, size in entries)
    removed: list[Path] = []
    freed = 0
    for _, entry, size in sorted(entries, key=lambda e: e[0]):
        if total - freed <= max_bytes:
            break
        if keep is not None and entry.resolve() == keep.resolve():
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
        freed += size
    if removed:
        log.info(
            "calibration cache: removed %d least recently used entries (%.0f MB) to stay under %.0f MB (%s)",
            len(removed),
            freed / 2**20,
            max_bytes / 2**20,
            root,
        )
    return removed


def cache_key(contract: ModelContract, manifest_sha256: str, batch_size: int, files_sha256: str = "") -> str:
    pre = json.dumps(contract.to_dict()["preprocessing"], sort_keys=True)
    text = f"{pre}|{contract.input_name}|{manifest_sha256}|{batch_size}|{files_sha256}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def files_fingerprint(images: list[Path]) -> str:
    """sha256 over each file's resolved absolute path, size and mtime (a missing file as missing)."""
    h = hashlib.sha256()
    for path in images:
        resolved = Path(path).resolve()
        try:
            st = resolved.stat()
            h.update(f"{resolved}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{resolved}|missing\n".encode())
    return h.hexdigest()


def _check_npy(path: Path, batch_shape: tuple[int, ...]) -> None:
    """ValueError unless ``path`` is a complete float32 ``.npy`` of ``[<=B, *batch_shape]``."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(fh)
        offset = fh.tell()
    if dtype != np.float32 or fortran or len(shape) != 1 + len(batch_shape) or tuple(shape[1:]) != batch_shape:
        raise ValueError(f"holds {dtype} {shape}, expected float32 [B, {', '.join(map(str, batch_shape))}]")
    expected = offset + int(np.prod(shape)) * 4
    size = path.stat().st_size
    if size != expected:
        raise ValueError(f"truncated: {size} bytes, expected {expected}")


class CalibrationBatches:
    """Iterable of preprocessed batches for a list of image files.

    Args:
        images: image files, in order.
        contract: the model contract (preprocessing and input name).
        batch_size: images per batch (default 8; the last batch may be smaller).
        cache_dir: where preprocessed batches are kept (None disables the cache).
        manifest_sha256: identifies the subset in the cache key.
        cache_max_bytes: the cache folder's size limit: once an entry is complete, the least
            recently used other entries are removed until the folder fits (default 1 GiB).
    """

    def __init__(
        self,
        images: list[Path],
        contract: ModelContract,
        batch_size: int = 8,
        cache_dir: str | os.PathLike[str] | None = None,
        manifest_sha256: str = "",
        cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES,
    ) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.cache_max_bytes = int(cache_max_bytes)
        self.images = list(images)
        self.contract = contract
        self.batch_size = max(1, int(batch_size))
        self.preprocessor = Preprocessor(contract.preprocessing)
        self.skipped: list[str] = []
        self.used = 0
        self.cache: Path | None = None
        if cache_dir is not None:
            key = cache_key(contract, manifest_sha256, self.batch_size, files_fingerprint(self.images))
            self.cache = Path(cache_dir) / key

    def __len__(self) -> int:
        return (len(self.images) + self.batch_size - 1) // self.batch_size

    @property
    def cached(self) -> bool:
        return self.cache is not None and (self.cache / _DONE).is_file()

    def _cached_entry(self) -> tuple[int, int, list[str]] | None:
        """The cache entry's marker once every batch file checks out; a broken entry is discarded."""
        if not self.cached:
            return None
        assert self.cache is not None
        pre = self.contract.preprocessing
        current = self.cache / _DONE
        try:
            done = json.loads(current.read_text())
            if not isinstance(done, dict):
                raise ValueError("not a JSON object")
            batches, used, skipped = int(done["batches"]), int(done["used"]), [str(s) for s in done["skipped"]]
            for k in range(batches):
                current = self.cache / f"batch_{k:05d}.npy"
                _check_npy(current, (3, pre.height, pre.width))
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, EOFError) as exc:
            log.warning(
                "calibration cache: %s is unreadable (%s); discarding the cached batches and preprocessing again",
                current,
                getattr(exc, "strerror", None) or exc,
            )
            self._discard()
            return None
        return batches, used, skipped

    def _discard(self) -> None:
        assert self.cache is not None
        (self.cache / _DONE).unlink(missing_ok=True)  # first: the entry no longer claims to be complete
        for f in self.cache.glob("batch_*.npy"):
            f.unlink(missing_ok=True)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        name = self.contract.input_name
        try:
            entry = self._cached_entry()
        except OSError as exc:  # could not even discard it: work without the cache
            log.warning("calibration cache disabled (%s)", exc)
            self.cache, entry = None, None
        if entry is not None:
            assert self.cache is not None
            with contextlib.suppress(OSError):
                # recently used: pruned last (the clock's own nanoseconds: file times are coarser)
                now = time.time_ns()
                os.utime(self.cache / _DONE, ns=(now, now))
            count, self.used, self.skipped = entry
            for k in range(count):
                path = self.cache / f"batch_{k:05d}.npy"
                try:
                    batch = np.load(path)
                except (OSError, ValueError, EOFError) as exc:
                    raise CalibrationError(
                        f"calibration cache: {path} became unreadable while reading it ({exc}); run again"
                    ) from exc
                yield {name: batch}
            return
        self.skipped, self.used = [], 0
        written = 0
        for start in range(0, len(self.images), self.batch_size):
            frames = []
            for path in self.images[start : start + self.batch_size]:
                try:
                    frames.append(read_image(path))
                except RtdetrEdgeError as exc:
                    log.warning("calibration: skipped %s", exc)
                    self.skipped.append(str(exc))
            if not frames:
                continue
            batch, _ = self.preprocessor.batch(frames)
            self.used += len(frames)
            if self.cache is not None:
                self._save(batch, written)
            written += 1
            yield {name: batch}
        if self.cache is not None and written:
            atomic.write_json(self.cache / _DONE, {"batches": written, "used": self.used, "skipped": self.skipped})
            if self.cache_dir is not None:
                prune_cache(self.cache_dir, self.cache_max_bytes, keep=self.cache)

    def _save(self, batch: np.ndarray, index: int) -> None:
        assert self.cache is not None
        try:
            self.cache.mkdir(parents=True, exist_ok=True)
            with atomic.replacing_file(self.cache / f"batch_{index:05d}.npy", suffix=".npy") as tmp:
                np.save(tmp, batch)
        except OSError as exc:  # a full or read-only cache must not stop calibration
            log.warning("calibration cache disabled (%s)", exc)
            self.cache = None
