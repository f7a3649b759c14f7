"""Malformed model folders fail in one line naming the file (issue 15, item 12)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rtdetr_edge.errors import ModelSourceError
from rtdetr_edge.export.source import load_folder


def _copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    return folder


def _weights(folder: Path) -> Path:
    return next(folder.glob("*.safetensors"))


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "header_only"])
def test_broken_safetensors_is_one_line(tiny_model_dir: Path, tmp_path: Path, how: str) -> None:
    folder = _copy(tiny_model_dir, tmp_path)
    weights = _weights(folder)
    raw = weights.read_bytes()
    weights.write_bytes(
        {
            "truncated": raw[: len(raw) // 2],
            "garbage": b"\x89PNG not weights at all" * 10,
            "empty": b"",
            "header_only": raw[: 8 + int.from_bytes(raw[:8], "little")],
        }[how]
    )
    with pytest.raises(ModelSourceError, match=rf"{weights.name}: (truncated safetensors|not a safetensors) file") as e:
        load_folder(folder)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("content", ["[1, 2]", '"rt_detr"', "null"])
def test_config_json_that_is_not_an_object(tiny_model_dir: Path, tmp_path: Path, content: str) -> None:
    folder = _copy(tiny_model_dir, tmp_path)
    (folder / "config.json").write_text(content)
    with pytest.raises(ModelSourceError, match=r"config\.json: expected a JSON object .*, got a JSON"):
        load_folder(folder)


def test_preprocessor_config_that_is_not_an_object(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model_dir, tmp_path)
    assert load_folder(folder).class_names  # intact, it loads
    (folder / "preprocessor_config.json").write_text(json.dumps([{"size": 64}]))
    with pytest.raises(ModelSourceError, match=r"preprocessor_config\.json: expected a JSON object"):
        load_folder(folder)
