"""docs/support.md's table agrees with the code: the minimum TensorRT, the minimum Python (from
pyproject and, by vermin, from what the source uses), and that JetPack 5 is not claimed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rtdetr_edge.engine.options import MIN_TENSORRT, EngineBuildOptions, plan_build
from rtdetr_edge.errors import EngineError

REPO = Path(__file__).resolve().parents[2]
SUPPORT = REPO / "docs" / "support.md"


def _rows() -> list[dict[str, str]]:
    lines = [ln for ln in SUPPORT.read_text().splitlines() if ln.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(head, (c.strip() for c in ln.strip("|").split("|")))) for ln in lines[2:]]


def _versions(text: str) -> list[tuple[int, ...]]:
    return [tuple(int(x) for x in v.split(".")) for v in re.findall(r"\b\d+\.\d+(?:\.\d+)?\b", text)]


def _requires_python() -> tuple[int, int]:
    m = re.search(r'^requires-python = ">=(\d+)\.(\d+)"$', (REPO / "pyproject.toml").read_text(), re.M)
    assert m, "pyproject.toml: requires-python must read >=X.Y"
    return int(m.group(1)), int(m.group(2))


def test_the_table_agrees_with_min_tensorrt_and_requires_python() -> None:
    rows = _rows()
    supported = [r for r in rows if r["status"].startswith("supported")]
    unsupported = [r for r in rows if "not supported" in r["status"]]
    assert supported and unsupported
    low_trt = min(v for r in supported for v in _versions(r["TensorRT"]))
    assert low_trt[:2] == MIN_TENSORRT, (low_trt, MIN_TENSORRT)
    low_py = min(v for r in supported for v in _versions(r["Python"]))
    assert low_py[:2] == _requires_python()
    for r in unsupported:  # what the table says is out must be out in the code too
        assert any(v[:2] < MIN_TENSORRT for v in _versions(r["TensorRT"])) or any(
            v[:2] < _requires_python() for v in _versions(r["Python"])
        ), r
    assert all("5." not in r["JetPack (L4T)"] for r in supported), "JetPack 5 is claimed as supported"
    with pytest.raises(EngineError, match="too old"):
        plan_build("8.5.2", "fp16", EngineBuildOptions())
    plan_build(".".join(map(str, MIN_TENSORRT)) + ".0", "fp16", EngineBuildOptions())


@pytest.mark.parametrize("target", ["3.10"])
def test_the_source_needs_no_python_newer_than_the_minimum(target: str) -> None:
    """vermin over the package: nothing needs a Python newer than requires-python (JetPack 6: 3.10)."""
    assert tuple(map(int, target.split("."))) == _requires_python()
    vermin = shutil.which("vermin")
    if vermin is None:
        pytest.fail('vermin is not installed: pip install vermin (in the "dev" extra)')
    roots = [str(REPO / d) for d in ("rtdetr_edge", "export", "calib")]
    proc = subprocess.run(
        [vermin, "--no-tips", "--violations", "--eval-annotations", f"-t={target}-", *roots],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_vermin_fails_on_a_newer_construct(tmp_path: Path) -> None:
    """The gate can fail: a 3.11-only ``except*`` is a violation for a 3.10 target."""
    vermin = shutil.which("vermin")
    if vermin is None:
        pytest.fail("vermin is not installed: pip install vermin")
    bad = tmp_path / "new.py"
    bad.write_text("try:\n    pass\nexcept* ValueError:\n    pass\n")
    proc = subprocess.run([vermin, "--no-tips", "--violations", "-t=3.10-", str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0, proc.stdout
    assert sys.version_info >= (3, 10)
