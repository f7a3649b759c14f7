"""Box overlap and greedy one-to-one matching, shared by every comparison of detections.

The exporter's verification (ONNX Runtime vs PyTorch top-k), the check's detection agreement and
its query alignment all pair items of two sets by a cost; :func:`greedy_match` is that one rule.
"""

from __future__ import annotations

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
