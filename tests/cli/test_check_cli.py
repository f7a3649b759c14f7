"""rtdetr-check from the command line, in-process: exit codes, JSON, one-line user errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.check.perturb import perturbed_copy, scaled_activation_qdq_copy
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


def _edited_copy(
    src: Path, out: Path, rename_input: str = "", drop_output: str = "", rename_nodes: bool = False
) -> Path:
    """A copy of an ONNX with its input renamed, an output dropped, or every node renamed (same I/O)."""
    import onnx

    model = onnx.load(str(src))
    graph = model.graph
    if rename_input:
        old = graph.input[0].name
        graph.input[0].name = rename_input
        for node in graph.node:
            node.input[:] = [rename_input if name == old else name for name in node.input]
    if drop_output:
        kept = [o for o in graph.output if o.name != drop_output]
        del graph.output[:]
        graph.output.extend(kept)
    if rename_nodes:  # what another exporter or optimiser leaves: no post/sigmoid, no post/gather_boxes
        for k, node in enumerate(graph.node):
            node.name = f"n{k}"
    onnx.save(model, str(out))
    return out


@pytest.mark.parametrize(
    "edit, wrong",
    [
        ({"rename_input": "pixel_values"}, "no input 'images'; other inputs 'pixel_values'"),
        ({"drop_output": "labels"}, "outputs scores, boxes lack labels"),
    ],
)
def test_a_candidate_without_the_bundles_io_is_a_one_line_error(
    tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: dict[str, str], wrong: str
) -> None:
    other = _edited_copy(tiny_bundle / "model.onnx", tmp_path / "other.onnx", **edit)  # type: ignore[arg-type]
    assert check_main([str(tiny_bundle), "--candidate", str(other), "--num-images", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --candidate {other}: not the bundle's I/O"), err
    assert wrong in err[0] and "expected input 'images' [N,3,64,64] and outputs scores, labels, boxes" in err[0], err


def test_any_onnx_with_the_bundles_io_is_checked_and_the_summary_passes(
    cli: Cli, tiny_bundle: Path, tmp_path: Path
) -> None:
    foreign = _edited_copy(tiny_bundle / "model.onnx", tmp_path / "foreign.onnx", rename_nodes=True)
    result = cli(
        "rtdetr-check", str(tiny_bundle), "--candidate", "fp32", "--candidate", str(foreign), "--num-images", "2"
    )
    assert result.code == 0, result.out + result.err
    assert "candidate foreign.onnx" in result.out and "post/probs  only on one side, not compared" in result.out
    assert result.out.rstrip().splitlines()[-1] == "PASS: 2/2 candidates within tolerance"


def test_the_last_line_names_each_failed_candidate_and_its_criteria(
    cli: Cli, best_bundle: Path, shapes_data: Path, tmp_path: Path
) -> None:
    """fp16 of the tiny model passes; its INT8 copy with activation scales x0.05 fails, and the summary says so."""
    broken = tmp_path / "broken.onnx"
    scaled_activation_qdq_copy(best_bundle / "model.int8.qdq.onnx", broken, 0.05)
    out = tmp_path / "check.json"
    args = [str(best_bundle), "--data", str(shapes_data), "--json", str(out)]
    result = cli("rtdetr-check", *args, "--candidate", "fp16", "--candidate", str(broken), "-q")
    assert result.code == 1 and "Traceback" not in result.err, result.err
    last = result.out.rstrip().splitlines()[-1]
    checks = {c["candidate"]["label"]: c for c in json.loads(out.read_text())["checks"]}
    assert checks["fp16"]["passed"] and not checks["broken.onnx"]["passed"]
    assert last == f"FAIL: broken.onnx: {'; '.join(checks['broken.onnx']['failures'])}", last
    assert "fp16" not in last and "pred_boxes: max |d|" in last and "AP " in last
    alone = cli("rtdetr-check", *args, "--candidate", str(broken), "-q")  # one candidate: its own verdict line
    own = alone.out.rstrip().splitlines()[-1]
    assert alone.code == 1 and own.startswith("  FAIL: ") and "pred_boxes: max |d|" in own, own


def test_an_int8_candidate_prints_the_bundles_precision_plan_first(cli: Cli, best_bundle: Path) -> None:
    res = cli("rtdetr-check", str(best_bundle), "--candidate", "int8", "--num-images", "2", "-q")
    assert res.code in (0, 1), res.err
    head = res.out.splitlines()[0]
    assert head.startswith("bundle int8 (model.int8.qdq.onnx): precision plan: ") and "int8 " in head
    assert res.out.index("precision plan") < res.out.index("candidate int8")
    fp16 = cli("rtdetr-check", str(best_bundle), "--candidate", "fp16", "--num-images", "2", "-q")
    assert "precision plan" not in fp16.out
