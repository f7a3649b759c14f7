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
    cls = transformers.RTDetrV2Config if v2 else transformers.RTDetrConfig
    return cls(backbone_config=backbone, encoder_in_channels=[32, 48, 64], **_tiny_hybrid(num_labels))


def _labels(num_labels: int) -> dict[str, Any]:
    id2label = {i: f"thing{i}" for i in range(num_labels)}
    return {"num_labels": num_labels, "id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}


def _tiny_hybrid(num_labels: int) -> dict[str, Any]:
    """The tiny hybrid encoder + decoder that RT-DETR, RT-DETRv2, D-FINE and DEIMv2 configs share."""
    return dict(
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
        num_denoising=0,
        anchor_image_size=None,
        **_labels(num_labels),
    )


def _tiny_hgnetv2() -> Any:
    """A 4-stage HGNetV2 (D-FINE's and DEIMv2's CNN backbone) with 1 block of 2 layers per stage."""
    transformers = require("transformers", "building test models")
    return transformers.HGNetV2Config(
        embedding_size=16,
        depths=[1, 1, 1, 1],
        hidden_sizes=[32, 48, 64, 96],
        stem_channels=[3, 8, 16],
        stage_in_channels=[16, 32, 48, 64],
        stage_mid_channels=[8, 16, 24, 32],
        stage_out_channels=[32, 48, 64, 96],
        stage_num_blocks=[1, 1, 1, 1],
        stage_numb_of_layers=[2, 2, 2, 2],
        stage_kernel_size=[3, 3, 5, 5],
        out_features=["stage2", "stage3", "stage4"],
    )


def tiny_dfine_config(num_labels: int = 5, deimv2: bool = False) -> Any:
    """A tiny D-FINE (or DEIMv2, same layout: HGNetV2 + hybrid encoder + FDR decoder) config, ~0.16 M params.

    Keeps what the export must get right: the distribution (``max_num_bins``) integral, the
    location-quality estimator (LQE), and for DEIMv2 its RMSNorm decoder and SwiGLU FFN.
    """
    transformers = require("transformers", "building test models")
    cls = transformers.Deimv2Config if deimv2 else transformers.DFineConfig
    return cls(
        backbone_config=_tiny_hgnetv2(), encoder_in_channels=[48, 64, 96], lqe_hidden_dim=16, **_tiny_hybrid(num_labels)
    )


def tiny_deimv2_dinov3_config(num_labels: int = 5) -> Any:
    """A tiny DEIMv2 with the DINOv3 ViT backbone and spatial tuning adapter (the S/M/L/X variants' layout).

    3-layer ViT (patch 16, RoPE), features from each layer resized to strides 8/16/32 and fused
    with the adapter's CNN details; the decoder as :func:`tiny_dfine_config`.
    """
    transformers = require("transformers", "building test models")
    base = tiny_dfine_config(num_labels, deimv2=True).to_dict()
    for key in ("backbone_config", "model_type", "transformers_version"):
        base.pop(key, None)
    vit = transformers.DINOv3ViTConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=2,
        patch_size=16,
        image_size=64,
        out_indices=[1, 2, 3],
    )
    base.update(backbone_config=vit, encoder_in_channels=[32, 32, 32], spatial_tuning_adapter_inplanes=8)
    return transformers.Deimv2Config(**base)


def tiny_lw_detr_config(num_labels: int = 5) -> Any:
    """A tiny LW-DETR config: 4-layer windowed ViT (patch 8, 2x2 windows), 2 decoder layers, 3 query groups.

    ``group_detr=3`` keeps the training-time query groups in the config, as the hub checkpoints
    have (13): at inference only the first group's queries are the outputs.
    """
    transformers = require("transformers", "building test models")
    vit = transformers.LwDetrViTConfig(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        image_size=64,
        pretrain_image_size=64,
        patch_size=8,
        window_block_indices=[0, 2],
        num_windows=4,
        num_windows_side=2,
        out_indices=[1, 2, 3, 4],
    )
    return transformers.LwDetrConfig(
        backbone_config=vit,
        projector_scale_factors=[1.0],
        d_model=32,
        decoder_ffn_dim=64,
        decoder_layers=2,
        decoder_self_attention_heads=2,
        decoder_cross_attention_heads=2,
        num_queries=30,
        group_detr=3,
        **_labels(num_labels),
    )


def tiny_rf_detr_config(num_labels: int = 5) -> Any:
    """A tiny RF-DETR config: 4-layer windowed DINOv2 (patch 8, position embeddings for 56 px, 2x2 windows).

    The position embeddings are made for 56 px (7x7 patches) so that a 64 px export has to
    interpolate them (8x8), the case the export freezes.
    """
    transformers = require("transformers", "building test models")
    vit = transformers.RfDetrDinov2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        image_size=56,
        patch_size=8,
        num_windows=2,
        window_block_indexes=[0, 2],
        out_indices=[1, 2, 3, 4],
    )
    return transformers.RfDetrConfig(
        backbone_config=vit,
        d_model=32,
        decoder_ffn_dim=64,
        decoder_layers=2,
        decoder_self_attention_heads=2,
        decoder_cross_attention_heads=2,
        num_queries=30,
        group_detr=3,
        **_labels(num_labels),
    )


def tiny_family_config(model_type: str, num_labels: int = 5) -> Any:
    """The tiny config of a family by ``model_type`` (the keys of :data:`source.FAMILIES`)."""
    makers = {
        "rt_detr": lambda: tiny_config(num_labels),
        "rt_detr_v2": lambda: tiny_config(num_labels, v2=True),
        "d_fine": lambda: tiny_dfine_config(num_labels),
        "deimv2": lambda: tiny_dfine_config(num_labels, deimv2=True),
        "lw_detr": lambda: tiny_lw_detr_config(num_labels),
        "rf_detr": lambda: tiny_rf_detr_config(num_labels),
    }
    if model_type not in makers:
        raise KeyError(f"no tiny config for model_type {model_type!r}; known: {', '.join(makers)}")
    return makers[model_type]()


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
    """An eval-mode model of the config's family (:data:`source.FAMILIES`) with :func:`randomize_` weights."""
    from .source import family_of

    transformers = require("transformers", "building test models")
    cls = getattr(transformers, family_of(config.model_type, "config").model_class)
    torch = require("torch", "building test models")
    torch.manual_seed(seed)
    return randomize_(cls(config), seed)


def save_model_folder(model: Any, folder: str | Path, image_size: tuple[int, int] | None = None) -> Path:
    """``save_pretrained`` the model and its family's image-processor config next to it.

    RT-DETR, RT-DETRv2, D-FINE and DEIMv2 get an ``RTDetrImageProcessor`` config (stretch resize,
    /255, no normalisation); LW-DETR a ``DeformableDetrImageProcessor`` one and RF-DETR an
    ``RfDetrImageProcessor`` one (fixed height/width, /255, ImageNet mean/std, ``do_pad`` as the
    hub checkpoints carry it), as each family's published checkpoints do.
    """
    import json

    from .source import family_of

    folder = Path(folder)
    model.save_pretrained(folder, safe_serialization=True)
    size = image_size or tuple(getattr(model.config, "anchor_image_size", None) or (640, 640))
    family = family_of(model.config.model_type, "config")
    imagenet = family.processor != "RTDetrImageProcessor"
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": family.processor,
                "do_resize": True,
                "size": {"height": int(size[0]), "width": int(size[1])},
                "resample": 2,
                "do_rescale": True,
                "rescale_factor": 1 / 255,
                "do_normalize": imagenet,
                "image_mean": [0.485, 0.456, 0.406],
                "image_std": [0.229, 0.224, 0.225],
                "do_pad": imagenet,
                "pad_size": None,
                "format": "coco_detection",
            },
            indent=2,
        )
    )
    return folder
