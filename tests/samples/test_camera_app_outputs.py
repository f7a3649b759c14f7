"""camera_app's outputs: an earlier --jsonl survives a failed start, bad output paths are one line."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

from tests.samples.support import sample_cmd


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_a_run_that_gets_no_frame_keeps_the_earlier_jsonl(model: SimpleNamespace, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    earlier = tmp_path / "run.jsonl"
    earlier.write_text('{"frame":0}\n')
    cmd = sample_cmd("camera_app.py", folder, model.path, model.conf, "--jsonl", str(earlier), "--output", "o.mp4")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert earlier.read_text() == '{"frame":0}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "run.jsonl"]


def test_output_paths_that_cannot_be_written_are_one_line(model: SimpleNamespace, video: Path, tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    for flag, value, expected in [
        ("--jsonl", tmp_path / "folder", "--jsonl"),
        ("--output", tmp_path / "folder", "--output"),
        ("--jsonl", tmp_path / "file" / "run.jsonl", "is not a directory"),
    ]:
        cmd = sample_cmd("camera_app.py", video, model.path, model.conf, flag, str(value), "--max-frames", "2")
        line = _one_error_line(subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path))
        assert expected in line and str(value) in line, line
    assert sorted(p.name for p in (tmp_path / "folder").iterdir()) == []
