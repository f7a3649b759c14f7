"""Box overlap and greedy one-to-one matching, shared by every comparison of detections.

The exporter's verification (ONNX Runtime vs PyTorch top-k), the self-test (an engine vs the
recorded ONNX Runtime outputs), the check's detection agreement and its query alignment all pair
items of two sets by a cost; :func:`greedy_match` is that one rule, and :func:`match_topk` the one
way two runtimes' top-k outputs are matched as sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix ``[len(a), len(b)]`` of xyxy boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float64)
    a, b = a.astype(np.float64), b.astype(np.float64)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def greedy_match(cost: np.ndarray, max_cost: float = np.inf) -> list[tuple[int, int]]:
    """Pairs ``(i, j)``, cheapest first, each row and each column used once.

    Args:
        cost: ``[rows, cols]`` costs; ``inf`` (or anything above ``max_cost``) forbids a pair.
        max_cost: pairs costing more are never made.

    Ties are broken in row-major order (a stable sort), so identical inputs give the identity
    pairing when the diagonal is cheapest.
    """
    if cost.size == 0:
        return []
    rows, cols = np.nonzero(cost <= max_cost)
    order = np.argsort(cost[rows, cols], kind="stable")
    limit = min(cost.shape)
    used_i: set[int] = set()
    used_j: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for k in order:
        i, j = int(rows[k]), int(cols[k])
        if i in used_i or j in used_j:
            continue
        used_i.add(i)
        used_j.add(j)
        pairs.append((i, j))
        if len(pairs) == limit:
            break
    return pairs


@dataclass
class SetMatch:
    """How well candidate top-k detections reproduce reference ones (per image, or merged)."""

    compared: int  # reference detections that had to be found
    matched: int
    max_abs_score: float  # over the matched pairs
    max_abs_box: float

    @property
    def label_agreement(self) -> float:
        return self.matched / self.compared if self.compared else 1.0


def match_topk(
    ref: tuple[np.ndarray, np.ndarray, np.ndarray],
    cand: tuple[np.ndarray, np.ndarray, np.ndarray],
    tail_margin: float = 1e-4,
    gate: float = 0.05,
    compared: np.ndarray | None = None,
    candidates: np.ndarray | None = None,
    score_in_cost: bool = True,
) -> SetMatch:
    """Match one image's candidate (scores [K], labels [K], boxes [K,4]) to the reference as sets.

    Near-tied scores may swap places between runtimes, so detections are matched, not compared
    element by element. Pairs need the same label; they are taken greedily by cost (the largest
    box coordinate difference, and with ``score_in_cost`` the score difference too), and a pair
    costing more than ``gate`` counts as unmatched.

    Args:
        compared: the reference rows that must be found (default: every row whose score is more
            than ``tail_margin`` above the reference's K-th: a near-tie there can push a row out
            of the candidate's top-k).
        candidates: the candidate rows they may match (default: all).
    """
    rs, rl, rb = ref
    cs, cl, cb = cand
    if compared is None:
        compared = np.flatnonzero(rs > rs.min() + tail_margin) if rs.size else np.zeros(0, int)
    cols = np.arange(cs.shape[0]) if candidates is None else candidates
    if compared.size == 0:
        return SetMatch(0, 0, 0.0, 0.0)
    box_d = np.abs(rb[compared, None, :].astype(np.float64) - cb[None, cols, :]).max(-1)
    score_d = np.abs(rs[compared, None].astype(np.float64) - cs[None, cols])
    cost = np.maximum(box_d, score_d) if score_in_cost else box_d
    pairs = greedy_match(np.where(rl[compared, None] == cl[None, cols], cost, np.inf), gate)
    worst_s = max((float(score_d[i, j]) for i, j in pairs), default=0.0)
    worst_b = max((float(box_d[i, j]) for i, j in pairs), default=0.0)
    return SetMatch(int(compared.size), len(pairs), worst_s, worst_b)


def merge(matches: list[SetMatch]) -> SetMatch:
    """Matches of several images as one."""
    return SetMatch(
        sum(m.compared for m in matches),
        sum(m.matched for m in matches),
        max((m.max_abs_score for m in matches), default=0.0),
        max((m.max_abs_box for m in matches), default=0.0),
    )
