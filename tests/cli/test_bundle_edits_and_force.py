"""A bundle whose files were edited, and ``--force`` over a bundle with a user's files (issue 24, items 3 and 5).

* Adding a precision in place checks the artifacts it derives from: a swapped or truncated file
  is a one-line error, never re-hashed into the new metadata (or a protobuf traceback).
* ``metadata.json``'s contract is cross-checked with the one inside the artifact: edited class
  names or input size fail when the model is opened, naming the field.
* ``rtdetr-build --force`` replaces only what a build writes; a user's files and the engines
  still built from the bundle's ONNX are kept, and said so; engines of a replaced ONNX are left out.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from tests.helpers import Cli


@pytest.fixture()
def bundle(tiny_bundle: Path, tmp_path: Path) -> Path:
    out = tmp_path / "b"
    shutil.copytree(tiny_bundle, out)
    return out


def _swap(b: Path) -> None:
    (b / "model.onnx").write_bytes((b / "model.onnx").read_bytes().replace(b"rtdetr", b"RTDETR", 1))


def _truncate(b: Path) -> None:
    data = (b / "model.onnx").read_bytes()
    (b / "model.onnx").write_bytes(data[: len(data) // 3])


@pytest.mark.parametrize("damage", [_swap, _truncate], ids=["swapped", "truncated"])
def test_adding_a_precision_in_place_checks_the_artifacts_first(cli: Cli, bundle: Path, damage) -> None:
    damage(bundle)
    before = (bundle / "metadata.json").read_bytes()
    line = cli("rtdetr-build", "--model", str(bundle), "--out", str(bundle), "--precision", "fp16").one_line_error()
    assert "model.onnx: sha256 does not match metadata.json" in line
    assert (bundle / "metadata.json").read_bytes() == before
    assert not (bundle / "model.fp16.onnx").exists()


def _edit_contract(b: Path, change) -> None:
    meta = json.loads((b / "metadata.json").read_text())
    change(meta["contract"])
    (b / "metadata.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda c: c["class_names"].__setitem__(0, "dragon"), "class_names"),
        (lambda c: c["preprocessing"].update(height=c["preprocessing"]["height"] * 2), "preprocessing"),
    ],
    ids=["class_names", "input_size"],
)
def test_an_edited_contract_fails_when_opened(bundle: Path, change, field: str) -> None:
    from rtdetr_edge import Detector
    from rtdetr_edge.errors import BundleError

    _edit_contract(bundle, change)
    with pytest.raises(
        BundleError, match=rf"metadata.json: the model contract differs from the one inside .*model.onnx \({field}: "
    ):
        Detector(bundle)


def test_an_edited_contract_is_refused_when_adding_a_precision(cli: Cli, bundle: Path) -> None:
    _edit_contract(bundle, lambda c: c["class_names"].__setitem__(0, "dragon"))
    line = cli("rtdetr-build", "--model", str(bundle), "--out", str(bundle), "--precision", "fp16").one_line_error()
    assert "the model contract differs" in line and "class_names" in line


def _engine(engines: Path, name: str, onnx_sha256: str) -> None:
    from rtdetr_edge.engine_format import BatchProfile, sidecar_path
    from tests.engine.fakes import fake_meta

    engines.mkdir(exist_ok=True)
    (engines / name).write_bytes(b"plan")
    fake_meta(precision="fp32", batch=BatchProfile(1, 1, 1), onnx_sha256=onnx_sha256).save(sidecar_path(engines / name))


@pytest.mark.slow
def test_force_keeps_what_the_build_does_not_write(
    tiny_model_dir: Path, bundle: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from rtdetr_edge.build import BuildOptions, build_bundle
    from rtdetr_edge.export.options import ExportOptions

    fp32 = json.loads((bundle / "metadata.json").read_text())["artifacts"]["fp32"]["sha256"]
    (bundle / "NOTES.md").write_text("my notes")
    _engine(bundle / "engines", "same.engine", fp32)  # the export is deterministic: still this ONNX
    _engine(bundle / "engines", "old.engine", "0" * 64)  # built from an ONNX the rebuild replaces
    (bundle / "engines" / "timing.cache").write_bytes(b"t")
    with caplog.at_level(logging.WARNING, logger="rtdetr_edge"):
        build_bundle(tiny_model_dir, bundle, BuildOptions(force=True, export=ExportOptions(top_k=50)))
    assert (bundle / "NOTES.md").read_text() == "my notes"
    assert sorted(p.name for p in (bundle / "engines").iterdir()) == ["same.engine", "same.json", "timing.cache"]
    text = caplog.text
    assert "kept what the build does not write" in text and "NOTES.md" in text and "engines/" in text
    assert "left out 1 TensorRT engine(s)" in text and "old.engine" in text


@pytest.mark.parametrize(("edited", "fails"), [(False, False), (True, True)])
def test_an_edited_contract_fails_against_an_engine_sidecar(bundle: Path, edited: bool, fails: bool) -> None:
    """On TensorRT the opened artifact is an engine: its sidecar carries its ONNX's contract."""
    from rtdetr_edge.bundle import Bundle
    from rtdetr_edge.detector import _check_embedded_contract
    from rtdetr_edge.engine_format import BatchProfile, sidecar_path
    from rtdetr_edge.errors import BundleError
    from tests.engine.fakes import fake_meta

    engine = bundle / "engines" / "x.engine"
    engine.parent.mkdir()
    engine.write_bytes(b"plan")
    contract = Bundle(bundle).contract.to_json()
    fake_meta(precision="fp32", batch=BatchProfile(1, 1, 1), onnx_sha256="0", contract_json=contract).save(
        sidecar_path(engine)
    )
    if edited:
        _edit_contract(bundle, lambda c: c["class_names"].__setitem__(0, "dragon"))

    class StubEngine:
        name = "tensorrt"

        def describe(self) -> dict[str, str]:
            return {"file": str(engine)}

    if fails:
        with pytest.raises(BundleError, match=r"differs from the one inside .*x\.engine \(class_names: "):
            _check_embedded_contract(StubEngine(), Bundle(bundle))  # type: ignore[arg-type]
    else:
        _check_embedded_contract(StubEngine(), Bundle(bundle))  # type: ignore[arg-type]
