"""The contract from each family's own image-processor config (issue 16).

LW-DETR's ``DeformableDetrImageProcessor`` (and RF-DETR's) configs carry ``do_pad`` and ImageNet
mean/std; the published LW-DETR checkpoints use a fixed ``{"height": 640, "width": 640}`` size
(e.g. stevenbucaille/lwdetr_tiny_30e_objects365), where padding to the batch's largest image is a
no-op. The class default, ``shortest_edge``/``longest_edge``, keeps the aspect ratio and pads:
refused in one line.
"""

from __future__ import annotations

import pytest

from rtdetr_edge.contract import preprocessing_from_processor_config
from rtdetr_edge.errors import BundleError

LW_DETR_HUB = {  # the preprocessor_config.json of a published LW-DETR checkpoint
    "do_convert_annotations": True,
    "do_normalize": True,
    "do_pad": True,
    "do_rescale": True,
    "do_resize": True,
    "format": "coco_detection",
    "image_mean": [0.485, 0.456, 0.406],
    "image_processor_type": "DeformableDetrImageProcessor",
    "image_std": [0.229, 0.224, 0.225],
    "pad_size": None,
    "resample": 2,
    "rescale_factor": 0.00392156862745098,
    "size": {"height": 640, "width": 640},
}


def test_lw_detr_hub_config_gives_imagenet_normalisation_at_640() -> None:
    pre = preprocessing_from_processor_config(LW_DETR_HUB)
    assert (pre.height, pre.width, pre.resample, pre.do_normalize) == (640, 640, "bilinear", True)
    assert pre.mean == (0.485, 0.456, 0.406) and pre.std == (0.229, 0.224, 0.225)
    assert pre.rescale_factor == pytest.approx(1 / 255)


def test_pad_size_equal_to_the_size_is_a_no_op_too() -> None:
    pre = preprocessing_from_processor_config({**LW_DETR_HUB, "pad_size": {"height": 640, "width": 640}})
    assert (pre.height, pre.width) == (640, 640)


def test_padding_beyond_the_size_is_one_line() -> None:
    with pytest.raises(BundleError, match=r"x: do_pad with pad_size .* pads the 640x640 image") as e:
        preprocessing_from_processor_config({**LW_DETR_HUB, "pad_size": {"height": 672, "width": 672}}, "x")
    assert "\n" not in str(e.value)


def test_shortest_longest_edge_size_is_one_line() -> None:
    cfg = {**LW_DETR_HUB, "size": {"shortest_edge": 800, "longest_edge": 1333}}
    with pytest.raises(BundleError, match=r"x: size .* resizes keeping the aspect ratio .* needs size") as e:
        preprocessing_from_processor_config(cfg, "x")
    assert "\n" not in str(e.value)
