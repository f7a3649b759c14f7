"""Stand-ins for the engine tests: engine metadata, engines with sidecars, tiny ONNX graphs, bundles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, helper

from rtdetr_edge.bundle import Bundle, write_bundle
from rtdetr_edge.contract import METADATA_KEY, ModelContract, Preprocessing
from rtdetr_edge.engine_format import (
    BatchProfile,
    EngineMetadata,
    sidecar_path,
)

CONTRACT = ModelContract(Preprocessing(64, 64), ("circle", "square"))


def fake_meta(**kw: Any) -> EngineMetadata:
    base: dict[str, Any] = dict(
        tensorrt_version="10.3.0.30",
        gpu_name="Orin",
        compute_capability="8.7",
        sm_count=16,
        memory_gib=61,
        precision="fp16",
        int8_mode="none",
        batch=BatchProfile(1, 1, 8),
        onnx_sha256="ab" * 32,
        contract_json=CONTRACT.to_json(),
    )
    base.update(kw)
    return EngineMetadata(**base)


def engine_with_sidecar(tmp_path: Path, size: int = 256, **meta: Any) -> Path:
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0" * size)
    fake_meta(engine_bytes=size, **meta).save(sidecar_path(engine))
    return engine


def tiny_onnx(path: Path, qdq: bool = False, fp16: bool = False) -> Path:
    """images[N,3,8,8] -> post/sigmoid -> Softmax -> (Q/DQ) -> (Cast fp16 -> Cast fp32) -> scores."""
    nodes = [
        helper.make_node("Sigmoid", ["images"], ["post/probs"], name="post/sigmoid"),
        helper.make_node("Softmax", ["post/probs"], ["sm_out"], name="/dec/Softmax", axis=1),
    ]
    inits = []
    last = "sm_out"
    if qdq:
        inits += [
            helper.make_tensor("s", TensorProto.FLOAT, [], [0.01]),
            helper.make_tensor("z", TensorProto.INT8, [], [0]),
        ]
        nodes += [
            helper.make_node("QuantizeLinear", [last, "s", "z"], ["q"], name="q"),
            helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"], name="dq"),
        ]
        last = "dq"
    if fp16:
        nodes += [
            helper.make_node("Cast", [last], ["h"], name="to_half", to=TensorProto.FLOAT16),
            helper.make_node("Cast", ["h"], ["f"], name="to_float", to=TensorProto.FLOAT),
        ]
        last = "f"
    nodes.append(helper.make_node("Identity", [last], ["scores"], name="out"))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3, 8, 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, {METADATA_KEY: CONTRACT.to_json()})
    onnx.save(model, str(path))
    return path


def fake_bundle(
    tmp_path: Path,
    fp16: bool = True,
    int8: str | None = "qdq",
    frames: tuple[tuple[int, int], ...] = ((1280, 720),),
    name: str = "bundle",
) -> Bundle:
    """A bundle of placeholder graphs (bytes, not ONNX): what the engine recipe reads is the metadata.

    Args:
        fp16: with ``model.fp16.onnx``.
        int8: ``"qdq"`` (the FP16-typed Q/DQ graph with its FP32-typed TensorRT 8.x sibling),
            ``"legacy"`` (one FP32-typed Q/DQ graph, bundles made before the split) or None.
        frames: frame sizes each precision also has a frame-input graph for.
    """
    files: dict[str, Any] = {}
    artifacts: dict[str, Any] = {}
    stems = {"fp32": "model", "fp16": "model.fp16", "int8": "model.int8.qdq"}
    for precision in ("fp32", "fp16", "int8"):
        if (precision == "fp16" and not fp16) or (precision == "int8" and int8 is None):
            continue
        stem = stems[precision]
        art: dict[str, Any] = {"file": f"{stem}.onnx", "precision": precision, "frames": {}}
        files[f"{stem}.onnx"] = stem.encode()
        if precision == "int8" and int8 == "qdq":
            art["trt8_file"] = f"{stem}.trt8.onnx"
            files[f"{stem}.trt8.onnx"] = b"fp32-typed " + stem.encode()
        for w, h in frames:
            entry: dict[str, Any] = {"file": f"{stem}.frames-{w}x{h}.onnx", "frame": {"width": w, "height": h}}
            files[entry["file"]] = f"{stem} {w}x{h}".encode()
            if "trt8_file" in art:
                entry["trt8_file"] = f"{stem}.trt8.frames-{w}x{h}.onnx"
                files[entry["trt8_file"]] = f"fp32-typed {stem} {w}x{h}".encode()
            art["frames"][f"{w}x{h}"] = entry
        artifacts[precision] = art
    files["calib/ranges.json"] = json.dumps(
        {"format": "rtdetr-edge-int8-ranges", "version": 1, "ranges": {"images": 1.0}}
    ).encode()
    meta = {"contract": CONTRACT.to_dict(), "artifacts": artifacts}
    return Bundle(write_bundle(tmp_path / name, meta, files))
