"""Engines built by another TensorRT or on another GPU, and truncated or altered engine files, are refused by name."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

from rtdetr_edge.engine_format import (
    DeviceIdentity,
    check_compatible,
    check_engine_file,
    incompatibility,
    load_sidecar,
)
from rtdetr_edge.errors import EngineError
from tests.engine.fakes import engine_with_sidecar, fake_meta

AGX = DeviceIdentity("Orin", "8.7", 16, 61)


@pytest.mark.parametrize(
    "version, device, message",
    [
        ("10.3.0.30", AGX, None),
        ("8.6.2.3", AGX, "built with TensorRT 10.3.0.30 and this machine runs TensorRT 8.6.2.3"),
        ("10.3.0.31", AGX, "only loads in the TensorRT version that built it"),
        (
            "10.3.0.30",
            DeviceIdentity("Tesla T4", "7.5", 40, 15),
            re.escape("built for a Orin (compute capability 8.7, 16 SMs, 61 GiB) and this GPU is a Tesla T4 (compute"),
        ),
        ("10.3.0.30", DeviceIdentity("NVIDIA A10", "8.7", 16, 61), "built on a Orin .* and this GPU is a NVIDIA A10"),
        # every Orin module is an "Orin" of compute capability 8.7: the SMs and the memory tell them apart
        (
            "10.3.0.30",
            DeviceIdentity("Orin", "8.7", 8, 7),
            "this GPU is a Orin \\(compute capability 8.7, 8 SMs, 7 GiB\\)",
        ),
        ("10.3.0.30", DeviceIdentity("Orin", "8.7", 16, 30), "16 SMs, 30 GiB\\) \\(same compute capability"),
    ],
)
def test_engine_from_another_tensorrt_or_gpu_is_refused_by_name(
    version: str, device: DeviceIdentity, message: str | None
) -> None:
    why = incompatibility(fake_meta(), version, device)
    if message is None:
        assert why is None
        check_compatible(fake_meta(), version, device)
    else:
        assert why is not None and re.search(message, why), why
        with pytest.raises(EngineError, match="Rebuild it on this machine"):
            check_compatible(fake_meta(), version, device, engine="m.engine")


def test_truncated_empty_missing_and_altered_engine_files(tmp_path: Path) -> None:
    engine = engine_with_sidecar(tmp_path, 256)
    meta = load_sidecar(engine)
    assert check_engine_file(engine, meta) == 256
    engine.write_bytes(b"\0" * 100)
    with pytest.raises(EngineError, match="truncated or altered: 100 bytes, its sidecar says 256"):
        check_engine_file(engine, meta)
    engine.write_bytes(b"")
    with pytest.raises(EngineError, match="empty"):
        check_engine_file(engine, meta)
    with pytest.raises(EngineError, match="no such engine file"):
        check_engine_file(tmp_path / "gone.engine", None)
    engine.write_bytes(b"\1" * 256)
    assert meta is not None
    meta.engine_sha256 = "0" * 64
    with pytest.raises(EngineError, match="sha256"):
        check_engine_file(engine, meta, verify_hash=True)


def test_backend_refuses_truncated_engine_before_loading(fake_trt: types.ModuleType, tmp_path: Path) -> None:
    from rtdetr_edge.backends.tensorrt import TensorRTBackend

    engine = engine_with_sidecar(tmp_path, 256)
    engine.write_bytes(b"\0" * 10)
    with pytest.raises(EngineError, match="truncated"):
        TensorRTBackend(engine)


def test_backend_refuses_engine_from_another_tensorrt(fake_trt: types.ModuleType, tmp_path: Path) -> None:
    from rtdetr_edge.backends.tensorrt import TensorRTBackend

    engine = engine_with_sidecar(tmp_path, 256, tensorrt_version="8.6.1.6")
    with pytest.raises(
        EngineError, match=r"built with TensorRT 8\.6\.1\.6 and this machine runs TensorRT 10\.3\.0\.30"
    ):
        TensorRTBackend(engine)
