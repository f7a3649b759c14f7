"""OS errors are one line naming the path; SIGTERM cleans up like Ctrl-C (cli/_common.run)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest

from rtdetr_edge.cli._common import run
from tests.helpers import REPO


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (PermissionError(errno.EACCES, "Permission denied", "/data/out"), "error: /data/out: Permission denied"),
        (OSError(errno.ENOSPC, "No space left on device", "o/x.jpg"), "error: o/x.jpg: No space left on device"),
        (OSError(errno.EROFS, "Read-only file system", "a", None, "b"), "error: a -> b: Read-only file system"),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "f/sub"), "error: f/sub: Not a directory"),
    ],
)
def test_os_errors_are_one_line_naming_the_path(exc: OSError, line: str, capsys: pytest.CaptureFixture[str]) -> None:
    def main(argv: Sequence[str] | None) -> int:
        raise exc

    assert run(main, []) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [line]


def _start(script: str, tmp_path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready", proc.communicate(timeout=30)
    return proc


def test_sigterm_keeps_complete_jsonl_lines_and_no_temp_file(tmp_path: Path) -> None:
    proc = _start(
        """
        import sys, time
        from pathlib import Path
        from rtdetr_edge.cli._common import run
        from rtdetr_edge.outputs import JsonlWriter

        def main(argv):
            with JsonlWriter(Path(sys.argv[1]) / "detections.jsonl") as jsonl:
                jsonl.write({"frame": 0})
                jsonl.write({"frame": 1})
                print("ready", flush=True)
                time.sleep(60)
            return 0

        raise SystemExit(run(main, []))
        """,
        tmp_path,
    )
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "terminated" in err
    assert os.listdir(tmp_path) == ["detections.jsonl"]
    assert (tmp_path / "detections.jsonl").read_text().splitlines() == ['{"frame":0}', '{"frame":1}']


def test_sigterm_during_a_build_leaves_no_partial_folder(tmp_path: Path) -> None:
    proc = _start(
        """
        import sys, time
        from pathlib import Path
        from rtdetr_edge import atomic
        from rtdetr_edge.cli._common import run

        def main(argv):
            with atomic.replacing_dir(Path(sys.argv[1]) / "bundle") as tmp:
                (tmp / "model.onnx").write_bytes(b"x" * 1000)
                print("ready", flush=True)
                time.sleep(60)
            return 0

        raise SystemExit(run(main, []))
        """,
        tmp_path,
    )
    assert any(p.name.endswith(".partial") for p in tmp_path.iterdir())
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert os.listdir(tmp_path) == []
