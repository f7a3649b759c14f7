"""One recipe, four consumers: change one row of the recipe table and ``rtdetr-engine``, the Detector's engine
lookup, ``rtdetr-check``'s TensorRT runner and ``rtdetr-triton`` all follow it.

TensorRT cannot run here: a fake ``tensorrt`` module gives the version, a fake CUDA driver the device
(an AGX Orin), and the builder call that would run Polygraphy returns placeholder bytes and records the
recipe it was handed (tests/engine/fake_tensorrt.py). Everything else is the production code.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from rtdetr_edge import engine_recipe
from rtdetr_edge.bundle import Bundle
from rtdetr_edge.check._trt import trt_runner
from rtdetr_edge.check.models import ModelSpec
from rtdetr_edge.cli import engine as engine_cli
from rtdetr_edge.detector import prebuilt_engine
from rtdetr_edge.engine_format import BatchProfile
from rtdetr_edge.engine_recipe import EngineBuildOptions
from rtdetr_edge.serving.repository import RepositoryOptions, write_repository
from tests.engine import fake_tensorrt as fake


def _engine_cli(bundle: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert engine_cli.main([str(bundle), "--precision", "fp16", "--batch", "1,4,8"]) == 0
    return Path(capsys.readouterr().out.strip().splitlines()[-1])


def _check_runner_source(bundle: Path, built: list[Any], tmp_path: Path) -> str:
    spec = ModelSpec("candidate", "fp16", "fp16", bundle / "model.fp16.onnx", "onnx", "tensorrt", True)
    work = tmp_path / "check"
    work.mkdir(exist_ok=True)
    trt_runner(spec, Bundle(bundle), work, EngineBuildOptions(batch=BatchProfile(1, 4, 8)))
    r = built[-1]
    assert r.source.path == work / "fp16.marked.onnx"  # the deployed source, with its pre-top-k tensors marked
    return str(r.builder_flags) + " " + ("strong" if r.strongly_typed else "weak")


def _triton(bundle: Path, out: Path) -> tuple[bytes | None, str]:
    repo = write_repository(bundle, out, RepositoryOptions(precision="fp16"))
    plan = repo / "rtdetr_detector" / "1" / "model.plan"
    ten = next(line for line in (repo / "README.md").read_text().splitlines() if line.lstrip().startswith("trtexec "))
    return (plan.read_bytes() if plan.is_file() else None), ten


def test_one_row_changed_and_the_four_consumers_follow(
    best_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(best_bundle, bundle)
    built = fake.builds_without_tensorrt(monkeypatch, "10.3.0.30")

    # today's row for fp16 on TensorRT 10.x: strongly typed from the float16 graph
    first = _engine_cli(bundle, capsys)
    assert built[-1].source.file == "model.fp16.onnx" and built[-1].strongly_typed
    assert prebuilt_engine(Bundle(bundle), "fp16") == first
    assert _check_runner_source(bundle, built, tmp_path) == "() strong"
    plan, command = _triton(bundle, tmp_path / "repo1")
    assert plan == first.read_bytes()
    assert "build/model.fp16.onnx" in command and "--stronglyTyped" in command and "--fp16" not in command

    # one row changed: fp16 on TensorRT 10.x now the FP16 builder flag on model.onnx with FP32 pins
    monkeypatch.setitem(engine_recipe.ROUTES, ("10", "fp16", "gpu"), (engine_recipe.ROUTES[("8.6", "fp16", "gpu")][0],))
    assert prebuilt_engine(Bundle(bundle), "fp16") is None  # the old engine is not today's recipe's
    plan, command = _triton(bundle, tmp_path / "repo2")
    assert plan is None  # nor is it the plan any more
    assert "build/model.onnx" in command and "--fp16 --precisionConstraints=prefer --layerPrecisions=" in command
    assert _check_runner_source(bundle, built, tmp_path) == "('FP16', 'PREFER_PRECISION_CONSTRAINTS') weak"
    second = _engine_cli(bundle, capsys)
    assert second != first and first.is_file()  # a new engine; the old one stays (another machine's, maybe)
    assert built[-1].source.file == "model.onnx" and built[-1].fp32_pins
    assert prebuilt_engine(Bundle(bundle), "fp16") == second
    plan, _ = _triton(bundle, tmp_path / "repo3")
    assert plan == second.read_bytes()


def test_an_engine_for_another_orin_module_is_not_taken(
    best_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Built on an AGX Orin (16 SMs, 61 GiB), copied to an Orin Nano (8 SMs, 7 GiB): both are "Orin", sm 8.7."""
    bundle = tmp_path / "bundle"
    shutil.copytree(best_bundle, bundle)
    fake.builds_without_tensorrt(monkeypatch, "10.3.0.30")
    agx = _engine_cli(bundle, capsys)
    timing_caches = sorted(p.name for p in (bundle / "engines").glob("timing_*"))
    monkeypatch.setattr(fake.buffers, "_DRIVER", fake.FakeDriver(sm_count=8, memory_gib=7))
    assert prebuilt_engine(Bundle(bundle), "fp16") is None
    nano = _engine_cli(bundle, capsys)
    assert nano != agx and prebuilt_engine(Bundle(bundle), "fp16") == nano
    from rtdetr_edge.engine_format import load_sidecar

    meta = load_sidecar(nano)
    assert meta is not None and (meta.sm_count, meta.memory_gib) == (8, 7)
    assert timing_caches == []  # the placeholder builder writes no timing cache; the names differ per device:
    r = engine_recipe.recipe(engine_recipe.bundle_graphs(Bundle(bundle)), "fp16", "10.3.0.30", EngineBuildOptions())
    assert r.timing_cache_name(meta.device) != r.timing_cache_name(load_sidecar(agx).device)  # type: ignore[union-attr]
