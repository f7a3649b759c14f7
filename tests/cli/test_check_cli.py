"""rtdetr-check from the command line, in-process: exit codes, JSON, one-line user errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.check.perturb import perturbed_copy
from tests.helpers import Cli

pytest.importorskip("polygraphy")
pytest.importorskip("faster_coco_eval")

from rtdetr_edge._optional import tensorrt_available
from rtdetr_edge.cli.check import main as check_main


def test_passing_check_exits_0_and_failing_check_exits_1(cli: Cli, tiny_bundle: Path, tmp_path: Path) -> None:
    bad = tmp_path / "perturbed.onnx"
    perturbed_copy(tiny_bundle / "model.onnx", bad)
    ok = cli("rtdetr-check", str(tiny_bundle), "--num-images", "2", "--json", str(tmp_path / "ok.json"))
    assert ok.code == 0, ok.err
    assert "candidate fp32" in ok.out and ok.out.rstrip().endswith("PASS")
    assert json.loads((tmp_path / "ok.json").read_text())["passed"] is True
    fail = cli("rtdetr-check", str(tiny_bundle), "--candidate", str(bad), "--num-images", "2", "-q")
    assert fail.code == 1 and "Traceback" not in fail.err, fail.err
    assert "FAIL: post/probs: max |d|" in fail.out and not fail.err.strip()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--candidate", "bf16"], "--candidate bf16: not one of fp32, fp16, int8"),
        (["--candidate", "int8"], "no int8 artifact; the bundle has fp32"),
        (["--candidate", "{tmp}/notes.txt"], "notes.txt: expected an .onnx file or a TensorRT engine"),
        (["--candidate", "{tmp}/broken.onnx"], "broken.onnx: not a readable ONNX model"),
        (["--reference", "model.engine"], "--reference model.engine: not one of"),
        (["--atol", "post/prob=0.1"], "--atol post/prob=...: unknown output"),
        (["--rtol", "1", "--rtol", "2"], "--rtol '1': give one bare value"),
        (["--data", "/no/such/folder"], "--data /no/such/folder: not an existing folder"),
        (["--num-images", "0"], "--num-images must be >= 1"),
        (["--conf", "1.5"], "--conf must be in [0, 1]"),
    ],
)
def test_user_errors_are_one_line(
    tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (tmp_path / "notes.txt").write_text("not a model")
    (tmp_path / "broken.onnx").write_bytes(b"\x08\x07garbage")
    assert check_main([str(tiny_bundle), *[a.replace("{tmp}", str(tmp_path)) for a in args]]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


@pytest.mark.skipif(tensorrt_available(), reason="TensorRT is installed here")
def test_tensorrt_runner_without_tensorrt_names_the_install(
    tiny_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check_main([str(tiny_bundle), "--runner", "tensorrt"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --runner tensorrt: TensorRT cannot be imported") and "pip install tensorrt" in err


def test_a_folder_that_is_not_a_bundle_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check_main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a bundle" in err and len(err.strip().splitlines()) == 1
