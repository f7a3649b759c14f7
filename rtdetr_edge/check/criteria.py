""":class:`Criterion`: one pass/fail criterion of a check, as every view of a verdict shows it.

A check's verdict is a list of criteria (the tensor level's, then the detection level's; see
:meth:`rtdetr_edge.check.report.CheckReport.criteria`). The text report, ``report.json``'s
``failures`` and the HTML report all read the same list, so a failed criterion is said in the same
words everywhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Level = Literal["tensors", "detections"]
Op = Literal[">=", "<="]


@dataclass(frozen=True)
class Criterion:
    """One criterion: a measured ``value`` held against ``limit`` with ``op``.

    Attributes:
        level: ``tensors`` (element-wise) or ``detections`` (what a user of the detector sees).
        name: what is measured, e.g. ``"AP"``, ``"post/probs"``.
        value: the measured value (None: not measured, e.g. no reference detection).
        limit: the threshold it must meet.
        op: ``>=`` (at least) or ``<=`` (at most).
        passed: whether it did.
        words: the criterion in words, e.g. ``"AP 0.941 < 0.97"``; a failed one's words are one
            entry of the check's ``failures``.
        detail: how ``value`` and ``limit`` were found (the statistic over images, its interval,
            fp32's own noise); empty where ``words`` say it all.
        judged: what was held against ``limit`` where that is not ``value`` itself: the bound of
            ``value``'s interval over images nearest the limit's good side (None: ``value``).
    """

    level: Level
    name: str
    value: float | None
    limit: float | None
    op: Op
    passed: bool
    words: str
    detail: str = ""
    judged: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
