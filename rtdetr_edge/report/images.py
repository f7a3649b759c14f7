"""The images where a candidate and the reference disagree most, drawn side by side (OpenCV -> JPEG data URIs).

Each checked image is scored by what a user would see differently at the check's ``conf``
(:func:`rtdetr_edge.check.detections.match_at_conf`, the matching the verdict counts with): missed
+ extra + label flips first, then 1 - mean IoU of the matched boxes. The worst few are drawn:
the reference's detections on the left, the candidate's on the right, each box coloured by what
happened to it (:data:`COLOURS`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import cv2
import numpy as np

from ..check.detections import ConfMatches, match_at_conf
from ..check.pairs import ImagePairs
from ..detections import Detections

# BGR; the page's legend shows the same colours (as CSS hex)
COLOURS: dict[str, tuple[int, int, int]] = {
    "matched": (80, 175, 76),  # green
    "missed": (54, 67, 244),  # red: the reference has it, the candidate does not
    "extra": (0, 152, 255),  # orange: the candidate has it, the reference does not
    "flipped": (176, 39, 156),  # purple: same box, another label
}
MAX_SIDE = 480  # pixels of the longer side of each drawn image
JPEG_QUALITY = 80


@dataclass(frozen=True)
class Disagreement:
    """One image's disagreement between reference and candidate at ``conf``."""

    index: int
    name: str
    matches: ConfMatches
    mean_iou: float | None

    @property
    def count(self) -> int:
        """Missed + extra + label flips."""
        return len(self.matches.missed) + len(self.matches.extra) + len(self.matches.flips)

    @property
    def score(self) -> tuple[int, float]:
        """Sort key, larger is worse: (missed + extra + flips, 1 - mean IoU of matched boxes)."""
        return self.count, 0.0 if self.mean_iou is None else 1.0 - self.mean_iou

    def words(self) -> str:
        m = self.matches
        iou = "" if self.mean_iou is None else f", mean IoU {self.mean_iou:.3f}"
        return f"{len(m.missed)} missed, {len(m.extra)} extra, {len(m.flips)} label flips{iou}"


@dataclass(frozen=True)
class DrawnPair:
    """A disagreement drawn: the two images as ``data:image/jpeg`` URIs."""

    disagreement: Disagreement
    reference_uri: str
    candidate_uri: str


def at_conf(dets: Detections, conf: float) -> Detections:
    return dets[dets.scores >= conf]


def rank_disagreements(pairs: ImagePairs) -> list[Disagreement]:
    """Every image's disagreement, worst first (ties keep the check's image order)."""
    out = []
    for k, (ref, cand) in enumerate(zip(pairs.reference, pairs.candidate)):
        m = match_at_conf(at_conf(ref, pairs.conf), at_conf(cand, pairs.conf))
        ious = [iou for _, _, iou in m.matched]
        out.append(Disagreement(k, pairs.names[k], m, float(np.mean(ious)) if ious else None))
    return sorted(out, key=lambda d: d.score, reverse=True)


def worst_pairs(pairs: ImagePairs, ranked: list[Disagreement], count: int = 4) -> list[DrawnPair]:
    """The first ``count`` of ``ranked`` (:func:`rank_disagreements` of ``pairs``) that disagree at all
    (a missed, extra or flipped detection, or matched boxes below IoU 1), drawn; the images are read
    again, only these."""
    ranked = [d for d in ranked if d.score > (0, 1e-6)][:count]
    images = pairs.images(d.index for d in ranked)
    drawn = []
    for d in ranked:
        if d.index not in images:
            continue
        image = images[d.index]
        ref = at_conf(pairs.reference[d.index], pairs.conf)
        cand = at_conf(pairs.candidate[d.index], pairs.conf)
        m = d.matches
        ref_status = _status(len(ref), m.matched, m.flips, m.missed, side=0)
        cand_status = _status(len(cand), m.matched, m.flips, m.extra, side=1)
        drawn.append(DrawnPair(d, jpeg_uri(draw(image, ref, ref_status)), jpeg_uri(draw(image, cand, cand_status))))
    return drawn


def _status(
    n: int, matched: list[tuple[int, int, float]], flips: list[tuple[int, int, float]], alone: list[int], side: int
) -> list[str]:
    status = ["matched"] * n
    for i, j, _ in flips:
        status[j if side else i] = "flipped"
    for i in alone:
        status[i] = "missed" if side == 0 else "extra"
    return status


def draw(image: np.ndarray, dets: Detections, status: list[str]) -> np.ndarray:
    """``image`` scaled to :data:`MAX_SIDE` with ``dets`` drawn in their status colours; disagreeing
    boxes thicker and labelled, matched ones thin and unlabelled (the eye goes to what differs)."""
    h, w = image.shape[:2]
    scale = min(1.0, MAX_SIDE / max(h, w))
    canvas = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    order = sorted(range(len(dets)), key=lambda i: status[i] != "matched")  # disagreements on top
    for i in order:
        x0, y0, x1, y1 = (int(np.clip(round(float(v) * scale), -1, 1 << 15)) for v in dets.xyxy[i])
        colour = COLOURS[status[i]]
        odd = status[i] != "matched"
        cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, 2 if odd else 1, cv2.LINE_AA)
        if odd:
            text = f"{dets.class_names[int(dets.class_ids[i])] if dets.class_names else dets.class_ids[i]}"
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
            ty = max(y0, th + base)
            cv2.rectangle(canvas, (x0, ty - th - base), (x0 + tw, ty), colour, -1)
            cv2.putText(canvas, text, (x0, ty - base), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def jpeg_uri(image: np.ndarray) -> str:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("OpenCV could not encode the image as JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(data.tobytes()).decode("ascii")


def css_colour(name: str) -> str:
    """A status colour as CSS hex (the legend)."""
    b, g, r = COLOURS[name]
    return f"#{r:02x}{g:02x}{b:02x}"
