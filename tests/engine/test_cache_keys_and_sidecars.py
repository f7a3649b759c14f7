"""Engine cache keys, file names and the JSON sidecar next to each engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rtdetr_edge.contract import METADATA_KEY, ModelContract
from rtdetr_edge.engine_format import (
    cache_key,
    load_sidecar,
    sidecar_path,
)
from rtdetr_edge.errors import EngineError
from tests.engine.fakes import CONTRACT, engine_with_sidecar, fake_meta


def test_cache_key_is_the_hash_of_the_identity() -> None:
    ident: dict[str, Any] = {"source_sha256": "a" * 64, "precision": "fp16", "device": {"sm_count": 16}}
    base = cache_key(ident)
    assert base == cache_key(dict(reversed(list(ident.items())))) and len(base) == 16  # key order does not matter
    assert cache_key({**ident, "device": {"sm_count": 8}}) != base
    # which decisions the identity holds: tests/engine/test_recipe.py (every row's key differs)


def test_sidecar_round_trip_carries_the_contract(tmp_path: Path) -> None:
    engine = engine_with_sidecar(tmp_path, 100, precision="int8", int8_mode="qdq", dla_core=0)
    d = json.loads(sidecar_path(engine).read_text())
    assert d[METADATA_KEY] == CONTRACT.to_json() and d["batch"] == [1, 1, 8] and d["format"] == "rtdetr-edge-engine"
    assert (d["sm_count"], d["memory_gib"], d["format_version"]) == (16, 61, 2)
    meta = load_sidecar(engine)
    assert meta is not None and meta.precision == "int8" and meta.int8_mode == "qdq" and meta.dla_core == 0
    assert (meta.device.name, meta.device.sm_count, meta.device.memory_gib) == ("Orin", 16, 61)
    assert ModelContract.from_json(meta.contract_json or "").class_names == ("circle", "square")
    assert load_sidecar(tmp_path / "none.engine") is None


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('{"format": "other"}', "not an rtdetr-edge engine sidecar"),
        ('{"format": "rtdetr-edge-engine", "format_version": 9}', "engine sidecar version 9; this rtdetr-edge reads"),
        # version 1: before the device identity and the recipe: rebuilt, never trusted
        ('{"format": "rtdetr-edge-engine", "format_version": 1}', "version 1; .* Rebuild the engine"),
        ('{"format": "rtdetr-edge-engine", "format_version": 2}', "invalid engine sidecar"),
    ],
)
def test_malformed_sidecars_are_refused_with_the_reason(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "x.json").write_text(content)
    with pytest.raises(EngineError, match=message):
        load_sidecar(tmp_path / "x.engine")


def test_metadata_rejects_unknown_precision_and_the_implicit_int8_kind() -> None:
    with pytest.raises(EngineError, match="precision"):
        fake_meta(precision="int4")
    with pytest.raises(EngineError, match="int8_mode 'implicit' is not one of none, qdq"):
        fake_meta(precision="int8", int8_mode="implicit")
