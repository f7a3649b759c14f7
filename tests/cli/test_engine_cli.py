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
