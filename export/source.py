"""Where a model comes from: a Hugging Face hub id, a ``save_pretrained`` folder, or an object.

Whatever the source, the result is an eval-mode RT-DETR (v1 or v2) plus the preprocessing
contract read from the model's own image-processor config and the class names from ``id2label``.
Weights are only ever loaded from safetensors: nothing here unpickles a downloaded file.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtdetr_edge._optional import require
from rtdetr_edge.contract import Preprocessing, preprocessing_from_processor_config
from rtdetr_edge.errors import ModelSourceError

log = logging.getLogger("rtdetr_edge")

# model_type -> transformers class name. RT-DETRv2 shares the export path (same outputs,
# deformable attention through grid_sample); both are tested with tiny configs.
SUPPORTED_MODEL_TYPES = {
    "rt_detr": "RTDetrForObjectDetection",
    "rt_detr_v2": "RTDetrV2ForObjectDetection",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_HUB_FILES = ["config.json", "preprocessor_config.json", "*.safetensors", "*.safetensors.index.json", "README.md"]


@dataclass
class LoadedModel:
    """An eval-mode RT-DETR and what the export needs to know about it."""

    model: Any
    preprocessing: Preprocessing
    class_names: tuple[str, ...]
    source: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _default_preprocessing(config: Any) -> Preprocessing:
    size = getattr(config, "anchor_image_size", None) or (640, 640)
    return Preprocessing(height=int(size[0]), width=int(size[1]))


def _class_names(config: Any) -> tuple[str, ...]:
    id2label = getattr(config, "id2label", None) or {}
    n = int(getattr(config, "num_labels", len(id2label)))
    return tuple(str(id2label.get(i, id2label.get(str(i), f"class_{i}"))) for i in range(n))


def _check_config(folder: Path) -> dict[str, Any]:
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise ModelSourceError(f"{folder}: no config.json; expected a folder written by save_pretrained()")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelSourceError(f"{cfg_path}: not readable JSON ({exc})") from exc
    if not isinstance(cfg, dict):
        raise ModelSourceError(
            f"{cfg_path}: expected a JSON object (a save_pretrained() model config), got a JSON {_json_kind(cfg)}"
        )
    model_type = cfg.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelSourceError(
            f"{cfg_path}: model_type {model_type!r} is not RT-DETR; supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    return cfg


def _json_kind(value: object) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(value), "null")


def check_safetensors(path: Path) -> None:
    """Raise ModelSourceError naming ``path`` unless its safetensors header is complete and readable.

    The format: an 8-byte little-endian header length, a JSON header (tensor name -> dtype, shape,
    data_offsets), then the data; a truncated or foreign file fails here in one line, before the
    loader's own error.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if n < 2 or n > size - 8 or n > 100 << 20:
                raise ModelSourceError(
                    f"{path}: not a safetensors file (truncated or not safetensors: header length {n}, file {size} bytes)"
                )
            header = json.loads(fh.read(n).decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelSourceError(f"{path}: not a safetensors file (unreadable header: {exc})") from exc
    if not isinstance(header, dict):
        raise ModelSourceError(f"{path}: not a safetensors file (the header is not a JSON object)")
    data = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise ModelSourceError(f"{path}: not a safetensors file (tensor {name!r} has no data_offsets)")
        if offsets[1] > data:
            raise ModelSourceError(
                f"{path}: truncated safetensors file (tensor {name!r} ends at byte {offsets[1]} of the data, "
                f"the file has {data}); download or save it again"
            )


def _processor_preprocessing(folder: Path, config: Any, warnings: list[str]) -> Preprocessing:
    pp = folder / "preprocessor_config.json"
    if pp.is_file():
        try:
            cfg = json.loads(pp.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelSourceError(f"{pp}: not valid JSON ({exc})") from exc
        if not isinstance(cfg, dict):
            raise ModelSourceError(
                f"{pp}: expected a JSON object (an image-processor config), got a JSON {_json_kind(cfg)}"
            )
        try:
            return preprocessing_from_processor_config(cfg, str(pp))
        except (TypeError, ValueError, KeyError) as exc:
            raise ModelSourceError(f"{pp}: invalid image-processor config ({exc})") from exc
    msg = (
        f"{folder}: no preprocessor_config.json; using RT-DETR's defaults (stretch resize to the anchor size, "
        "RGB, /255, no normalisation)"
    )
    log.warning(msg)
    warnings.append(msg)
    return _default_preprocessing(config)


def load_folder(folder: str | os.PathLike[str], source: dict[str, Any] | None = None) -> LoadedModel:
    """Load an RT-DETR ``save_pretrained`` folder (safetensors weights only)."""
    folder = Path(folder)
    cfg = _check_config(folder)
    if not list(folder.glob("*.safetensors")):
        bins = [p.name for p in folder.glob("*.bin")]
        extra = (
            f" (found {', '.join(bins)}: pickled weights are not loaded; re-save with safe_serialization)"
            if bins
            else ""
        )
        raise ModelSourceError(f"{folder}: no .safetensors weights{extra}")
    for weights in sorted(folder.glob("*.safetensors")):
        check_safetensors(weights)
    transformers = require("transformers", "loading RT-DETR models")
    cls = getattr(transformers, SUPPORTED_MODEL_TYPES[cfg["model_type"]])
    hf_logging = transformers.utils.logging
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # our CLI shows stages; a per-weight bar is noise
    try:
        model = cls.from_pretrained(folder, use_safetensors=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelSourceError(f"{folder}: cannot load as {cls.__name__}: {exc}") from exc
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    model.eval()
    warnings: list[str] = []
    pre = _processor_preprocessing(folder, model.config, warnings)
    src = source or {"kind": "folder", "path": str(folder.resolve())}
    return LoadedModel(model, pre, _class_names(model.config), src, warnings)


def download(repo_id: str, revision: str | None = None, cache_dir: str | None = None) -> Path:
    """Download the files an export needs from the Hugging Face hub (config, processor, safetensors)."""
    hub = require("huggingface_hub", "downloading from the Hugging Face hub")
    try:
        path = hub.snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=_HUB_FILES)
    except Exception as exc:  # the hub raises many kinds: offline, 404, gated, auth
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelSourceError(
            f"cannot get '{repo_id}' from the Hugging Face hub ({type(exc).__name__}: {first}). "
            "Check the id and your connection, or pass a local save_pretrained folder."
        ) from exc
    return Path(path)


def load_model(
    source: Any, revision: str | None = None, cache_dir: str | None = None, preprocessing: Preprocessing | None = None
) -> LoadedModel:
    """Load an RT-DETR from a hub id, a local folder, or a model object.

    Args:
        source: ``"PekingU/rtdetr_r18vd"``, a folder path, or an ``RTDetrForObjectDetection`` /
            ``RTDetrV2ForObjectDetection`` instance.
        revision: hub revision (branch, tag or commit).
        cache_dir: hub cache folder (default: the Hugging Face cache).
        preprocessing: contract for an in-memory model (default: RT-DETR's: anchor size or
            640x640, RGB, /255, no normalisation). Ignored for folders and hub ids, which carry
            their own ``preprocessor_config.json``.
    """
    if hasattr(source, "config") and hasattr(source, "forward"):
        model_type = getattr(source.config, "model_type", None)
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ModelSourceError(f"model object of type {model_type!r} is not RT-DETR")
        source.eval()
        pre = preprocessing or _default_preprocessing(source.config)
        return LoadedModel(source, pre, _class_names(source.config), {"kind": "object", "class": type(source).__name__})
    text = os.fspath(source)
    path = Path(text)
    if path.exists():
        if not path.is_dir():
            raise ModelSourceError(f"{path}: expected a model folder (save_pretrained) or a hub id, got a file")
        return load_folder(path)
    if _HUB_ID.match(text) and not text.startswith((".", "/")):
        folder = download(text, revision, cache_dir)
        commit = folder.name if len(folder.name) == 40 else None
        return load_folder(folder, {"kind": "hub", "repo_id": text, "revision": revision, "commit": commit})
    raise ModelSourceError(f"{text}: no such folder, and not a Hugging Face hub id of the form 'org/name'")
