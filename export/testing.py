"""Random-weight RT-DETR models whose scores do not tie, for tests and benchmarks.

transformers' own initialisation shrinks activations to ~1e-16, so every query scores the same
and the order of the top-k is arbitrary: PyTorch and ONNX Runtime then "disagree" for no reason.
:func:`randomize_` gives every layer a fan-in-scaled init and neutral normalisation, so logits
spread out like a trained model's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rtdetr_edge._optional import require


def tiny_config(num_labels: int = 5, image_size: int = 64, v2: bool = False) -> Any:
    """A tiny RT-DETR config (~1 M parameters, exports in seconds)."""
    transformers = require("transformers", "building test models")
    backbone = transformers.RTDetrResNetConfig(
        depths=[1, 1, 1, 1],
        hidden_sizes=[16, 32, 48, 64],
        embedding_size=16,
        layer_type="basic",
        out_features=["stage2", "stage3", "stage4"],
    )
    id2label = {i: f"thing{i}" for i in range(num_labels)}
    kwargs: dict[str, Any] = dict(
        backbone_config=backbone,
        encoder_in_channels=[32, 48, 64],
        encoder_hidden_dim=32,
        encoder_ffn_dim=64,
        hidden_expansion=0.5,
        d_model=32,
        decoder_in_channels=[32, 32, 32],
        decoder_ffn_dim=64,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        num_queries=30,
        num_labels=num_labels,
        num_denoising=0,
        anchor_image_size=None,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )
    cls = transformers.RTDetrV2Config if v2 else transformers.RTDetrConfig
    return cls(**kwargs)


def r18vd_config() -> Any:
    """The shape of ``PekingU/rtdetr_r18vd`` (ResNet-18-vd, 3 decoder layers, 640x640): 20 M params."""
    transformers = require("transformers", "building test models")
    backbone = transformers.RTDetrResNetConfig(
        depths=[2, 2, 2, 2],
        hidden_sizes=[64, 128, 256, 512],
        embedding_size=64,
        layer_type="basic",
        out_features=["stage2", "stage3", "stage4"],
    )
    coco = [f"class_{i}" for i in range(80)]
    return transformers.RTDetrConfig(
        backbone_config=backbone,
        encoder_in_channels=[128, 256, 512],
        hidden_expansion=0.5,
        d_model=256,
        decoder_layers=3,
        num_queries=300,
        num_labels=80,
        anchor_image_size=[640, 640],
        id2label=dict(enumerate(coco)),
        label2id={n: i for i, n in enumerate(coco)},
    )


def randomize_(model: Any, seed: int = 0) -> Any:
    """Fan-in-scaled random weights, neutral norms (in place); returns the model in eval mode."""
    torch = require("torch", "building test models")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            weight = getattr(module, "weight", None)
            bias = getattr(module, "bias", None)
            name = type(module).__name__
            if "Norm" in name:
                if isinstance(weight, torch.Tensor):
                    weight.fill_(1.0)
                if isinstance(bias, torch.Tensor):
                    bias.zero_()
                if isinstance(getattr(module, "running_mean", None), torch.Tensor):
                    module.running_mean.zero_()
                    module.running_var.fill_(1.0)
            elif isinstance(weight, torch.Tensor) and weight.dim() >= 2:
                fan_in = weight[0].numel() if not isinstance(module, torch.nn.Embedding) else weight.shape[1]
                weight.copy_(torch.randn(weight.shape, generator=gen) / math.sqrt(max(fan_in, 1)))
                if isinstance(bias, torch.Tensor):
                    bias.copy_(torch.randn(bias.shape, generator=gen) * 0.1)
    return model.eval()


def random_model(config: Any, seed: int = 0) -> Any:
    """An eval-mode RT-DETR (v1 or v2 by config) with :func:`randomize_` weights."""
    transformers = require("transformers", "building test models")
    cls = (
        transformers.RTDetrV2ForObjectDetection
        if config.model_type == "rt_detr_v2"
        else transformers.RTDetrForObjectDetection
    )
    torch = require("torch", "building test models")
    torch.manual_seed(seed)
    return randomize_(cls(config), seed)


def save_model_folder(model: Any, folder: str | Path, image_size: tuple[int, int] | None = None) -> Path:
    """``save_pretrained`` the model and an RT-DETR image-processor config next to it."""
    folder = Path(folder)
    model.save_pretrained(folder, safe_serialization=True)
    size = image_size or tuple(getattr(model.config, "anchor_image_size", None) or (640, 640))
    import json

    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "RTDetrImageProcessor",
                "do_resize": True,
                "size": {"height": int(size[0]), "width": int(size[1])},
                "resample": 2,
                "do_rescale": True,
                "rescale_factor": 1 / 255,
                "do_normalize": False,
                "image_mean": [0.485, 0.456, 0.406],
                "image_std": [0.229, 0.224, 0.225],
                "do_pad": False,
                "format": "coco_detection",
            },
            indent=2,
        )
    )
    return folder
