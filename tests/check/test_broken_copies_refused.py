"""Each deliberately broken copy (tests/check/perturb.py) is refused by the verdict; a sound one is not."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.check.perturb import perturbed_class_head_copy, scaled_activation_qdq_copy

pytest.importorskip("polygraphy")
pytest.importorskip("faster_coco_eval")

from rtdetr_edge.check import CheckOptions, check_bundle_dir, run_checks
from rtdetr_edge.check.detections import AP_RATIO
from rtdetr_edge.check.verdict import NOISE_FACTOR

FIRST_LAYER = "embedder.0/activation/Relu_output_0"


def test_one_layer_copy_rescales_only_that_layers_activation_qdq(best_bundle: Path, tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    source = best_bundle / "model.int8.qdq.onnx"
    assert scaled_activation_qdq_copy(source, tmp_path / "x20.onnx", 20.0, FIRST_LAYER) == 2  # its Q and its DQ
    before, after = onnx.load(str(source)).graph, onnx.load(str(tmp_path / "x20.onnx")).graph
    old = {t.name: numpy_helper.to_array(t) for t in before.initializer}
    new = {t.name: numpy_helper.to_array(t) for t in after.initializer}
    changed = [(a, b) for a, b in zip(before.node, after.node) if list(a.input) != list(b.input)]
    assert len(changed) == 2 and all(FIRST_LAYER in a.input[0] or FIRST_LAYER in a.name for a, _ in changed)
    for a, b in changed:
        np.testing.assert_allclose(new[b.input[1]] / old[a.input[1]], 20.0, rtol=1e-2)
    with pytest.raises(ValueError, match="no_such_tensor"):
        scaled_activation_qdq_copy(source, tmp_path / "none.onnx", 20.0, "no_such_tensor")


def test_class_head_copy_perturbs_only_the_last_class_head(best_bundle: Path, tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    source = best_bundle / "model.int8.qdq.onnx"
    node = perturbed_class_head_copy(source, tmp_path / "head.onnx")
    assert "/class_embed." in node
    before = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(source)).graph.initializer}
    after = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(tmp_path / "head.onnx")).graph.initializer}
    differ = [n for n in before if not np.array_equal(before[n], after[n])]
    assert len(differ) == 1
    model = onnx.load(str(source))
    for n in model.graph.node:
        n.name = n.name.replace("/class_embed.", "/other.")
    onnx.save(model, str(tmp_path / "no_head.onnx"))
    with pytest.raises(ValueError, match="no class_embed"):
        perturbed_class_head_copy(tmp_path / "no_head.onnx", tmp_path / "y.onnx")


def test_int8_verdict_passes_fp32_itself_and_refuses_its_class_head_perturbed(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    """The full INT8 verdict (fp32's noise, quantile gates, intervals) on the tiny model: a copy
    identical to fp32 passes as an INT8 candidate; the same with its class head perturbed does not."""
    same, head = tmp_path / "same.onnx", tmp_path / "head.onnx"
    shutil.copy(tiny_bundle / "model.onnx", same)
    perturbed_class_head_copy(tiny_bundle / "model.onnx", head, 0.5)
    good, bad = run_checks(
        tiny_bundle, [str(same), str(head)], CheckOptions(data="synthetic", num_images=12, tolerances="int8")
    )
    assert good.candidate.precision == bad.candidate.precision == "int8"
    assert good.passed, good.format()
    assert good.data["fp32_noise"]["tensors"] and not bad.passed and bad.failures, bad.format()
    for o in good.tensors.outputs.values():  # INT8's tolerance: max(floor, 8 x fp32's p95 under input noise)
        assert o.noise is not None and o.floor is not None and o.noise_factor == NOISE_FACTOR["int8"] == 8.0
        assert o.tolerance.atol == pytest.approx(max(o.floor, o.noise_factor * o.noise)), o


def test_fp32_noise_sets_int8_tolerances_above_the_floor(
    tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tiny model barely moves under input noise (its floors decide); with a large factor the noise must."""
    same = tmp_path / "same.onnx"
    shutil.copy(tiny_bundle / "model.onnx", same)
    monkeypatch.setitem(NOISE_FACTOR, "int8", 1e4)
    (report,) = run_checks(tiny_bundle, [str(same)], CheckOptions(data="synthetic", num_images=4, tolerances="int8"))
    noise = report.data["fp32_noise"]["tensors"]
    for name, o in report.tensors.outputs.items():
        assert noise[name] > 0 and o.floor is not None and o.tolerance.atol > o.floor, (name, o)
        assert o.tolerance.atol == pytest.approx(1e4 * noise[name]), (name, o)


@pytest.mark.slow
def test_reference_int8_is_kept_and_each_broken_copy_refused(reference_bundle: Path, tmp_path: Path) -> None:
    """The build's own verdict (check_bundle_dir, 100 held-out images) on the reference model's INT8
    calibrated on 500 generated images (seed 7), and on three broken copies of its Q/DQ graph."""
    from rtdetr_edge.build import BuildOptions, add_precisions, default_precision
    from rtdetr_edge.bundle import Bundle
    from rtdetr_edge.calib import CalibrationOptions
    from rtdetr_edge.data import synth

    calib = synth.generate(tmp_path / "calib", 500, seed=7)
    opts = BuildOptions(precision="int8", calibration=CalibrationOptions(calib=str(calib), cache_dir=None))
    built = add_precisions(reference_bundle, tmp_path / "int8", opts)
    metadata = Bundle(built).metadata
    assert metadata["default_precision"] == "int8"
    report = json.loads((built / "report.json").read_text())
    assert report["check"]["images"] == 100  # not capped at 50
    # --precision best judges INT8's accuracy on this interval (rtdetr_edge.build._accuracy_failures)
    interval = report["check"]["int8"]["detections"]["intervals"][AP_RATIO]
    assert interval["low"] <= interval["value"] <= interval["high"] and interval["high"] >= 0.99
    best = dataclasses.replace(opts, precision="best")
    assert "--int8-target" not in default_precision(best, metadata["artifacts"], report["check"], None, None)[1]
    broken = {
        "act x0.05": lambda src, out: scaled_activation_qdq_copy(src, out, 0.05),
        "one layer x20": lambda src, out: scaled_activation_qdq_copy(src, out, 20.0, FIRST_LAYER),
        "class head noise": lambda src, out: perturbed_class_head_copy(src, out, 0.5),
    }
    for name, make in broken.items():
        copy = tmp_path / name.replace(" ", "_")
        shutil.copytree(built, copy)
        int8 = copy / metadata["artifacts"]["int8"]["file"]
        make(int8, tmp_path / "broken.onnx")
        shutil.move(tmp_path / "broken.onnx", int8)
        check = check_bundle_dir(copy, metadata, ["int8"], num_images=100)
        assert check["images"] == 100 and not check["int8"]["passed"], name
        assert default_precision(opts, metadata["artifacts"], check, None, None)[0] == "fp16", name
