"""``rtdetr-deepstream``: one go on a bundle, one-line errors on bad input, nothing half-written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rtdetr_edge.cli.deepstream import main

EXPECTED = {
    "README.md",
    "rtdetr-deepstream.json",
    "config_infer_primary_rtdetr.txt",
    "deepstream_app_config.txt",
    "labels.txt",
    "nvdsparsebbox_rtdetr.cpp",
    "Makefile",
    "model",
}


def test_writes_everything_in_one_go(best_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    assert main([str(best_bundle), "--out", str(out), "--streams", "4", "-q"]) == 0
    assert {p.name for p in out.iterdir()} == EXPECTED
    assert (out / "model" / "metadata.json").is_file()
    assert "batch-size=4" in (out / "config_infer_primary_rtdetr.txt").read_text()
    # again: refused without --force, replaced with it (and only a folder of ours is replaced)
    assert main([str(best_bundle), "--out", str(out), "-q"]) == 1
    assert "--force" in capsys.readouterr().err
    assert main([str(best_bundle), "--out", str(out), "--force", "--streams", "2", "-q"]) == 0
    assert "batch-size=2" in (out / "config_infer_primary_rtdetr.txt").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "a temporary folder was left behind"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--precision", "int8"], "--precision int8: the bundle"),  # the reference bundle is fp32 only
        (["--streams", "0"], "--streams 0: expected an integer in 1..64"),
        (["--streams", "65"], "--streams 65"),
        (["--conf", "1.5"], "--conf 1.5: expected a number in [0, 1]"),
        (["--tensorrt", "11.4.1"], "--tensorrt 11.4.1"),
        (["--tensorrt", "ten"], "--tensorrt 'ten'"),
        (["--out", "BUNDLE"], "is or is inside the bundle"),
        (["--out", "BUNDLE/ds"], "is or is inside the bundle"),
        (["--out", "FILE"], "exists and is not a folder"),
        (["--out", "OTHER", "--force"], "is not a folder rtdetr-deepstream wrote"),
    ],
)
def test_bad_input_is_one_line(
    reference_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    subs = {"BUNDLE": str(reference_bundle), "FILE": str(tmp_path / "file"), "OTHER": str(tmp_path / "other")}
    argv = [subs.get(a.split("/")[0], a.split("/")[0]) + ("/" + a.split("/", 1)[1] if "/" in a else "") for a in args]
    if "--out" not in args:
        argv += ["--out", str(tmp_path / "ds")]
    assert main([str(reference_bundle), *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert not (tmp_path / "ds").exists()
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"
    assert not (reference_bundle / "ds").exists()


def test_not_a_bundle_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path), "--out", str(tmp_path / "ds")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a bundle" in err and err.count("\n") == 1


def test_a_failure_leaves_nothing(best_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure while writing (here: the parser source cannot be read) keeps no partial folder."""
    import rtdetr_edge.deepstream as ds

    monkeypatch.setattr(ds, "PARSER_FILES", ("nvdsparsebbox_rtdetr.cpp", "missing.cpp"))
    with pytest.raises(FileNotFoundError):
        ds.write_deepstream(best_bundle, tmp_path / "ds", ds.DeepStreamOptions())
    assert list(tmp_path.iterdir()) == []
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_module_runs(best_bundle: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-m", "rtdetr_edge.cli.deepstream", str(best_bundle), "--out", str(tmp_path / "d"), "-q"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert "see" in res.stderr and (tmp_path / "d" / "README.md").is_file()


def test_torch_free(best_bundle: Path, tmp_path: Path) -> None:
    """rtdetr-deepstream runs where torch and the exporter's libraries cannot be imported."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for m in ('torch', 'transformers', 'onnxsim', 'onnx_graphsurgeon', 'safetensors'): sys.modules[m] = None\n"
        "from rtdetr_edge.cli.deepstream import main\n"
        f"raise SystemExit(main([{str(best_bundle)!r}, '--out', {str(tmp_path / 'd')!r}, '-q']))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_installed_with_its_parser_files_and_command() -> None:
    """pyproject.toml lists the package, ships every file of parser/ and names the console script."""
    import ast
    import fnmatch
    import re

    import rtdetr_edge.deepstream as ds

    repo = Path(__file__).resolve().parents[2]
    text = (repo / "pyproject.toml").read_text()  # (no tomllib on Python 3.10)
    found = re.search(r"^packages = (\[.*?\])", text, re.S | re.M)
    assert found is not None and "rtdetr_edge.deepstream" in ast.literal_eval(found.group(1))
    line = re.search(r'^"rtdetr_edge\.deepstream" = (\[.*\])$', text, re.M)
    assert line is not None, "pyproject.toml: no package-data for rtdetr_edge.deepstream"
    patterns = ast.literal_eval(line.group(1))
    root = Path(ds.__file__).parent
    files = [p.relative_to(root).as_posix() for p in (root / "parser").rglob("*") if p.is_file()]
    assert sorted(files) == sorted(f"parser/{n}" for n in ds.PARSER_FILES)
    assert all(any(fnmatch.fnmatch(f, pat) for pat in patterns) for f in files)
    assert re.search(r'^rtdetr-deepstream = "rtdetr_edge\.cli\.deepstream:main"$', text, re.M)
