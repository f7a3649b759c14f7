"""README.md is a contract: its two opening commands are exercised here."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
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


@pytest.mark.slow
def test_first_command_builds_and_detects_offline(tmp_path: Path) -> None:
    """The first command minus its pip install, run in a scratch copy of the paths it uses."""
    if not (REFERENCE_MODEL / "config.json").is_file():
        pytest.skip("models/rtdetr-shapes is not present")
    steps = [s.strip() for s in _opening_commands()[0].split("&&") if not s.strip().startswith("pip install")]
    (tmp_path / "models").symlink_to(REPO / "models")
    (tmp_path / "samples").symlink_to(REPO / "samples")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    for step in steps:
        proc = subprocess.run(shlex.split(step), capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
        assert proc.returncode == 0, f"{step}\n{proc.stderr[-3000:]}"
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
