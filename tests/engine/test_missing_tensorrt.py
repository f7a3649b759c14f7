"""Without TensorRT (or with its type stubs only, or without a GPU) every entry point names the way to install it."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from rtdetr_edge.backends import trt_logging
from rtdetr_edge.errors import EngineError, InputError, MissingDependencyError
from tests.engine.fakes import engine_with_sidecar, fake_bundle


def test_missing_tensorrt_names_the_route(no_trt: None, tmp_path: Path) -> None:
    from rtdetr_edge.backends import open_backend
    from rtdetr_edge.backends.tensorrt import TensorRTBackend

    for call in (
        lambda: trt_logging.load_tensorrt(),
        lambda: TensorRTBackend(tmp_path / "m.engine"),
        lambda: open_backend("tensorrt", tmp_path / "m.engine"),
    ):
        with pytest.raises(MissingDependencyError) as info:
            call()
        assert "JetPack's system TensorRT" in str(info.value) and "pip install tensorrt" in str(info.value)
    assert trt_logging.tensorrt_usable() is False


def test_type_stubs_alone_are_not_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    """tensorrt-stubs installs a ``tensorrt`` directory that imports as an empty namespace package."""
    stub = types.ModuleType("tensorrt")
    stub.__path__ = ["/site-packages/tensorrt"]
    monkeypatch.setitem(sys.modules, "tensorrt", stub)
    with pytest.raises(MissingDependencyError, match="type stubs only"):
        trt_logging.load_tensorrt()
    assert trt_logging.tensorrt_usable() is False


def test_detector_on_an_engine_without_tensorrt(no_trt: None, tmp_path: Path) -> None:
    from rtdetr_edge import Detector

    engine = engine_with_sidecar(tmp_path)
    with pytest.raises(MissingDependencyError, match="JetPack"):
        Detector(engine)


def test_engine_for_bundle_without_gpu(fake_trt: types.ModuleType, tmp_path: Path) -> None:
    from rtdetr_edge.cuda import buffers
    from rtdetr_edge.engine import engine_for_bundle

    if buffers.device_count() > 0:
        pytest.skip("this machine has a CUDA device")
    bundle = fake_bundle(tmp_path)
    with pytest.raises(EngineError, match="CUDA device 0 is not available"):
        engine_for_bundle(bundle, "fp32")
    with pytest.raises(InputError, match="precision"):
        engine_for_bundle(bundle, "best")
