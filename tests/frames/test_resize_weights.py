"""The frame front's resize against Pillow's own (what the model's Hugging Face processor runs).

The numpy model of the front (:func:`rtdetr_edge.export.frames.pillow_resize_reference`) and the ONNX
front itself (ONNX Runtime) are compared with ``PIL.Image.resize`` on noise (the hardest input
for rounding), on the shipped sample scenes and on a smooth gradient, table-driven over sizes and
filters.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from PIL import Image

from rtdetr_edge.contract import FrameInput, ModelContract, Preprocessing
from rtdetr_edge.errors import InputError
from rtdetr_edge.export.frames import (
    front_op_faults,
    parse_frame_size,
    pillow_resize_reference,
    prepend_front,
    resample_weights,
    resize_order,
)
from tests.helpers import SAMPLES

PIL_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
# (frame width, height) -> (input width, height): camera sizes to the model size, odd sizes, upscaling,
# one axis unchanged, and a portrait frame (Pillow runs its vertical pass first there)
SIZES = [
    ((1920, 1080), (64, 64)),
    ((1280, 720), (64, 64)),
    ((640, 480), (64, 64)),
    ((97, 61), (64, 64)),
    ((40, 30), (64, 64)),
    ((64, 200), (64, 64)),
    ((300, 64), (64, 64)),
    ((72, 128), (64, 64)),
    ((1280, 720), (640, 640)),
]


def _noise(w: int, h: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _pillow(rgb: np.ndarray, size: tuple[int, int], resample: str) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize(size, PIL_FILTERS[resample])).astype(np.float64)


@pytest.mark.parametrize("resample", sorted(PIL_FILTERS))
@pytest.mark.parametrize("src, dst", SIZES, ids=[f"{s[0]}x{s[1]}-{d[0]}x{d[1]}" for s, d in SIZES])
def test_numpy_front_is_pillow_exactly(src: tuple[int, int], dst: tuple[int, int], resample: str) -> None:
    rgb = _noise(*src)
    ours = pillow_resize_reference(rgb, dst[0], dst[1], resample)
    assert np.array_equal(ours, _pillow(rgb, dst, resample))


def test_unrounded_or_float_weights_are_not_pillow() -> None:
    """The gate above can fail: without the per-pass rounding, or in the other pass order, it does."""
    rgb = _noise(1280, 720)
    ref = _pillow(rgb, (64, 64), "bicubic")
    rounded_once = np.clip(np.floor(pillow_resize_reference(rgb, 64, 64, "bicubic", rounding=False) + 0.5), 0, 255)
    assert np.abs(rounded_once - ref).max() >= 1  # rounding only at the end is not Pillow
    tall = _noise(72, 128)
    assert resize_order((128, 72), (64, 64)) == "yx"
    ref_tall = _pillow(tall, (64, 64), "bilinear")
    x = np.clip(np.floor(np.einsum("jx,yxc->yjc", resample_weights(72, 64), tall.astype(np.float64)) + 0.5), 0, 255)
    xy = np.clip(np.floor(np.einsum("iy,yxc->ixc", resample_weights(128, 64), x) + 0.5), 0, 255)
    assert np.abs(xy - ref_tall).max() >= 1  # columns first is not what Pillow does for this frame


def test_weights_rows_sum_to_one_and_antialias() -> None:
    w = resample_weights(1920, 640, "bilinear", fixed_point=False)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    # a 3x downscale widens the bilinear support to 3 source pixels each side (antialiased): 5
    # non-zero taps, where plain bilinear sampling has 2
    assert int((w[320] > 0).sum()) == 5
    up = resample_weights(320, 640, "bilinear", fixed_point=False)
    assert int((up[320] > 0).sum()) == 2


def _identity_model(h: int, w: int) -> onnx.ModelProto:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["out"], name="id")],
        "id",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, h, w])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3, h, w])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _contract(h: int, w: int, resample: str = "bilinear", **pre: object) -> ModelContract:
    return ModelContract(Preprocessing(height=h, width=w, resample=resample, **pre), ("a",), output_names=("out",))  # type: ignore[arg-type]


def _run_front(frames: np.ndarray, contract: ModelContract) -> np.ndarray:
    import onnxruntime as ort

    h, w = frames.shape[1:3]
    pre = contract.preprocessing
    model, report = prepend_front(_identity_model(pre.height, pre.width), FrameInput(width=w, height=h), contract)
    assert report.nodes > 0 and not front_op_faults(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {"frames": frames})[0])


@pytest.mark.parametrize("resample", sorted(PIL_FILTERS))
@pytest.mark.parametrize("src", [(1280, 720), (640, 480), (72, 128)], ids=str)
def test_onnx_front_matches_pillow(src: tuple[int, int], resample: str) -> None:
    """ONNX Runtime's float32 MatMuls: within one grey level of Pillow, off by one on at most 2%.

    Pillow sums 22-bit fixed-point products exactly, so a sum that is exactly half-way rounds up;
    float32 cannot hold those sums exactly (its ulp at 128 is 2^-16), so near-ties can go either way.
    """
    bgr = np.stack([_noise(*src, seed=1), _noise(*src, seed=2)])
    out = _run_front(bgr, _contract(64, 64, resample))
    assert out.shape == (2, 3, 64, 64) and out.dtype == np.float32
    for i in range(2):
        ref = _pillow(np.ascontiguousarray(bgr[i][..., ::-1]), (64, 64), resample).transpose(2, 0, 1) / 255.0
        d = np.abs(out[i] - ref) * 255.0
        assert d.max() <= 1.0 + 1e-3 and (d > 0.5).mean() <= 0.02


def test_onnx_front_on_sample_scenes_and_normalisation() -> None:
    """Real JPEG content (the sample scenes), BGR order, mean/std normalisation: as the processor computes it."""
    import cv2

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    contract = _contract(64, 48, "bilinear", do_normalize=True, mean=mean, std=std)
    for path in sorted((SAMPLES / "images").glob("*.jpg"))[:2]:
        bgr = cv2.imread(str(path))
        assert bgr is not None
        out = _run_front(bgr[None], contract)[0]
        rgb = np.ascontiguousarray(bgr[..., ::-1])
        ref = (_pillow(rgb, (48, 64), "bilinear") / 255.0 - np.array(mean)) / np.array(std)
        np.testing.assert_allclose(out, ref.transpose(2, 0, 1), atol=1.01 / 255 / min(std))


@pytest.mark.parametrize("text", ["12x", "0x0", "x720", "1280*720", "-1x5", "axb", "9000x10"])
def test_frame_size_parse_errors(text: str) -> None:
    with pytest.raises(InputError, match=r"--frame-size") as err:
        parse_frame_size(text)
    assert "\n" not in str(err.value)


def test_frame_size_parse() -> None:
    assert parse_frame_size("1280x720") == (1280, 720)
    assert parse_frame_size("640X480") == (640, 480)


def test_op_check_fails_on_an_op_tensorrt_8_6_cannot_take() -> None:
    from onnx import helper

    contract = _contract(64, 64)
    model, _ = prepend_front(_identity_model(64, 64), FrameInput(width=128, height=96), contract)
    assert front_op_faults(model) == []
    model.graph.node.insert(1, helper.make_node("Resize", ["x"], ["y"], name="frame/bad"))
    model.graph.node.append(helper.make_node("Identity", ["frames"], ["z"], name="reads_uint8"))
    faults = front_op_faults(model)
    assert any("frame/bad" in f and "Resize" in f for f in faults)
    assert any("reads_uint8" in f for f in faults)
    model.opset_import[0].version = 19
    assert any("opset 19" in f for f in front_op_faults(model))
