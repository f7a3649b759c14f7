"""Bundle integrity: artifact hashes are checked on use, artifact paths stay inside the bundle, and
an ONNX that does not match the model contract is refused when it is opened (issue 15, item 8)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from rtdetr_edge import Detector
from rtdetr_edge.bundle import Bundle
from rtdetr_edge.contract import METADATA_KEY
from rtdetr_edge.errors import BundleError


def _copy(bundle: Path, tmp_path: Path) -> Path:
    b = tmp_path / "bundle"
    shutil.copytree(bundle, b)
    return b


def _edit_meta(b: Path, **files: str) -> None:
    meta = json.loads((b / "metadata.json").read_text())
    for precision, name in files.items():
        meta["artifacts"][precision]["file"] = name
    (b / "metadata.json").write_text(json.dumps(meta))


def test_swapped_onnx_is_refused_by_its_hash(tiny_bundle: Path, tmp_path: Path) -> None:
    b = _copy(tiny_bundle, tmp_path)
    model = onnx.load(str(b / "model.onnx"))
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, "swapped": "yes"})
    onnx.save(model, str(b / "model.onnx"))
    with pytest.raises(BundleError, match=r"model\.onnx: sha256 does not match metadata\.json \(fp32: recorded "):
        Detector(b)
    with pytest.raises(BundleError, match="sha256"):
        Bundle(b).onnx_path("fp32")  # what rtdetr-check and the engine builder open
    with pytest.raises(BundleError, match="sha256"):
        Bundle(b, verify_hashes="all")
    Bundle(b, verify_hashes="never").onnx_path("fp32")  # opting out still works
    with pytest.raises(BundleError, match="verify_hashes"):
        Bundle(b, verify_hashes="sometimes")  # type: ignore[arg-type]


def test_intact_bundle_verifies_once(tiny_bundle: Path, scene: np.ndarray) -> None:
    bundle = Bundle(tiny_bundle)
    assert bundle.onnx_path() == tiny_bundle / "model.onnx"
    assert "model.onnx" in bundle._verified
    with Detector(tiny_bundle, conf=0.0, max_det=3) as det:
        assert len(det(scene)) == 3


@pytest.mark.parametrize("where", ["relative", "absolute"])
def test_artifact_paths_outside_the_bundle_are_refused(tiny_bundle: Path, tmp_path: Path, where: str) -> None:
    b = _copy(tiny_bundle, tmp_path)
    outside = tmp_path / "other" / "model.onnx"
    outside.parent.mkdir()
    shutil.copy(b / "model.onnx", outside)
    name = "../other/model.onnx" if where == "relative" else str(outside)
    _edit_meta(b, fp32=name)
    with pytest.raises(BundleError, match=r"artifacts\.fp32\.file: .* is outside the bundle"):
        Bundle(b, verify_hashes="never")
    with pytest.raises(BundleError, match="outside the bundle"):
        Detector(b)


def _renamed_outputs_onnx(tiny_bundle: Path, path: Path) -> None:
    contract = json.loads((tiny_bundle / "metadata.json").read_text())["contract"]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["features"])],
        "wrong",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 64, 64])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 3, 64, 64])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {METADATA_KEY: json.dumps(contract)})
    onnx.save(model, str(path))


def test_onnx_not_matching_the_contract_fails_when_opened(tiny_bundle: Path, tmp_path: Path) -> None:
    path = tmp_path / "wrong.onnx"
    _renamed_outputs_onnx(tiny_bundle, path)
    with pytest.raises(BundleError, match=r"wrong\.onnx: does not match the model contract: .*'scores'"):
        Detector(path)
    b = _copy(tiny_bundle, tmp_path)  # the same graph inside a bundle (hash updated: only the contract is wrong)
    shutil.copy(path, b / "model.onnx")
    meta = json.loads((b / "metadata.json").read_text())
    meta["artifacts"]["fp32"].pop("sha256")
    (b / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"model\.onnx: does not match the model contract"):
        Detector(b)
