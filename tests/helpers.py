"""Paths and helpers the tests import (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE_MODEL = REPO / "models" / "rtdetr-shapes"
SAMPLES = REPO / "samples"

CLI_MODULES = {
    "rtdetr-build": "rtdetr_edge.cli.build",
    "rtdetr-detect": "rtdetr_edge.cli.detect",
    "rtdetr-bench": "rtdetr_edge.cli.bench",
    "rtdetr-eval": "rtdetr_edge.cli.eval",
    "rtdetr-check": "rtdetr_edge.cli.check",
    "rtdetr-data": "rtdetr_edge.cli.data",
    "rtdetr-selftest": "rtdetr_edge.selftest",
    "rtdetr-engine": "rtdetr_edge.cli.engine",
    "rtdetr-triton": "rtdetr_edge.cli.triton",
    "rtdetr-serve": "rtdetr_edge.cli.serve",
}


def run_cli(*args: str, timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a console script's module in a new process, the way a user would (python -m for portability).

    Only for what needs a process of its own; argument and exit-code tests call ``main(argv)``
    in-process (the ``cli`` fixture of tests/cli/conftest.py).
    """
    full_env = {**os.environ, "HF_HUB_DISABLE_TELEMETRY": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", CLI_MODULES[args[0]], *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=str(REPO),
    )


@dataclass
class CliResult:
    """Exit code and captured output of one in-process CLI run."""

    code: int
    out: str
    err: str

    def one_line_error(self) -> str:
        """The single ``error: ...`` line of a user error (exit 1, no traceback)."""
        assert self.code == 1, self.err
        assert "Traceback" not in self.err
        errors = [line for line in self.err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, self.err
        return errors[0]

    def usage_error(self) -> str:
        """argparse's usage error (exit 2, ``PROG: error: ...`` after the usage, no traceback)."""
        assert self.code == 2, (self.code, self.err)
        assert "Traceback" not in self.err
        return self.err.strip().splitlines()[-1]


Cli = Callable[..., CliResult]
"""The ``cli`` fixture's type (tests/cli/conftest.py): ``cli("rtdetr-build", *argv) -> CliResult``."""
