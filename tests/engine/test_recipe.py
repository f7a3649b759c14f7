"""The engine recipe as a table: every TensorRT line x precision x input x device that matters, no TensorRT.

Each row says what :func:`rtdetr_edge.engine_recipe.recipe` decides for a bundle with every graph
(fp32, fp16, the FP16-typed Q/DQ graph and its FP32-typed TensorRT 8.x sibling, each also as a
1280x720 frame-input graph): the source file, strongly typed or not, builder flags, FP32 pins, TF32,
the DLA route, or the one-line refusal. The cache keys of all rows are distinct.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rtdetr_edge.engine_format import PRECISIONS, BatchProfile, DeviceIdentity
from rtdetr_edge.engine_recipe import (
    DEFAULT_FP32_LAYERS,
    EngineBuildOptions,
    bundle_graphs,
    recipe,
    tensorrt_line,
)
from rtdetr_edge.errors import EngineError
from tests.engine.fakes import fake_bundle

ORIN = DeviceIdentity("Orin", "8.7", 16, 61)
P, G = "PREFER_PRECISION_CONSTRAINTS", "GPU_FALLBACK"
PINS = DEFAULT_FP32_LAYERS
F = "frames-1280x720"
# expected: (source file, strongly typed, builder flags, pins, TF32, DLA route) or a refusal's words
ROWS: list[tuple[str, str, str, str, Any]] = [
    # TensorRT 8.6 (JetPack 6.0): weak typing, the FP32-typed Q/DQ graph for INT8, FP32 pins
    ("8.6.2", "fp32", "tensor", "gpu", ("model.onnx", False, (), (), False, None)),
    ("8.6.2", "fp16", "tensor", "gpu", ("model.onnx", False, ("FP16", P), PINS, True, None)),
    ("8.6.2", "int8", "tensor", "gpu", ("model.int8.qdq.trt8.onnx", False, ("INT8", "FP16", P), PINS, True, None)),
    ("8.6.2", "fp32", "frames", "gpu", (f"model.{F}.onnx", False, (), (), False, None)),
    ("8.6.2", "fp16", "frames", "gpu", (f"model.{F}.onnx", False, ("FP16", P), PINS, False, None)),
    (
        "8.6.2",
        "int8",
        "frames",
        "gpu",
        (f"model.int8.qdq.trt8.{F}.onnx", False, ("INT8", "FP16", P), PINS, False, None),
    ),
    ("8.6.2", "fp32", "tensor", "dla", "DLA runs FP16 or INT8 only"),
    ("8.6.2", "fp16", "tensor", "dla", ("model.onnx", False, ("FP16", P, G), PINS, True, "polygraphy")),
    ("8.6.2", "int8", "tensor", "dla", "INT8 on DLA needs implicit quantization"),
    ("8.6.2", "fp16", "frames", "dla", (f"model.{F}.onnx", False, ("FP16", P, G), PINS, False, "polygraphy")),
    # TensorRT 10.3 (JetPack 6.1/6.2): strongly typed from the typed graphs; DLA weakly typed (<= 10.7)
    ("10.3.0", "fp32", "tensor", "gpu", ("model.onnx", False, (), (), False, None)),
    ("10.3.0", "fp16", "tensor", "gpu", ("model.fp16.onnx", True, (), (), False, None)),
    ("10.3.0", "int8", "tensor", "gpu", ("model.int8.qdq.onnx", True, (), (), False, None)),
    ("10.3.0", "fp32", "frames", "gpu", (f"model.{F}.onnx", False, (), (), False, None)),
    ("10.3.0", "fp16", "frames", "gpu", (f"model.fp16.{F}.onnx", True, (), (), False, None)),
    ("10.3.0", "int8", "frames", "gpu", (f"model.int8.qdq.{F}.onnx", True, (), (), False, None)),
    ("10.3.0", "fp32", "tensor", "dla", "DLA runs FP16 or INT8 only"),
    ("10.3.0", "fp16", "tensor", "dla", ("model.onnx", False, ("FP16", P, G), PINS, True, "polygraphy")),
    ("10.3.0", "int8", "tensor", "dla", "INT8 on DLA needs implicit quantization"),
    ("10.3.0", "int8", "frames", "dla", "INT8 on DLA needs implicit quantization"),
    ("10.7.0", "fp16", "tensor", "dla", ("model.onnx", False, ("FP16", P, G), PINS, True, "polygraphy")),
    ("10.8.0", "fp16", "tensor", "dla", "10.7 was the last 10.x release with DLA"),
    # TensorRT 10.16 (JetPack 7.2): as 10.3 on the GPU; no DLA after 10.7
    ("10.16.1", "fp32", "tensor", "gpu", ("model.onnx", False, (), (), False, None)),
    ("10.16.1", "fp16", "tensor", "gpu", ("model.fp16.onnx", True, (), (), False, None)),
    ("10.16.1", "int8", "tensor", "gpu", ("model.int8.qdq.onnx", True, (), (), False, None)),
    ("10.16.1", "int8", "frames", "gpu", (f"model.int8.qdq.{F}.onnx", True, (), (), False, None)),
    ("10.16.1", "fp16", "tensor", "dla", "10.7 was the last 10.x release with DLA"),
    ("10.16.1", "int8", "tensor", "dla", "INT8 on DLA needs implicit quantization"),
    # TensorRT 11.4.1 (JetPack >= 7.2.2): strongly typed always; DLA strongly typed, set directly
    ("11.4.1", "fp32", "tensor", "gpu", ("model.onnx", True, (), (), False, None)),
    ("11.4.1", "fp16", "tensor", "gpu", ("model.fp16.onnx", True, (), (), False, None)),
    ("11.4.1", "int8", "tensor", "gpu", ("model.int8.qdq.onnx", True, (), (), False, None)),
    ("11.4.1", "fp32", "frames", "gpu", (f"model.{F}.onnx", True, (), (), False, None)),
    ("11.4.1", "fp16", "frames", "gpu", (f"model.fp16.{F}.onnx", True, (), (), False, None)),
    ("11.4.1", "int8", "frames", "gpu", (f"model.int8.qdq.{F}.onnx", True, (), (), False, None)),
    ("11.4.1", "fp32", "tensor", "dla", "DLA runs FP16 or INT8 only"),
    ("11.4.1", "fp16", "tensor", "dla", ("model.fp16.onnx", True, (G,), (), False, "direct")),
    ("11.4.1", "int8", "tensor", "dla", "INT8 on DLA needs implicit quantization"),
    ("11.4.1", "fp16", "frames", "dla", (f"model.fp16.{F}.onnx", True, (G,), (), False, "direct")),
    ("11.4.0", "fp16", "tensor", "dla", "11.0-11.4.0 have none"),
    ("11.1.0", "fp16", "tensor", "dla", "11.0-11.4.0 have none"),
    ("11.5.0", "fp16", "tensor", "dla", "11.5 supports no JetPack"),
    # the rest of the 4 x 3 x 2 x 2 grid of the lines above
    ("8.6.2", "fp32", "frames", "dla", "DLA runs FP16 or INT8 only"),
    ("8.6.2", "int8", "frames", "dla", "INT8 on DLA needs implicit quantization"),
    ("10.3.0", "fp32", "frames", "dla", "DLA runs FP16 or INT8 only"),
    ("10.3.0", "fp16", "frames", "dla", (f"model.{F}.onnx", False, ("FP16", P, G), PINS, False, "polygraphy")),
    ("10.16.1", "fp32", "tensor", "dla", "DLA runs FP16 or INT8 only"),
    ("10.16.1", "fp32", "frames", "gpu", (f"model.{F}.onnx", False, (), (), False, None)),
    ("10.16.1", "fp32", "frames", "dla", "DLA runs FP16 or INT8 only"),
    ("10.16.1", "fp16", "frames", "gpu", (f"model.fp16.{F}.onnx", True, (), (), False, None)),
    ("10.16.1", "fp16", "frames", "dla", "10.7 was the last 10.x release with DLA"),
    ("10.16.1", "int8", "frames", "dla", "INT8 on DLA needs implicit quantization"),
    ("11.4.1", "fp32", "frames", "dla", "DLA runs FP16 or INT8 only"),
    ("11.4.1", "int8", "frames", "dla", "INT8 on DLA needs implicit quantization"),
    # lines that are not supported at all
    ("8.5.2", "fp16", "tensor", "gpu", "too old"),
    ("9.2.0", "fp16", "tensor", "gpu", "supports TensorRT 8.6, 10.x and 11.x"),
    ("12.0.0", "fp16", "tensor", "gpu", "supports TensorRT 8.6, 10.x and 11.x"),
]


def _options(device: str) -> EngineBuildOptions:
    return EngineBuildOptions(batch=BatchProfile(1, 1, 1), dla_core=0) if device == "dla" else EngineBuildOptions()


@pytest.fixture(scope="module")
def full_bundle(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return fake_bundle(tmp_path_factory.mktemp("recipe"))


def _row_id(row: tuple[str, str, str, str, Any]) -> str:
    return "-".join(row[:4])


@pytest.mark.parametrize(("version", "precision", "inputs", "device", "expected"), ROWS, ids=map(_row_id, ROWS))
def test_recipe_table(full_bundle: Any, version: str, precision: str, inputs: str, device: str, expected: Any) -> None:
    graphs = bundle_graphs(full_bundle, (1280, 720) if inputs == "frames" else None)
    if isinstance(expected, str):
        with pytest.raises(EngineError, match=expected):
            recipe(graphs, precision, version, _options(device))
        return
    r = recipe(graphs, precision, version, _options(device))
    got = (r.source.file, r.strongly_typed, r.builder_flags, r.fp32_pins, r.tf32, r.dla_route)
    assert got == expected
    assert r.source.sha256 == _recorded_sha(full_bundle, r.source.file)  # the hash the bundle recorded
    assert r.frame_size == ((1280, 720) if inputs == "frames" else None)
    assert len(r.cache_key(ORIN)) == 16


def _recorded_sha(bundle: Any, file: str) -> str:
    for art in bundle.artifacts.values():
        for entry in [art, *(art.get("frames") or {}).values()]:
            for name, sha in (("file", "sha256"), ("trt8_file", "trt8_sha256")):
                if entry.get(name) == file:
                    return str(entry[sha])
    raise AssertionError(f"{file} is not in the bundle's metadata")


def test_the_table_covers_every_combination_of_the_named_lines() -> None:
    import itertools

    grid = itertools.product(("8.6.2", "10.3.0", "10.16.1", "11.4.1"), PRECISIONS, ("tensor", "frames"), ("gpu", "dla"))
    assert set(grid) <= {row[:4] for row in ROWS}


def test_every_row_names_a_different_engine(full_bundle: Any) -> None:
    keys: dict[str, str] = {}
    for row in ROWS:
        version, precision, inputs, device, expected = row
        if isinstance(expected, str):
            continue
        graphs = bundle_graphs(full_bundle, (1280, 720) if inputs == "frames" else None)
        r = recipe(graphs, precision, version, _options(device))
        key = r.cache_key(ORIN)
        assert key not in keys, f"{_row_id(row)} and {keys.get(key)} share a cache key"
        keys[key] = _row_id(row)
        assert r.cache_key(ORIN) == key  # stable


@pytest.mark.parametrize(
    ("version", "precision", "bundle_kw", "expected"),
    [
        # bundles without the typed graphs (made before them): 10.x takes the weakly typed route, 11 cannot
        ("10.3.0", "fp16", {"fp16": False}, ("model.onnx", False, ("FP16", P))),
        ("11.4.1", "fp16", {"fp16": False}, "no float16 graph \\(model.fp16.onnx\\)"),
        ("10.3.0", "int8", {"int8": "legacy"}, ("model.int8.qdq.onnx", False, ("INT8", "FP16", P))),
        ("8.6.2", "int8", {"int8": "legacy"}, ("model.int8.qdq.onnx", False, ("INT8", "FP16", P))),
        ("11.4.1", "int8", {"int8": "legacy"}, "no FP16-typed Q/DQ graph"),
        ("10.3.0", "int8", {"int8": None}, "no FP16-typed Q/DQ graph"),
    ],
)
def test_bundles_without_a_typed_graph(
    tmp_path: Path, version: str, precision: str, bundle_kw: dict[str, Any], expected: Any
) -> None:
    graphs = bundle_graphs(fake_bundle(tmp_path, **bundle_kw))
    if isinstance(expected, str):
        with pytest.raises(EngineError, match=expected):
            recipe(graphs, precision, version, EngineBuildOptions())
        return
    r = recipe(graphs, precision, version, EngineBuildOptions())
    assert (r.source.file, r.strongly_typed, r.builder_flags) == expected


def test_what_the_user_chooses_reaches_the_key_and_the_pins(full_bundle: Any) -> None:
    graphs = bundle_graphs(full_bundle)
    base = recipe(graphs, "fp16", "8.6.2", EngineBuildOptions())
    no_pins = recipe(graphs, "fp16", "8.6.2", EngineBuildOptions(fp32_layers=()))
    assert no_pins.fp32_pins == () and no_pins.builder_flags == ("FP16",)  # nothing pinned: no constraints
    other_batch = recipe(graphs, "fp16", "8.6.2", EngineBuildOptions(batch=BatchProfile(1, 4, 8)))
    faster = recipe(graphs, "fp16", "8.6.2", EngineBuildOptions(workspace_mib=512, builder_optimization_level=5))
    keys = {r.cache_key(ORIN) for r in (base, no_pins, other_batch)}
    assert len(keys) == 3
    assert faster.cache_key(ORIN) == base.cache_key(ORIN)  # build-speed knobs do not change the engine
    # the options a sidecar recorded give the same recipe back (the lookups recompute it from them)
    again = EngineBuildOptions.from_dict(other_batch.options.to_dict())
    assert recipe(graphs, "fp16", "8.6.2", again).cache_key(ORIN) == other_batch.cache_key(ORIN)
    with pytest.raises(EngineError, match="unknown build options int8_mode"):
        EngineBuildOptions.from_dict({**base.options.to_dict(), "int8_mode": "implicit"})


def test_dla_needs_a_static_batch(full_bundle: Any) -> None:
    """A dynamic profile on DLA would leave every layer to the GPU (GPU fallback on): refused in one line."""
    with pytest.raises(EngineError, match="--dla-core needs a static batch \\(--batch N\\), got 1,1,8"):
        recipe(bundle_graphs(full_bundle), "fp16", "10.3.0", EngineBuildOptions(dla_core=0))


def test_the_batch_profile_is_clamped_to_the_graphs_range(full_bundle: Any) -> None:
    graphs = bundle_graphs(full_bundle)
    static = type(graphs)(graphs.origin, graphs.graphs, (1, 1), None)
    assert recipe(static, "fp32", "10.3.0", EngineBuildOptions()).profile == BatchProfile(1, 1, 1)


@pytest.mark.parametrize(
    ("device", "same"),
    [
        (DeviceIdentity("Orin", "8.7", 16, 61), True),
        (DeviceIdentity("Orin", "8.7", 8, 7), False),  # an Orin Nano 8 GB: same name and compute capability
        (DeviceIdentity("Orin", "8.7", 16, 30), False),  # the memory alone differs
        (DeviceIdentity("NVIDIA A10", "8.6", 72, 22), False),
    ],
)
def test_device_identity_splits_keys_and_timing_caches(full_bundle: Any, device: DeviceIdentity, same: bool) -> None:
    r = recipe(bundle_graphs(full_bundle), "int8", "10.3.0", EngineBuildOptions())
    assert (r.cache_key(device) == r.cache_key(ORIN)) is same
    assert (r.timing_cache_name(device) == r.timing_cache_name(ORIN)) is same
    assert r.timing_cache_name(ORIN).startswith("timing_trt10.3.0_sm87_")
    assert r.file_name(ORIN).startswith("int8_b1-1-8_trt10.3.0_sm87_")


@pytest.mark.parametrize(
    ("version", "line"), [("8.6.1.6", "8.6"), ("10.3.0.30", "10"), ("10.16.1.11", "10"), ("11.4.1", "11")]
)
def test_tensorrt_lines(version: str, line: str) -> None:
    assert tensorrt_line(version) == line
