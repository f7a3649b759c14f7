"""README.md is a contract: its two opening commands are exercised here."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REFERENCE_MODEL, REPO


def _opening_commands() -> list[str]:
    lines, fence = [], 0
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("```"):
            fence += 1
            if fence == 2:
                break
            continue
        if fence == 1 and line.strip():
            lines.append(line.strip())
    return lines


def test_readme_opens_with_exactly_two_commands_and_ci_runs_the_second() -> None:
    text = (REPO / "README.md").read_text()
    assert text.splitlines()[2].startswith("```")  # the title, a blank line, then the commands
    commands = _opening_commands()
    assert len(commands) == 2
    assert commands[0].startswith("pip install torch==2.13.0")
    ci = (REPO / ".ci" / "run").read_text()
    assert "README.md" in ci
    extracted = subprocess.run(
        ["bash", "-c", ci.split("test_cmd=")[1].split("\n")[0].strip("$()")], capture_output=True, text=True, cwd=REPO
    )
    assert extracted.stdout.strip() == commands[1]


def _extras_closure(extras: set[str]) -> set[str]:
    """Distribution names the editable install of ``.[extras]`` brings in (pyproject, recursively;
    read with a regex: there is no tomllib on Python 3.10)."""
    import re

    text = (REPO / "pyproject.toml").read_text()
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    section = re.sub(r"#.*", "", section)
    optional = {
        name: re.findall(r'"([^"]+)"', body)
        for name, body in re.findall(r"^([\w-]+) = \[(.*?)\]$", section, re.S | re.M)
    }
    deps = text.split("\ndependencies = [", 1)[1].split("]", 1)[0]
    names: set[str] = set()
    todo, seen = list(extras), set()
    for req in re.findall(r'"([^"]+)"', deps):
        names.add(re.split(r"[<>=!~\[ ;]", req, maxsplit=1)[0].lower())
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for req in optional[extra]:
            name = re.split(r"[<>=!~\[ ;]", req, maxsplit=1)[0].lower()
            if name == "rtdetr-edge":
                todo += req.split("[", 1)[1].split("]", 1)[0].split(",")
            else:
                names.add(name)
    return names


def test_first_command_installs_what_an_int8_default_needs() -> None:
    """The first command's bundle defaults to INT8 only when its rtdetr-check runs and passes, so
    its install must bring Polygraphy (the check), faster-coco-eval (the AP report),
    onnxconverter-common (FP16) and the exporter; without Polygraphy the check is skipped and the
    bundle silently defaults to fp16 (issue 24)."""
    import re

    first = _opening_commands()[0]
    install = first.split("&&")[0]
    match = re.search(r'-e "\.\[([a-z,]+)\]"', install)
    assert match, install
    installed = _extras_closure(set(match.group(1).split(",")))
    needed = {"polygraphy", "faster-coco-eval", "onnxconverter-common", "torch", "transformers", "onnxsim"}
    assert needed <= installed, f"README's first command does not install {sorted(needed - installed)}"
    assert "--precision int8" in first


@pytest.mark.slow
def test_first_command_builds_and_detects_offline(tmp_path: Path) -> None:
    """The first command minus its pip install, run in a scratch copy of the paths it uses."""
    if not (REFERENCE_MODEL / "config.json").is_file():
        pytest.skip("models/rtdetr-shapes is not present")
    steps = [s.strip() for s in _opening_commands()[0].split("&&") if not s.strip().startswith("pip install")]
    (tmp_path / "models").symlink_to(REPO / "models")
    (tmp_path / "samples").symlink_to(REPO / "samples")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    outputs = {}
    for step in steps:
        proc = subprocess.run(shlex.split(step), capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
        assert proc.returncode == 0, f"{step}\n{proc.stderr[-3000:]}"
        outputs[shlex.split(step)[0]] = proc.stdout
    # the build ends by saying what it made and why the default is what it is
    last = outputs["rtdetr-build"].strip().splitlines()[-4:]
    assert "default precision: int8 (INT8 passed its check)" in last, last
    meta = json.loads((tmp_path / "build" / "shapes" / "metadata.json").read_text())
    report = json.loads((tmp_path / "build" / "shapes" / "report.json").read_text())
    # int8 by default only because its check passed (else the bundle would default to fp16)
    assert report["check"]["int8"]["passed"], report["check"]["int8"]["failures"]
    assert meta["default_precision"] == "int8" and report["default_precision"]["reason"].startswith("INT8 passed")
    # three disjoint image sets: calibration, range choice, accuracy report
    assert meta["accuracy"]["image_sets"] == {"calibration": 256, "range_choice": 100, "accuracy": 100}
    assert meta["accuracy"]["int8"]["AP_vs_fp32"] >= 0.98
    lines = (tmp_path / "runs" / "demo" / "detections.jsonl").read_text().splitlines()
    assert len(lines) == len(list((REPO / "samples" / "images").glob("*.jpg")))
    assert sum(len(json.loads(ln)["detections"]) for ln in lines) > 0


def test_the_default_lane_installs_nothing() -> None:
    """The serve environment (pip from PyPI) is made by .ci/run before the serving tests, never by a
    test fixture, so README's test command runs offline (issue 24, item 12)."""
    import ast

    conftest = REPO / "tests" / "serving" / "conftest.py"
    called = {
        node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        for node in ast.walk(ast.parse(conftest.read_text()))
        if isinstance(node, ast.Call)
    }
    assert "setup_environment" not in called
    ci = (REPO / ".ci" / "run").read_text()
    setup, serving = ci.find("\nrtdetr-serve --setup-env"), ci.find("\npython -m pytest -q -m serving")
    assert 0 < setup < serving, "`.ci/run` makes the serve environment, then runs the serving tests"


def test_readme_states_the_exit_codes_the_commands_use(tmp_path: Path) -> None:
    """README: user errors exit 1 with one line, usage errors exit 2 (argparse's convention)."""
    text = " ".join((REPO / "README.md").read_text().split())
    assert "print one line (`error: ...`) and exit 1" in text
    assert "usage errors" in text and "exit 2 (argparse's convention)" in text
    user = subprocess.run(
        [sys.executable, "-m", "rtdetr_edge.cli.detect", str(tmp_path / "none.jpg"), "--model", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    usage = subprocess.run(
        [sys.executable, "-m", "rtdetr_edge.cli.detect", "x.jpg", "--model", "m", "--batch", "0"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert user.returncode == 1 and user.stderr.startswith("error: ")
    assert usage.returncode == 2 and "error: argument --batch" in usage.stderr
