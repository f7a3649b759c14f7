"""How close a candidate's top-k outputs are to the recorded reference, as sets of detections.

Near-tied scores may swap places between runtimes (a random-weight model ties often), so the
top detections of each image are matched by label and box position, not element by element. The
self-test model's boxes are small and thin, where a shift of 0.01 of the image already halves the
IoU: boxes are compared by their largest coordinate difference (normalised xyxy), not by IoU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..matching import match_topk, merge

OUTPUTS = ("scores", "labels", "boxes")


@dataclass(frozen=True)
class Agreement:
    """``matched``: mean fraction of the reference's top detections found in the candidate (same
    label, every box coordinate within ``box_tol``); ``worst``: the lowest image's fraction;
    ``score_diff`` / ``box_diff``: the largest differences of a matched pair."""

    matched: float
    worst: float
    score_diff: float
    box_diff: float

    def numbers(self) -> dict[str, float]:
        return {
            "matched": round(self.matched, 4),
            "worst_image": round(self.worst, 4),
            "max_score_diff": round(self.score_diff, 6),
            "max_box_diff": round(self.box_diff, 6),
        }


def agreement(
    reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], box_tol: float, top: int = 10
) -> Agreement:
    """Compare ``{scores [N,K], labels [N,K], boxes [N,K,4]}`` of the same N images.

    Per image, the reference's ``top`` detections are matched (:func:`rtdetr_edge.matching.match_topk`,
    box distance only, within ``box_tol``) among the candidate's ``2 x top``.
    """
    for name in OUTPUTS:
        if name not in candidate:
            raise ValueError(f"the candidate has no output {name!r} (it has {sorted(candidate)})")
        if candidate[name].shape[0] != reference[name].shape[0]:
            raise ValueError(f"{name}: {candidate[name].shape[0]} images, the reference has {reference[name].shape[0]}")
    matches = []
    for i in range(reference["scores"].shape[0]):
        ref = tuple(reference[name][i] for name in OUTPUTS)
        cand = tuple(candidate[name][i] for name in OUTPUTS)
        matches.append(
            match_topk(
                ref,
                cand,
                gate=box_tol,
                compared=np.argsort(-ref[0], kind="stable")[:top],
                candidates=np.argsort(-cand[0], kind="stable")[: 2 * top],
                score_in_cost=False,
            )
        )
    fractions = [m.label_agreement for m in matches] or [0.0]
    total = merge(matches)
    return Agreement(float(np.mean(fractions)), float(np.min(fractions)), total.max_abs_score, total.max_abs_box)
