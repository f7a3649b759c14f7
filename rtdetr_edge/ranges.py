"""Version-neutral INT8 calibration ranges, as stored in a bundle (``calib/ranges.json``).

One set of per-tensor ``amax`` values (the symmetric range [-amax, amax]) feeds every INT8
writer: the explicit Q/DQ ONNX (what rtdetr-edge's engines are built from) and TensorRT native
caches for any 8.x-10.x version (for DeepStream / trtexec implicit INT8). Tensor names are the fp32 ONNX's value names (TensorRT's parser keeps them).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import atomic
from .errors import CalibrationError

RANGES_FORMAT = "rtdetr-edge-int8-ranges"
RANGES_VERSION = 1


@dataclass
class CalibrationRanges:
    """Calibrated ranges and how they were made.

    Attributes:
        ranges: tensor name -> amax (> 0), network input included.
        algorithm: ``"entropy2"`` (TensorRT's EntropyCalibration2 threshold search),
            ``"percentile"`` (99.999% of |x|) or ``"max"``.
        num_bins: histogram bins per tensor (2048, as TensorRT).
        images: number of calibration images.
        model_sha256: sha256 of the fp32 ONNX the activations came from.
        manifest_sha256: hash of the calibration subset manifest.
        extra: anything else worth keeping (timings, preprocessing).
    """

    ranges: dict[str, float]
    algorithm: str = "entropy2"
    num_bins: int = 2048
    images: int = 0
    model_sha256: str = ""
    manifest_sha256: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"format": RANGES_FORMAT, "version": RANGES_VERSION, **asdict(self)}

    def save(self, path: str | os.PathLike[str]) -> Path:
        return atomic.write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CalibrationRanges:
        p = Path(path)
        try:
            d = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CalibrationError(f"{p}: cannot read calibration ranges ({exc})") from exc
        if d.get("format") != RANGES_FORMAT or d.get("version") != RANGES_VERSION:
            raise CalibrationError(
                f"{p}: not rtdetr-edge INT8 ranges version {RANGES_VERSION} "
                f"(format {d.get('format')!r}, version {d.get('version')!r})"
            )
        ranges = {str(k): float(v) for k, v in d["ranges"].items()}
        bad = [k for k, v in ranges.items() if not v > 0]
        if bad:
            raise CalibrationError(f"{p}: non-positive ranges for {bad[:3]}")
        return cls(
            ranges=ranges,
            algorithm=d.get("algorithm", "entropy2"),
            num_bins=int(d.get("num_bins", 2048)),
            images=int(d.get("images", 0)),
            model_sha256=d.get("model_sha256", ""),
            manifest_sha256=d.get("manifest_sha256", ""),
            extra=d.get("extra", {}),
        )
