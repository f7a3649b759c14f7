"""Engine cache keys, file names and the JSON sidecar next to each engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rtdetr_edge.contract import METADATA_KEY, ModelContract
from rtdetr_edge.engine_format import (
    BatchProfile,
    cache_key,
    engine_file_name,
    load_sidecar,
    sidecar_path,
)
from rtdetr_edge.errors import EngineError
from tests.engine.fakes import CONTRACT, engine_with_sidecar, fake_meta

KEY_ARGS: dict[str, Any] = dict(
    onnx_sha256="a" * 64,
    precision="fp16",
    trt_version="10.3.0.30",
    gpu_name="Orin",
    compute_capability="8.7",
    batch=BatchProfile(1, 1, 8),
    dla_core=None,
    int8_mode="none",
    extra=None,
)


@pytest.mark.parametrize(
    "field, other",
    [
        ("onnx_sha256", "b" * 64),
        ("precision", "int8"),
        ("trt_version", "10.3.0.31"),
        ("gpu_name", "Xavier"),
        ("compute_capability", "7.2"),
        ("batch", BatchProfile(1, 1, 4)),
        ("dla_core", 0),
        ("int8_mode", "qdq"),
        ("extra", {"fp32_layers": ["Softmax"]}),
    ],
)
def test_cache_key_changes_with_every_field(field: str, other: Any) -> None:
    base = cache_key(**KEY_ARGS)
    assert base == cache_key(**KEY_ARGS) and len(base) == 16
    assert cache_key(**{**KEY_ARGS, field: other}) != base


def test_engine_file_name_spells_out_precision_batch_version_and_gpu() -> None:
    name = engine_file_name("fp16", BatchProfile(1, 1, 8), "10.3.0.30", "8.7", "0123456789abcdef")
    assert name == "fp16_b1-1-8_trt10.3.0_sm87_0123456789abcdef.engine"
    assert "_dla1_" in engine_file_name("int8", BatchProfile(1, 1, 1), "8.6.1.6", "7.2", "k", dla_core=1)


def test_sidecar_round_trip_carries_the_contract(tmp_path: Path) -> None:
    engine = engine_with_sidecar(tmp_path, 100, precision="int8", int8_mode="qdq", dla_core=0)
    d = json.loads(sidecar_path(engine).read_text())
    assert d[METADATA_KEY] == CONTRACT.to_json() and d["batch"] == [1, 1, 8] and d["format"] == "rtdetr-edge-engine"
    meta = load_sidecar(engine)
    assert meta is not None and meta.precision == "int8" and meta.int8_mode == "qdq" and meta.dla_core == 0
    assert ModelContract.from_json(meta.contract_json or "").class_names == ("circle", "square")
    assert load_sidecar(tmp_path / "none.engine") is None


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('{"format": "other"}', "not an rtdetr-edge engine sidecar"),
        ('{"format": "rtdetr-edge-engine", "format_version": 9}', "unknown engine sidecar version 9"),
        ('{"format": "rtdetr-edge-engine", "format_version": 1}', "invalid engine sidecar"),
    ],
)
def test_malformed_sidecars_are_refused_with_the_reason(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "x.json").write_text(content)
    with pytest.raises(EngineError, match=message):
        load_sidecar(tmp_path / "x.engine")


def test_metadata_rejects_unknown_precision() -> None:
    with pytest.raises(EngineError, match="precision"):
        fake_meta(precision="int4")
