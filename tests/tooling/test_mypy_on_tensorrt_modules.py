"""mypy checks the TensorRT and CUDA modules against tensorrt-stubs, without TensorRT or a GPU.

CI installs the stubs without their dependency on the real wheel (which cannot install without
NVIDIA's index) and cuda-python::

    pip install --no-deps tensorrt-stubs==10.13.0.35.1
    pip install cuda-python==13.4.4

tensorrt-stubs puts ``tensorrt/__init__.pyi`` and ``tensorrt_bindings/tensorrt.pyi`` into
site-packages without a ``py.typed`` marker (so mypy skips them) and with a few lines that are
not valid Python (parameters named ``in``; a parameter without default after defaults). This
test copies them into a temporary stub directory with only those lines repaired, and puts that
directory on MYPYPATH. Nothing is skipped except when mypy itself is missing; missing stubs fail.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECKED = [
    "rtdetr_edge/engine",
    "rtdetr_edge/cuda",
    "rtdetr_edge/backends/tensorrt.py",
    "rtdetr_edge/backends/trt_runtime.py",
    "rtdetr_edge/backends/trt_logging.py",
]
STUB_PACKAGES = ("tensorrt", "tensorrt_bindings")


def _site_stub_dir(package: str) -> Path | None:
    """The site-packages directory holding ``package``'s ``.pyi`` files (from tensorrt-stubs)."""
    spec = importlib.util.find_spec(package)
    for loc in (spec.submodule_search_locations or []) if spec else []:
        if list(Path(loc).glob("*.pyi")):
            return Path(loc)
    return None


def repair_stub(text: str) -> str:
    """Make a generated stub parse: rename parameters called ``in``, default trailing params."""
    text = re.sub(r"([(,]\s*)in(\s*:)", r"\1in_\2", text)

    def fix_def(m: re.Match[str]) -> str:
        line = m.group(0)
        try:
            ast.parse(line.strip() + " ...")
            return line
        except SyntaxError:
            # a parameter without default after parameters with defaults: give the rest `= ...`
            head, _, params_tail = line.partition("(")
            params, sep, tail = params_tail.rpartition(")")
            parts, seen_default = [], False
            for p in params.split(", "):
                if "=" in p:
                    seen_default = True
                elif seen_default and ":" in p:
                    p = p + " = ..."
                parts.append(p)
            return head + "(" + ", ".join(parts) + sep + tail

    return re.sub(r"^[ \t]*def [^\n]*:$", fix_def, text, flags=re.M)


@pytest.fixture(scope="module")
def stub_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trt_stubs")
    for package in STUB_PACKAGES:
        src = _site_stub_dir(package)
        if src is None:
            pytest.fail(
                f"tensorrt-stubs are not installed ({package}/*.pyi not found): "
                "pip install --no-deps tensorrt-stubs==10.13.0.35.1"
            )
        (out / package).mkdir()
        for f in src.glob("*.pyi"):
            fixed = repair_stub(f.read_text())
            try:
                ast.parse(fixed)
            except SyntaxError as exc:
                pytest.fail(f"{f}: stub still does not parse after repair, line {exc.lineno}: {exc.msg}")
            (out / package / f.name).write_text(fixed)
    return out


def test_repair_stub_fixes_the_known_defects() -> None:
    text = (
        "class A:\n    def f(self: A, in: list[int], out: list[int]) -> None:\n        ...\n"
        "    def g(self, a: int = None, b: int) -> int:\n        ...\n"
    )
    fixed = repair_stub(text)
    ast.parse(fixed)
    assert "in_: list[int]" in fixed and "b: int = ..." in fixed


@pytest.mark.slow
def test_mypy_on_tensorrt_and_cuda_modules(stub_path: Path) -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install mypy)")
    if importlib.util.find_spec("cuda") is None:
        pytest.fail("cuda-python is not installed: pip install cuda-python")
    env = {**os.environ, "MYPYPATH": str(stub_path)}
    # follow-imports=silent: imported project modules are analysed for their types, but only
    # the TensorRT/CUDA modules' own errors are reported here
    cmd = [
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        str(REPO / "pyproject.toml"),
        "--follow-imports=silent",
        "--no-incremental",
        *CHECKED,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(REPO), env=env, timeout=900)
    assert proc.returncode == 0, f"mypy failed:\n{proc.stdout}\n{proc.stderr}"
    assert "Success" in proc.stdout
