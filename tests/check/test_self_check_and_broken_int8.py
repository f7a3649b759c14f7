"""A bundle checked against itself passes with AP exactly 1; a Q/DQ copy with mis-scaled activations is broken."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.check.perturb import scaled_activation_qdq_copy

pytest.importorskip("polygraphy")
pytest.importorskip("faster_coco_eval")

from rtdetr_edge.check import CheckOptions, run_check
from rtdetr_edge.check.detections import AP_MIN_MAX_DETS


@pytest.mark.parametrize(
    "bundle_fixture",
    [
        "tiny_bundle",  # random weights, top-k 50
        pytest.param("crowded_bundle", marks=pytest.mark.slow),  # random weights, 300 detections per image
        pytest.param("reference_bundle", marks=pytest.mark.slow),  # the shipped trained model
    ],
)
def test_a_bundle_checked_against_itself_passes_with_ap_exactly_1(
    bundle_fixture: str, request: pytest.FixtureRequest
) -> None:
    bundle: Path = request.getfixturevalue(bundle_fixture)
    report = run_check(bundle, "fp32", CheckOptions(data="synthetic", num_images=4))
    d, t = report.detections, report.tensors
    assert report.passed, report.format()
    assert d.reference_detections > 0 and d.ap == 1.0 and d.ap50 == 1.0, report.format()
    assert d.mean_iou == 1.0 and d.missed == d.extra == d.label_flips == 0
    assert t.foreground_rows > 0 and all(o.compared and o.max_abs == 0.0 for o in t.outputs.values())
    if bundle_fixture == "crowded_bundle":  # every top-k entry is pseudo ground truth: 3x COCO's maxDets
        assert d.reference_detections == d.candidate_detections == 4 * 300 > 4 * AP_MIN_MAX_DETS


def test_scaled_activation_copy_rescales_every_activation_qdq_and_no_weight(best_bundle: Path, tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    source = best_bundle / "model.int8.qdq.onnx"
    count = scaled_activation_qdq_copy(source, tmp_path / "broken.onnx", 0.05)
    before, after = onnx.load(str(source)).graph, onnx.load(str(tmp_path / "broken.onnx")).graph
    inits = {
        g: {t.name: numpy_helper.to_array(t) for t in graph.initializer} for g, graph in (("a", before), ("b", after))
    }
    pairs = list(zip(before.node, after.node))
    assert [n.op_type for n in before.node] == [n.op_type for n in after.node]
    activations = weights = 0
    for old, new in pairs:
        if old.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            assert list(old.input) == list(new.input)
            continue
        source_is_weight = old.input[0] in inits["a"] or (
            old.op_type == "DequantizeLinear"
            and any(q.output[0] == old.input[0] and q.input[0] in inits["a"] for q in before.node)
        )
        ratio = inits["b"][new.input[1]].astype(np.float64) / inits["a"][old.input[1]].astype(np.float64)
        if source_is_weight:
            weights += 1
            assert new.input[1] == old.input[1] and np.all(ratio == 1)
        else:
            activations += 1
            np.testing.assert_allclose(ratio, 0.05, rtol=1e-2)  # float16 scales round (small ones coarsely)
    assert activations == count > 0 and weights > 0
    dq_scale = {n.input[0]: n.input[1] for n in after.node if n.op_type == "DequantizeLinear"}
    for q in after.node:  # each Q and the DQ reading it keep equal (scaled) scales: they stay consistent
        if q.op_type == "QuantizeLinear" and q.output[0] in dq_scale:
            np.testing.assert_array_equal(inits["b"][dq_scale[q.output[0]]], inits["b"][q.input[1]])
    with pytest.raises(ValueError, match="no activation QuantizeLinear"):
        scaled_activation_qdq_copy(best_bundle / "model.onnx", tmp_path / "not_qdq.onnx")


def test_an_fp32_candidate_is_judged_without_resampling(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fp32 (another runtime of the same graph) is judged on point values: a single flipped label fails it."""
    from rtdetr_edge.check import api

    seen: list[int] = []
    real = api.agreement

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(int(args[8]) if len(args) > 8 else int(kwargs["resamples"]))  # type: ignore[call-overload]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(api, "agreement", spy)
    report = run_check(tiny_bundle, "fp32", CheckOptions(data="synthetic", num_images=2))
    assert seen == [0]
    # and element-wise, the worst image decides (not the p95 over images)
    assert report.tensors.outputs and all(o.q == 1.0 and o.statistic == "max" for o in report.tensors.outputs.values())
