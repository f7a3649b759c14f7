"""Polygraphy is an optional dependency: importing rtdetr_edge.check does not import it."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("polygraphy")
pytest.importorskip("faster_coco_eval")


def test_polygraphy_is_imported_lazily() -> None:
    code = "import sys, rtdetr_edge.check; assert 'polygraphy' not in sys.modules, 'imported eagerly'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
