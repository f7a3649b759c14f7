"""rtdetr-engine builds engines on the device; without TensorRT it says so in one line and exits 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtdetr_edge._optional import tensorrt_available
from rtdetr_edge.cli.engine import main as engine_main


@pytest.mark.skipif(tensorrt_available(), reason="this machine has TensorRT")
def test_without_tensorrt_the_engine_command_names_what_to_install(
    tiny_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert engine_main([str(tiny_bundle), "--precision", "fp32"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: 'tensorrt' is needed for rtdetr-engine"), err
    assert "pip install tensorrt" in err[0] and "JetPack" in err[0]
    assert not (tiny_bundle / "engines").exists()  # nothing was started


def test_engine_command_checks_its_bundle_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert engine_main([str(tmp_path / "nothing")]) == 1
    assert "not a bundle directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("fixture", "args", "message"),
    [
        ("best_bundle", ["--precision", "int8", "--dla-core", "0", "--batch", "1"], "INT8 on DLA needs implicit"),
        ("best_bundle", ["--precision", "fp16", "--dla-core", "0"], "--dla-core needs a static batch"),
        ("tiny_bundle", ["--precision", "int8"], "--precision int8: the bundle .* has fp32"),
        ("tiny_bundle", ["--precision", "best"], "--precision fp16: the bundle .* has fp32"),
    ],
)
def test_what_the_bundle_and_flags_refuse_comes_before_tensorrt(
    request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str], fixture: str, args: list[str], message: str
) -> None:
    """Without TensorRT too: a host can tell these are wrong, so they never wait for the device."""
    import re

    bundle = request.getfixturevalue(fixture)
    capsys.readouterr()  # what building the fixture printed
    assert engine_main([str(bundle), *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]), err


@pytest.mark.parametrize("command", ["triton", "deepstream"])
def test_a_truncated_metadata_is_named_as_unreadable(
    tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    import shutil

    from rtdetr_edge.cli import deepstream, triton

    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle, broken)
    (broken / "metadata.json").write_text((broken / "metadata.json").read_text()[:300])
    main = triton.main if command == "triton" else deepstream.main
    assert main([str(broken), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "metadata.json: unreadable" in err and "missing" not in err, err
