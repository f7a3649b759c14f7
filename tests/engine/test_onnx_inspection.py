"""What the engine builder reads from an ONNX before TensorRT sees it, and how parser errors are worded."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtdetr_edge.bundle import Bundle
from rtdetr_edge.contract import ModelContract
from rtdetr_edge.engine import builder
from rtdetr_edge.engine.cache import inspect_onnx
from rtdetr_edge.engine_recipe import DEFAULT_FP32_LAYERS
from rtdetr_edge.errors import EngineError
from tests.engine.fakes import CONTRACT, tiny_onnx


def test_onnx_inspection_finds_inputs_qdq_fp16_and_fp32_hints(tmp_path: Path) -> None:
    plain = inspect_onnx(tiny_onnx(tmp_path / "a.onnx"), DEFAULT_FP32_LAYERS)
    assert plain.inputs == {"images": (-1, 3, 8, 8)} and plain.batch_bounds == (1, 0)
    assert not plain.has_qdq and not plain.has_fp16 and plain.contract_json == CONTRACT.to_json()
    assert plain.hints.fp32_nodes == {"post/sigmoid", "/dec/Softmax"}
    assert plain.hints.fp32_tensors == {"post/probs", "sm_out"}
    assert plain.hints.node_ops[:2] == ("Sigmoid", "Softmax") and len(plain.sha256) == 64
    mixed = inspect_onnx(tiny_onnx(tmp_path / "b.onnx", qdq=True, fp16=True), ("post/*",))
    assert mixed.has_qdq and mixed.has_fp16 and mixed.hints.fp32_nodes == {"post/sigmoid"}
    with pytest.raises(EngineError, match="no such ONNX"):
        inspect_onnx(tmp_path / "none.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(EngineError, match="not a readable ONNX"):
        inspect_onnx(tmp_path / "bad.onnx")


def test_parser_errors_name_the_node() -> None:
    text = builder.format_parser_errors(
        "m.onnx",
        [
            builder.ParserIssue(
                12, "/model/encoder/GridSample_3", "GridSample", "No importer registered", "UNSUPPORTED_NODE"
            ),
            builder.ParserIssue(-1, "", "", "graph has no outputs"),
        ],
    )
    assert "node 12 GridSample '/model/encoder/GridSample_3': No importer registered [UNSUPPORTED_NODE]" in text
    assert "the graph: graph has no outputs" in text and "opset 17" in text


def test_exported_bundle_onnx_has_dynamic_batch_contract_and_fp32_hints(tiny_bundle: Path) -> None:
    """The real exporter's graph: dynamic batch, contract inside, FP32 hints find LayerNorm/Softmax/post tail."""
    bundle = Bundle(tiny_bundle)
    facts = inspect_onnx(bundle.onnx_path("fp32"), DEFAULT_FP32_LAYERS, bundle.artifact("fp32").get("sha256"))
    assert list(facts.inputs) == [bundle.contract.input_name] and facts.inputs[bundle.contract.input_name][0] == -1
    assert facts.contract_json is not None
    assert ModelContract.from_json(facts.contract_json).class_names == bundle.contract.class_names
    assert not facts.has_qdq and not facts.has_fp16
    ops = dict(zip(facts.hints.node_names, facts.hints.node_ops))
    kept = {ops[n] for n in facts.hints.fp32_nodes}
    assert {"Softmax", "Sigmoid"} <= kept, kept
    assert any(n.startswith("post/") for n in facts.hints.fp32_nodes), sorted(facts.hints.fp32_nodes)[:10]
    assert set(bundle.contract.output_names) & facts.hints.fp32_tensors  # the tail ends in the outputs
