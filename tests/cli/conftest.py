"""The ``cli`` fixture: run a command's ``main(argv)`` in this process and read what it printed."""

from __future__ import annotations

import importlib

import pytest

from tests.helpers import CLI_MODULES, Cli, CliResult


@pytest.fixture()
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """``cli("rtdetr-build", "--model", ...)``: the command's ``main(argv)``, output from ``capsys``.

    argparse exits through ``SystemExit`` (``--help``: 0, a bad flag: 2); that becomes the code.
    The ``rtdetr_edge`` logger that ``setup_logging`` points at capsys's stderr is restored after
    each test by the autouse fixture of tests/conftest.py.
    """

    def run(command: str, *argv: str) -> CliResult:
        main = importlib.import_module(CLI_MODULES[command]).main
        capsys.readouterr()  # what ran before is not this command's output
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
