"""docs/support.md's table agrees with the code: the minimum TensorRT, the minimum Python (from
pyproject and, by vermin, from what the source uses), the engine recipe of every supported row,
the cuda-python extra per CUDA line, and that JetPack 5 is not claimed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rtdetr_edge.engine_recipe import MIN_TENSORRT, EngineBuildOptions, GraphSet, SourceGraph, recipe
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
        recipe(GRAPHS, "fp16", "8.5.2", EngineBuildOptions())
    recipe(GRAPHS, "fp16", ".".join(map(str, MIN_TENSORRT)) + ".0", EngineBuildOptions())


# every graph a new bundle has (file names are placeholders: the recipe reads no file)
GRAPHS = GraphSet(
    "bundle",
    tuple(SourceGraph(t, Path(t), "0" * 64, t) for t in ("fp32", "fp16", "int8-fp16", "int8-fp32")),
)


def test_every_supported_tensorrt_has_a_recipe_for_every_precision() -> None:
    """Each TensorRT version a supported row names builds fp32, fp16 and int8 (the JetPack 7.2 rows too)."""
    rows = [r for r in _rows() if r["status"].startswith("supported")]
    jetpacks = " ".join(r["JetPack (L4T)"] for r in rows)
    assert "7.2 (r39.2)" in jetpacks and ">= 7.2.2" in jetpacks, "JetPack 7.2 and 7.2.2 rows"
    versions = {".".join(map(str, v)) for r in rows for v in _versions(r["TensorRT"])}
    assert {"8.6.2", "10.3", "10.16", "11.4.1"} <= versions
    for version in sorted(versions):
        for precision in ("fp32", "fp16", "int8"):
            recipe(GRAPHS, precision, version, EngineBuildOptions())


def test_each_cuda_line_names_its_cuda_python_extra() -> None:
    """A row's cuda-python column names the extra that pins that CUDA major (pyproject.toml)."""
    text = (REPO / "pyproject.toml").read_text()
    extras = dict(re.findall(r'^([a-z0-9-]+) = \["cuda-python>=(\d+),<\d+"', text, re.M))
    assert extras == {"trt": "12", "trt-cu13": "13"}, extras
    for r in _rows():
        m = re.search(r"`\[([a-z0-9-]+)\]`", r["cuda-python"])
        if m is None:
            continue
        cuda_major = _versions(r["CUDA"])[0][0]
        assert extras[m.group(1)] == str(cuda_major), r


# removed from the standard library by Python 3.12 (PEP 594 and the distutils/imp removals):
# JetPack 7.2 runs Python 3.12, so the package must import none of them
REMOVED_IN_312 = {"distutils", "imp", "asynchat", "asyncore", "smtpd"}


def test_nothing_python_3_12_removed_is_imported() -> None:
    import ast

    found = []
    for path in [
        *(REPO / "rtdetr_edge").rglob("*.py"),
        *(REPO / "export").rglob("*.py"),
        *(REPO / "calib").rglob("*.py"),
    ]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            found += [f"{path}: {n}" for n in names if n.split(".")[0] in REMOVED_IN_312]
    assert not found, found


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
