"""A finished bundle's files as :class:`~rtdetr_edge.report.page.ReportInputs` (``rtdetr-check --report``)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..bundle import Bundle
from ..check.report import CheckReport
from ..errors import BundleError
from .page import ReportInputs


def inputs_from_bundle(bundle: str | os.PathLike[str], checks: Sequence[CheckReport]) -> ReportInputs:
    """The bundle's metadata, ``report.json`` and INT8 plan, with ``checks`` (from :func:`run_checks`)."""
    from ..calib.plan import PrecisionPlan

    files = Bundle(bundle, verify_hashes="never")
    path = files.file("report.json")
    build: dict[str, Any] = {}
    if path.is_file():
        try:
            build = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise BundleError(f"{path}: unreadable build report ({type(exc).__name__}: {exc})") from None
        if not isinstance(build, dict):
            raise BundleError(f"{path}: expected a JSON object (the build's report), got {type(build).__name__}")
    plan_file = (files.artifacts.get("int8") or {}).get("plan")
    plan = PrecisionPlan.load(files.file(plan_file)) if plan_file and files.file(plan_file).is_file() else None
    return ReportInputs(Path(bundle).name, files.metadata, build, plan, tuple(checks))
