"""The DeepStream scaling graph computes the Detector's preprocessing from nvinfer's 0-255 image.

nvinfer hands the engine ``net-scale-factor * (x - offsets)`` = the resized 0-255 image (with
``net-scale-factor=1``, ``offsets=0``). Fed that, the scaling front must write exactly the tensor
the Detector's preprocessing writes for the model (rescale, per-channel normalisation, channel
order), and the DeepStream model folder must detect what the source bundle detects. A front built
from the wrong preprocessing (normalisation left out, the scale applied twice) fails the check.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from rtdetr_edge import Detector
from rtdetr_edge.bundle import Bundle
from rtdetr_edge.contract import IMAGENET_MEAN, IMAGENET_STD, ModelContract, Preprocessing
from rtdetr_edge.deepstream import DeepStreamOptions, write_deepstream
from rtdetr_edge.export.frames import prepend_scaling
from rtdetr_edge.preprocess import Preprocessor

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "images"


def images() -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for p in sorted(SAMPLES.glob("*.jpg")):
        image = cv2.imread(str(p))
        assert image is not None, p
        out.append(image)
    rng = np.random.default_rng(3)
    out += [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((480, 640), (300, 200), (720, 1280))]
    return out


def nvinfer_input(image: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """What nvinfer feeds with net-scale-factor=1, offsets=0: the resized 0-255 image, model channel order."""
    as_is = dataclasses.replace(pre, rescale_factor=1.0, do_normalize=False, mean=(0.0,) * 3, std=(1.0,) * 3)
    x, _ = Preprocessor(as_is).batch([image])
    return x


def front_output(model: onnx.ModelProto, tensor: str, x: np.ndarray) -> np.ndarray:
    """The value of ``tensor`` (the model's own input, written by the front) for the graph input ``x``."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.graph.output.append(helper.make_tensor_value_info(tensor, TensorProto.FLOAT, None))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run([tensor], {"image": x})[0]


def identity_model(contract: ModelContract) -> onnx.ModelProto:
    """A graph that returns its input: the front alone, for any preprocessing."""
    pre = contract.preprocessing
    x = helper.make_tensor_value_info(contract.input_name, TensorProto.FLOAT, ["N", 3, pre.height, pre.width])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3, pre.height, pre.width])
    g = helper.make_graph([helper.make_node("Identity", [contract.input_name], ["out"])], "g", [x], [y])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def max_error(model: onnx.ModelProto, contract: ModelContract, scaled: ModelContract) -> float:
    worst = 0.0
    for image in images():
        want, _ = Preprocessor(contract.preprocessing).batch([image])
        got = front_output(model, contract.input_name, nvinfer_input(image, scaled.preprocessing))
        worst = max(worst, float(np.abs(got - want).max()))
    return worst


PREPROCESSINGS = {
    "rt-detr (x/255)": Preprocessing(height=64, width=96),
    "imagenet mean/std (LW-DETR, RF-DETR)": Preprocessing(
        height=80, width=64, do_normalize=True, mean=IMAGENET_MEAN, std=IMAGENET_STD
    ),
    "bgr model": Preprocessing(height=64, width=64, channel_order="BGR"),
}


@pytest.mark.parametrize("name", list(PREPROCESSINGS))
def test_the_front_is_the_detectors_preprocessing(name: str) -> None:
    contract = ModelContract(PREPROCESSINGS[name], ("a", "b"))
    model, scaled = prepend_scaling(identity_model(contract), contract)
    assert scaled.preprocessing.rescale_factor == 1.0 and not scaled.preprocessing.do_normalize
    assert [i.name for i in model.graph.input] == ["image"]
    assert max_error(model, contract, scaled) <= 1e-5


@pytest.mark.parametrize(
    "wrong",
    [
        {"do_normalize": False},  # normalisation left out
        {"rescale_factor": 1.0 / 255.0 / 255.0},  # scaled twice (nvinfer's 1/255 and the graph's)
        {"channel_order": "BGR"},  # channels swapped
    ],
    ids=["no-normalisation", "scaled-twice", "bgr"],
)
def test_a_front_from_the_wrong_preprocessing_fails(wrong: dict[str, Any]) -> None:
    contract = ModelContract(PREPROCESSINGS["imagenet mean/std (LW-DETR, RF-DETR)"], ("a", "b"))
    bad = dataclasses.replace(contract, preprocessing=dataclasses.replace(contract.preprocessing, **wrong))
    model, scaled = prepend_scaling(identity_model(bad), bad)
    assert max_error(model, contract, scaled) > 1e-2


def test_the_reference_models_deepstream_graph(reference_bundle: Path, tmp_path: Path) -> None:
    """The written model folder: its graph's front matches the Detector's preprocessing, and it detects the same."""
    folder = write_deepstream(reference_bundle, tmp_path / "ds", DeepStreamOptions(precision="fp32"))
    src, ds = Bundle(reference_bundle), Bundle(folder / "model")
    model = onnx.load(str(ds.onnx_path("fp32")))
    assert max_error(model, src.contract, ds.contract) <= 1e-5
    with Detector(reference_bundle) as a, Detector(folder / "model") as b:
        for image in images()[:4]:
            da, db = a(image), b(image)
            assert len(da) == len(db) and (da.class_ids == db.class_ids).all()
            assert np.abs(da.xyxy - db.xyxy).max(initial=0.0) <= 1e-2


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_the_typed_graphs_keep_their_precision_behind_the_front(
    best_bundle: Path, tmp_path: Path, precision: str
) -> None:
    """FP16 and Q/DQ graphs with the front (cast to their input type) detect what the bundle's do."""
    folder = write_deepstream(best_bundle, tmp_path / "ds", DeepStreamOptions(precision=precision))
    ds = Bundle(folder / "model")
    assert set(ds.precisions) == {"fp32", precision}
    with (
        Detector(best_bundle, precision=precision, conf=0.05) as a,
        Detector(folder / "model", precision=precision, conf=0.05) as b,
    ):
        for image in images()[:4]:
            da, db = a(image), b(image)
            assert len(da) == len(db) and (da.class_ids == db.class_ids).all()
            assert np.abs(da.xyxy - db.xyxy).max(initial=0.0) <= 0.05
