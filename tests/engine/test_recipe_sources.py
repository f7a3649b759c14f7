"""The file a recipe names is the bundle's, unaltered: checked against the recorded sha256 before a build."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtdetr_edge.bundle import Bundle
from rtdetr_edge.engine.cache import bundle_recipe, checked_source
from rtdetr_edge.engine_recipe import EngineBuildOptions
from rtdetr_edge.errors import BundleError
from tests.engine.fakes import fake_bundle


@pytest.mark.parametrize(
    ("version", "precision", "frames", "swapped"),
    [
        ("8.6.2", "int8", None, "model.int8.qdq.trt8.onnx"),
        ("10.3.0", "int8", None, "model.int8.qdq.onnx"),
        ("10.3.0", "fp16", None, "model.fp16.onnx"),
        ("8.6.2", "fp16", None, "model.onnx"),
        ("10.3.0", "int8", (1280, 720), "model.int8.qdq.frames-1280x720.onnx"),
    ],
)
def test_the_graph_an_engine_is_built_from_is_hash_checked(
    tmp_path: Path, version: str, precision: str, frames: tuple[int, int] | None, swapped: str
) -> None:
    bundle = fake_bundle(tmp_path)
    r = bundle_recipe(bundle, precision, EngineBuildOptions(), version, frames)
    assert r.source.file == swapped
    assert checked_source(Bundle(bundle.path), r) == bundle.path / swapped
    (bundle.path / swapped).write_bytes(b"replaced after the build")
    with pytest.raises(BundleError, match=f"{swapped}: sha256 does not match"):
        checked_source(Bundle(bundle.path), r)
    checked_source(Bundle(bundle.path, verify_hashes="never"), r)  # a bundle opened without hash checks
