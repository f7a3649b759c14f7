"""Keys a processor config leaves out take that processor class's defaults; RF-DETR resizes unantialiased.

transformers 5.x: ``DeformableDetrImageProcessor`` (LW-DETR) and ``RfDetrImageProcessor`` default
to ``do_normalize=True`` with ImageNet mean/std, ``RTDetrImageProcessor`` to no normalisation;
``RfDetrImageProcessor`` rescales, then resizes with ``antialias=False``.
"""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest

from rtdetr_edge.contract import FrameInput, ModelContract, Preprocessing, preprocessing_from_processor_config
from rtdetr_edge.errors import InputError
from rtdetr_edge.export.frames import prepend_front
from rtdetr_edge.preprocess import Preprocessor, resize_interpolation

MINIMAL = {"size": {"height": 64, "width": 64}}


@pytest.mark.parametrize(
    ("processor", "normalize", "antialias"),
    [
        ("RTDetrImageProcessor", False, True),
        ("DeformableDetrImageProcessor", True, True),
        ("RfDetrImageProcessor", True, False),
    ],
)
def test_left_out_keys_take_the_processor_class_defaults(processor: str, normalize: bool, antialias: bool) -> None:
    pre = preprocessing_from_processor_config({**MINIMAL, "image_processor_type": processor})
    assert pre.do_normalize is normalize and pre.antialias is antialias
    assert pre.mean == ((0.485, 0.456, 0.406) if normalize else (0.0, 0.0, 0.0))
    explicit = preprocessing_from_processor_config(
        {**MINIMAL, "image_processor_type": processor, "do_normalize": False}
    )
    assert not explicit.do_normalize  # the config's own value wins


def test_a_contract_without_the_field_is_antialiased_as_before() -> None:
    contract = ModelContract(Preprocessing(64, 64), ("a",))
    d = contract.to_dict()
    del d["preprocessing"]["antialias"]  # a bundle written before the field existed
    assert ModelContract.from_dict(d).preprocessing.antialias is True


def test_unantialiased_contract_resizes_with_two_taps_at_every_scale() -> None:
    assert resize_interpolation((1920, 1080), (640, 640), "bilinear", antialias=False) == cv2.INTER_LINEAR
    assert resize_interpolation((1920, 1080), (640, 640), "bilinear") == cv2.INTER_AREA  # factor 3: antialiased
    image = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    plain = Preprocessor(Preprocessing(60, 60, antialias=False)).batch([image])[0]
    smooth = Preprocessor(Preprocessing(60, 60)).batch([image])[0]
    expected = cv2.resize(image, (60, 60), interpolation=cv2.INTER_LINEAR)[..., ::-1].transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(plain[0], expected, atol=1e-6)
    assert np.abs(plain - smooth).mean() > 0.01  # the two filters differ on noise at factor 5


def test_the_frame_front_refuses_an_unantialiased_model() -> None:
    contract = ModelContract(Preprocessing(64, 64, antialias=False), ("a",), extra={"model_type": "rf_detr"})
    with pytest.raises(InputError, match=r"--frame-size: the rf_detr processor resizes without antialiasing"):
        prepend_front(onnx.ModelProto(), FrameInput(width=128, height=96), contract)
