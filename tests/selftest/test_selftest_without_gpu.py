"""rtdetr-selftest on this machine (no GPU, no TensorRT): the acceptance command with torch and
transformers unimportable, the report's shape, and the CPU gates failing on broken data.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rtdetr_edge import selftest
from rtdetr_edge.cuda import buffers
from rtdetr_edge.selftest.checks import CHECKS
from tests.helpers import REPO

CPU = [c.name for c in CHECKS if c.needs == "cpu"]
GPU = [c.name for c in CHECKS if c.needs != "cpu"]
BLOCK = """\
import sys


class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers", "onnxsim", "onnx_graphsurgeon"):
            raise ImportError(f"{name} is blocked for this test")


sys.meta_path.insert(0, _Block())
"""


def _no_gpu() -> None:
    if buffers.cuda_status().devices > 0:
        pytest.skip("this machine has a CUDA device: the gpu tests run the GPU checks")


def test_acceptance_command_runs_without_torch_and_skips_gpu_checks(tmp_path: Path) -> None:
    """``rtdetr-selftest --json r.json``, the console script itself, with torch and transformers unimportable."""
    _no_gpu()
    script = shutil.which("rtdetr-selftest")
    if script is None:
        pytest.fail("rtdetr-selftest is not on PATH: pip install --no-deps -e . (pyproject [project.scripts])")
    site = tmp_path / "site"
    site.mkdir()
    # sitecustomize runs at interpreter start, before the console script imports anything
    (site / "sitecustomize.py").write_text(
        BLOCK
        + "import atexit\natexit.register(lambda: print('TORCH LOADED' if 'torch' in sys.modules else 'torch absent'))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [script, "--json", "r.json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().endswith("torch absent"), proc.stdout  # the blocker was active, torch never loaded
    assert f"{len(CPU)} passed, 0 failed, {len(GPU)} skipped" in proc.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["format"] == "rtdetr-edge-selftest" and report["summary"] == {
        "passed": len(CPU),
        "failed": 0,
        "skipped": len(GPU),
    }
    entries = {c["name"]: c for c in report["checks"]}
    assert list(entries) == [c.name for c in CHECKS]
    for name, entry in entries.items():
        assert {"name", "status", "reason", "numbers", "versions", "seconds"} <= set(entry)
        assert {"tensorrt", "cuda_driver", "cuda_runtime", "gpu"} <= set(entry["versions"])
        if name in CPU:
            assert entry["status"] == "passed" and entry["numbers"], entry
        else:
            assert entry["status"] == "skipped" and "no CUDA device" in entry["reason"], entry
    assert "TensorRT is not installed" in entries["engine_fp16"]["reason"]
    assert report["environment"]["tensorrt"] is None and report["environment"]["cuda"]["devices"] == 0


def _data_copy(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(selftest.DATA, data)
    return data


def _statuses(data: Path, *only: str) -> dict[str, Any]:
    report = selftest.run_selftest(selftest.SelftestOptions(data=str(data), only=only))
    return {c.name: (c.status, c.reason) for c in report.checks}


def test_an_altered_model_fails_the_bundle_check(tmp_path: Path) -> None:
    data = _data_copy(tmp_path)
    onnx = data / "bundle" / "model.int8.qdq.trt8.onnx"
    raw = bytearray(onnx.read_bytes())
    raw[-10] ^= 0xFF
    onnx.write_bytes(bytes(raw))
    status, reason = _statuses(data, "bundle")["bundle"]
    assert status == "failed" and "model.int8.qdq.trt8.onnx: sha256 does not match" in reason


def test_a_wrong_recording_fails_the_onnxruntime_check(tmp_path: Path) -> None:
    data = _data_copy(tmp_path)
    with np.load(data / "reference.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["fp16/boxes"] = arrays["fp16/boxes"] + 0.05  # every recorded FP16 box moved
    np.savez_compressed(data / "reference.npz", **arrays)
    status, reason = _statuses(data, "onnxruntime_reference")["onnxruntime_reference"]
    assert status == "failed" and reason.startswith("fp16: ONNX Runtime no longer reproduces the recording")


def test_a_bad_range_fails_the_cache_check(tmp_path: Path) -> None:
    data = _data_copy(tmp_path)
    cache = data / "bundle" / "calib" / "trt-10.3.0.cache"
    lines = cache.read_text().splitlines()
    name = lines[1].rpartition(": ")[0]
    lines[1] = f"{name}: 3f800000"  # scale 1.0: not what the ranges say
    cache.write_text("\n".join(lines) + "\n")
    status, reason = _statuses(data, "tensorrt_cache_format")["tensorrt_cache_format"]
    assert status == "failed" and "trt-10.3.0.cache differs" in reason


def test_usage_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert selftest.main(["--only", "engine_fp16,nosuch"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and err[0].startswith("error: --only nosuch: expected check names from bundle,")
    assert selftest.main(["--data", str(tmp_path)]) == 1
    assert "not a self-test data folder (bundle is missing)" in capsys.readouterr().err


def test_the_data_ships_in_the_wheel_and_stays_small() -> None:
    """Every file under rtdetr_edge/selftest/data is matched by pyproject's package-data patterns."""
    text = (REPO / "pyproject.toml").read_text()  # (no tomllib on Python 3.10)
    packages = ast.literal_eval(re.search(r"^packages = (\[.*?\])", text, re.S | re.M).group(1))  # type: ignore[union-attr]
    assert "rtdetr_edge.selftest" in packages
    line = re.search(r'^"rtdetr_edge\.selftest" = (\[.*\])$', text, re.M)
    assert line is not None, "pyproject.toml: no package-data for rtdetr_edge.selftest"
    patterns = ast.literal_eval(line.group(1))
    files = [p.relative_to(selftest.DATA.parent).as_posix() for p in selftest.DATA.rglob("*") if p.is_file()]
    unshipped = [
        f for f in files if not any(fnmatch.fnmatch(f, pat) and f.count("/") == pat.count("/") for pat in patterns)
    ]
    assert files and not unshipped, unshipped
    assert sum((selftest.DATA.parent / f).stat().st_size for f in files) < 6e6
    assert re.search(r'^rtdetr-selftest = "rtdetr_edge\.selftest:main"$', text, re.M)


def test_python_module_entry_point_matches_the_script() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rtdetr_edge.selftest", "--only", "bundle"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "PASS  bundle" in proc.stdout, proc.stdout + proc.stderr


def test_an_unwritable_json_report_is_one_line_before_the_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json under a file (or a read-only mount): one line and exit 1 before any check runs, no traceback."""
    from rtdetr_edge import selftest

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert selftest.main(["--json", str(blocker / "report.json"), "--only", "bundle"]) == 1
    err = capsys.readouterr()
    assert err.err.startswith("error: --json ") and "report.json" in err.err and "Traceback" not in err.err
    assert "PASS" not in err.out  # refused before the checks ran


def test_selftest_has_version(capsys: pytest.CaptureFixture[str]) -> None:
    from rtdetr_edge import selftest

    with pytest.raises(SystemExit) as exc:
        selftest.main(["--version"])
    assert exc.value.code == 0 and "rtdetr-selftest (rtdetr-edge " in capsys.readouterr().out


def test_work_never_deletes_a_users_bundle_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--work DIR replaces DIR/bundle only when it is the self-test's own copy (a rerun)."""
    from rtdetr_edge import selftest

    mine = tmp_path / "bundle"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    assert selftest.main(["--work", str(tmp_path), "--only", "bundle"]) == 1
    assert "is not the self-test's bundle copy" in capsys.readouterr().err
    assert (mine / "thesis.tex").read_text() == "years of work"
    other = tmp_path / "again"
    assert selftest.main(["--work", str(other), "--only", "bundle"]) == 0  # makes its copy
    assert selftest.main(["--work", str(other), "--only", "bundle"]) == 0  # and replaces it on a rerun
