"""The runtime and engine-build flags of rtdetr-detect reach the TensorRT backend and the engine builder.

No GPU here: TensorRT is reported usable, the engine source and the backend constructor are
replaced by recorders, and the run stops at the backend. What they received is what a Jetson
would get.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import rtdetr_edge.detector as detector_module
from rtdetr_edge.backends.options import MemoryKind, TensorRTOptions
from rtdetr_edge.cli.detect import main as detect_main
from rtdetr_edge.engine import BundleEngines
from rtdetr_edge.engine_format import BatchProfile
from rtdetr_edge.errors import InputError

IMAGE = Path(__file__).resolve().parents[2] / "samples" / "images" / "scene_0.jpg"


@pytest.fixture()
def recorded(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def engine_for(self: BundleEngines, bundle: Any, precision: str, device: int) -> Path:
        seen.update(build=self.options, precision=precision, device=device)
        return Path("fake.engine")

    def open_backend(name: str, path: Any, onnxruntime: Any = None, tensorrt: TensorRTOptions | None = None) -> Any:
        seen.update(backend=name, path=Path(path), runtime=tensorrt)
        raise InputError("stopped by the test at the backend")

    monkeypatch.setattr(detector_module, "_tensorrt_usable", lambda device: True)
    monkeypatch.setattr(BundleEngines, "engine_for", engine_for)
    monkeypatch.setattr(detector_module, "open_backend", open_backend)
    return seen


@pytest.mark.parametrize(
    ("flags", "cuda_graph", "memory", "batch"),
    [
        (["--cuda-graph"], True, "auto", BatchProfile(1, 1, 8)),
        ([], False, "auto", BatchProfile(1, 1, 8)),
        (["--cuda-graph", "--memory", "pinned", "--engine-batch", "1,2,4"], True, "pinned", BatchProfile(1, 2, 4)),
    ],
)
def test_detect_flags_reach_tensorrt(
    tiny_bundle: Path,
    tmp_path: Path,
    recorded: dict[str, Any],
    flags: list[str],
    cuda_graph: bool,
    memory: MemoryKind,
    batch: BatchProfile,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc = detect_main(
        [
            str(IMAGE),
            "--model",
            str(tiny_bundle),
            "--backend",
            "tensorrt",
            "--precision",
            "fp32",
            "--device",
            "0",
            "--out",
            str(tmp_path / "o"),
            *flags,
        ]
    )
    assert rc == 1 and "stopped by the test at the backend" in capsys.readouterr().err
    assert recorded["backend"] == "tensorrt" and recorded["path"] == Path("fake.engine")
    assert recorded["runtime"] == TensorRTOptions(device=0, cuda_graph=cuda_graph, memory=memory)
    assert recorded["build"].batch == batch and recorded["precision"] == "fp32"


def test_without_an_engine_source_a_missing_engine_names_rtdetr_engine(
    tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rtdetr_edge import Detector
    from rtdetr_edge.errors import EngineError

    monkeypatch.setattr(detector_module, "_tensorrt_usable", lambda device: True)
    monkeypatch.setattr(detector_module, "prebuilt_engine", lambda bundle, precision, device=0: None)
    with pytest.raises(EngineError, match="rtdetr-engine"):
        Detector(tiny_bundle, backend="tensorrt")
    with Detector(tiny_bundle) as det:  # auto: no engine for this GPU -> ONNX Runtime, with a warning
        assert det.backend.name == "onnxruntime"
