"""Calibration batches: the runtime's own preprocessing, streamed, cached on disk.

Batches are ``{input_name: float32 [B,3,H,W]}`` dicts (any iterable of those feeds the ONNX Runtime
collector and the TensorRT calibrator alike). They are made by exactly the
:class:`~rtdetr_edge.preprocess.Preprocessor` the Detector uses, so calibration sees what
deployment sees. Preprocessed batches are cached under a key of (model contract, subset
manifest, batch size): a second calibration of the same model on the same subset reads them
back instead of decoding and resizing again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from rtdetr_edge import atomic
from rtdetr_edge.contract import ModelContract
from rtdetr_edge.errors import RtdetrEdgeError
from rtdetr_edge.images import read_image
from rtdetr_edge.preprocess import Preprocessor

log = logging.getLogger("rtdetr_edge")

_DONE = "complete.json"


def default_cache_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "rtdetr-edge" / "calib-batches"


def cache_key(contract: ModelContract, manifest_sha256: str, batch_size: int) -> str:
    pre = json.dumps(contract.to_dict()["preprocessing"], sort_keys=True)
    return hashlib.sha256(f"{pre}|{contract.input_name}|{manifest_sha256}|{batch_size}".encode()).hexdigest()[:24]


class CalibrationBatches:
    """Iterable of preprocessed batches for a list of image files.

    Args:
        images: image files, in order.
        contract: the model contract (preprocessing and input name).
        batch_size: images per batch (default 8; the last batch may be smaller).
        cache_dir: where preprocessed batches are kept (None disables the cache).
        manifest_sha256: identifies the subset in the cache key.
    """

    def __init__(
        self,
        images: list[Path],
        contract: ModelContract,
        batch_size: int = 8,
        cache_dir: str | os.PathLike[str] | None = None,
        manifest_sha256: str = "",
    ) -> None:
        self.images = list(images)
        self.contract = contract
        self.batch_size = max(1, int(batch_size))
        self.preprocessor = Preprocessor(contract.preprocessing)
        self.skipped: list[str] = []
        self.used = 0
        key = cache_key(
            contract,
            manifest_sha256 or hashlib.sha256("\n".join(map(str, self.images)).encode()).hexdigest(),
            self.batch_size,
        )
        self.cache = Path(cache_dir) / key if cache_dir is not None else None

    def __len__(self) -> int:
        return (len(self.images) + self.batch_size - 1) // self.batch_size

    @property
    def cached(self) -> bool:
        return self.cache is not None and (self.cache / _DONE).is_file()

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        name = self.contract.input_name
        if self.cached:
            assert self.cache is not None
            done = json.loads((self.cache / _DONE).read_text())
            self.skipped, self.used = list(done["skipped"]), int(done["used"])
            for k in range(int(done["batches"])):
                yield {name: np.load(self.cache / f"batch_{k:05d}.npy")}
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

    def _save(self, batch: np.ndarray, index: int) -> None:
        assert self.cache is not None
        try:
            self.cache.mkdir(parents=True, exist_ok=True)
            with atomic.replacing_file(self.cache / f"batch_{index:05d}.npy", suffix=".npy") as tmp:
                np.save(tmp, batch)
        except OSError as exc:  # a full or read-only cache must not stop calibration
            log.warning("calibration cache disabled (%s)", exc)
            self.cache = None
