"""Fixtures of the rtdetr-check tests: a random model whose every top-k entry is a detection."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtdetr_edge.export.options import ExportOptions


@pytest.fixture(scope="session")
def crowded_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fp32 bundle of a random tiny model (30 queries x 10 classes) exported with top-k 300, its class
    heads biased so that every one of the 300 top-k entries scores above the default conf 0.3:
    300 detections per image, three times COCO's maxDets of 100."""
    import torch

    from rtdetr_edge.build import BuildOptions, build_bundle
    from rtdetr_edge.export import testing

    model = testing.random_model(testing.tiny_config(num_labels=10), seed=0)
    with torch.no_grad():
        for head in model.model.decoder.class_embed:
            head.bias.add_(4.0)
    folder = testing.save_model_folder(model, tmp_path_factory.mktemp("crowded_model"), image_size=(64, 64))
    return build_bundle(
        folder, tmp_path_factory.mktemp("crowded") / "bundle", BuildOptions(export=ExportOptions(top_k=300))
    )
