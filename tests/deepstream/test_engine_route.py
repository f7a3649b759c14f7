"""The DeepStream config's engine is the one ``rtdetr-engine`` builds from the engine recipe.

TensorRT cannot run here: the fake ``tensorrt`` of tests/engine/fake_tensorrt.py gives the version
and device, and records the recipe the builder is handed. The README's ``rtdetr-engine`` command,
run on the DeepStream folder's ``model/``, must build exactly the recipe the config was written
for (source graph, typing, batch profile 1,N,N), on each TensorRT line; and when a recipe row
changes, a rewritten folder follows it.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from rtdetr_edge import engine_recipe
from rtdetr_edge.cli import engine as engine_cli
from rtdetr_edge.deepstream import DeepStreamOptions, write_deepstream
from tests.engine import fake_tensorrt as fake


def _readme_engine_command(folder: Path) -> list[str]:
    text = (folder / "README.md").read_text()
    m = re.search(r'cp "\$\((rtdetr-engine [^)]*)\)" (\S+)', text)
    assert m, "the README has no rtdetr-engine command"
    return shlex.split(m.group(1))


@pytest.mark.parametrize(("version", "precision"), [("10.3.0.30", "int8"), ("8.6.2", "int8"), ("10.16.1.7", "fp16")])
def test_rtdetr_engine_builds_the_configs_recipe(
    best_bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    version: str,
    precision: str,
) -> None:
    tensorrt = ".".join(version.split(".")[:3])
    folder = write_deepstream(
        best_bundle, tmp_path / "ds", DeepStreamOptions(precision=precision, streams=4, tensorrt=tensorrt)
    )
    built = fake.builds_without_tensorrt(monkeypatch, version)
    cmd = _readme_engine_command(folder)
    assert cmd[:2] == ["rtdetr-engine", "model"]
    monkeypatch.chdir(folder)  # the README runs it in the folder
    assert engine_cli.main(cmd[1:]) == 0
    engine = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert engine.is_file() and engine.resolve().is_relative_to((folder / "model").resolve())
    marker = json.loads((folder / "rtdetr-deepstream.json").read_text())
    assert built[-1].decision() == marker["engine"]["recipe"]
    assert built[-1].profile.as_tuple() == (1, 4, 4)


def test_a_changed_recipe_row_reaches_the_config(
    best_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fp16 on TensorRT 10.x strongly typed today; the weak FP16-flag row instead: the config's recipe follows."""
    first = write_deepstream(best_bundle, tmp_path / "a", DeepStreamOptions(precision="fp16"))
    before = json.loads((first / "rtdetr-deepstream.json").read_text())["engine"]["recipe"]
    assert before["source"] == "model.fp16.onnx" and before["strongly_typed"]
    weak = engine_recipe.ROUTES[("8.6", "fp16", "gpu")][0]
    monkeypatch.setitem(engine_recipe.ROUTES, ("10", "fp16", "gpu"), (weak,))
    second = write_deepstream(best_bundle, tmp_path / "b", DeepStreamOptions(precision="fp16"))
    after = json.loads((second / "rtdetr-deepstream.json").read_text())["engine"]["recipe"]
    assert after["source"] == "model.onnx" and not after["strongly_typed"] and after["fp32_pins"]
    assert "--fp16 --precisionConstraints=prefer" in (second / "README.md").read_text()
