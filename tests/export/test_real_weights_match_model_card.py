"""The seed example with the real weights (needs internet; skipped offline).

``rtdetr-build --model PekingU/rtdetr_r18vd`` then the Detector on COCO image 000000039769.jpg must
give the model card's detections at threshold 0.3 (scores within 0.02, boxes within 3 px).
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import run_cli

COCO_IMAGE = "http://images.cocodataset.org/val2017/000000039769.jpg"
EXPECTED = [  # label, score, xyxy (transformers model card for PekingU/rtdetr_r18vd)
    ("sofa", 0.97, [0.14, 0.38, 640.13, 476.21]),
    ("cat", 0.96, [343.38, 24.28, 640.14, 371.5]),
    ("cat", 0.96, [13.23, 54.18, 318.98, 472.22]),
    ("remote", 0.95, [40.11, 73.44, 175.96, 118.48]),
    ("remote", 0.92, [333.73, 76.58, 369.97, 186.99]),
]


@pytest.mark.network
@pytest.mark.slow
def test_pekingu_r18vd_model_card_detections(tmp_path: Path) -> None:
    from rtdetr_edge import Detector

    out = tmp_path / "r18"
    proc = run_cli(
        "rtdetr-build", "--model", "PekingU/rtdetr_r18vd", "--precision", "fp32", "--out", str(out), timeout=1800
    )
    assert proc.returncode == 0, proc.stderr
    image = tmp_path / "000000039769.jpg"
    image.write_bytes(urllib.request.urlopen(COCO_IMAGE, timeout=60).read())
    dets = Detector(out, conf=0.3)(str(image))
    assert len(dets) == len(EXPECTED), dets
    unmatched = list(dets)
    for label, score, box in EXPECTED:
        cands = [d for d in unmatched if d.label == label and np.abs(np.array(d.xyxy) - box).max() <= 3.0]
        assert cands, f"no {label} near {box} in {dets}"
        best = min(cands, key=lambda d: np.abs(np.array(d.xyxy) - box).max())
        assert abs(best.score - score) <= 0.02
        unmatched.remove(best)
