"""Where a model comes from: a Hugging Face hub id, a ``save_pretrained`` folder, or an object.

Whatever the source, the result is an eval-mode model of one of the :data:`FAMILIES` (RT-DETR,
RT-DETRv2, D-FINE, DEIMv2, LW-DETR, RF-DETR) plus the preprocessing
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
from rtdetr_edge.contract import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    NON_ANTIALIASED_PROCESSORS,
    Preprocessing,
    preprocessing_from_processor_config,
)
from rtdetr_edge.errors import ModelSourceError

log = logging.getLogger("rtdetr_edge")


@dataclass(frozen=True)
class Family:
    """One supported detector family: how to load it and what its export needs.

    Attributes:
        model_type: ``config.json``'s ``model_type`` (the key of :data:`FAMILIES`).
        name: the family's own name.
        model_class: the transformers class that loads it.
        processor: the image processor its checkpoints carry (the contract is read from its config).
        hub_ids: well-known checkpoints.
        notes: what the export does differently for it, if anything.
        patch_grid: the backbone is a windowed ViT: the input size must be a multiple of
            ``patch_size x windows per side``.
    """

    model_type: str
    name: str
    model_class: str
    processor: str
    hub_ids: tuple[str, ...]
    notes: str = ""
    patch_grid: bool = False


# Every family returns ``logits [B,Q,C]`` and ``pred_boxes [B,Q,4]`` (normalised cxcywh) scored by
# sigmoid (focal loss), so one export (raw outputs -> in-graph sigmoid + top-k) serves all; each
# is tested with a tiny random config (export.testing.tiny_family_config).
FAMILIES: dict[str, Family] = {
    f.model_type: f
    for f in (
        Family("rt_detr", "RT-DETR", "RTDetrForObjectDetection", "RTDetrImageProcessor", ("PekingU/rtdetr_r18vd",)),
        Family(
            "rt_detr_v2",
            "RT-DETRv2",
            "RTDetrV2ForObjectDetection",
            "RTDetrImageProcessor",
            ("PekingU/rtdetr_v2_r18vd",),
            "deformable attention sampled per level with grid_sample (discrete sampling not exported)",
        ),
        Family(
            "d_fine",
            "D-FINE",
            "DFineForObjectDetection",
            "RTDetrImageProcessor",
            ("ustc-community/dfine-small-coco", "ustc-community/dfine-xlarge-coco"),
            "boxes as distributions over bins (softmax + integral) refined layer by layer, LQE score head",
        ),
        Family(
            "deimv2",
            "DEIMv2",
            "Deimv2ForObjectDetection",
            "RTDetrImageProcessor",
            ("Intellindust/DEIMv2_HGNetv2_N_COCO",),
            "D-FINE decoder with RMSNorm (exported as Pow/ReduceMean/Sqrt primitives) and SwiGLU FFNs",
        ),
        Family(
            "lw_detr",
            "LW-DETR",
            "LwDetrForObjectDetection",
            "DeformableDetrImageProcessor",
            ("AnnaZhang/lwdetr_small_60e_coco",),
            "windowed ViT backbone; ImageNet mean/std; the processor's do_pad is a no-op at a fixed size",
            patch_grid=True,
        ),
        Family(
            "rf_detr",
            "RF-DETR",
            "RfDetrForObjectDetection",
            "RfDetrImageProcessor",
            ("Roboflow/rf-detr-base",),
            "DINOv2 position embeddings interpolated (bicubic, antialias) at run time: frozen at the export size",
            patch_grid=True,
        ),
    )
}
# model_type -> transformers class name
SUPPORTED_MODEL_TYPES = {t: f.model_class for t, f in FAMILIES.items()}


def family_of(model_type: object, where: str) -> Family:
    """The :class:`Family` of ``model_type``, or a one-line ModelSourceError naming ``where`` and the type."""
    family = FAMILIES.get(model_type) if isinstance(model_type, str) else None
    if family is None:
        raise ModelSourceError(
            f"{where}: model_type {model_type!r} is not RT-DETR or a supported relative; "
            f"supported: {', '.join(FAMILIES)}"
        )
    return family


def check_input_size(config: Any, height: int, width: int, where: str) -> None:
    """Raise a one-line ModelSourceError unless a windowed-ViT family can take ``height x width``.

    LW-DETR and RF-DETR split the patch grid into windows per side; a size that is not a multiple
    of ``patch_size x windows`` fails deep inside ``view()`` (or silently drops border patches).
    """
    family = family_of(config.model_type, where)
    if not family.patch_grid:
        return
    backbone = config.backbone_config
    patch = int(backbone.patch_size)
    windows = int(getattr(backbone, "num_windows_side", None) or getattr(backbone, "num_windows", 1) or 1)
    step = patch * windows
    if height % step or width % step:
        raise ModelSourceError(
            f"{where}: {family.name} ({family.model_type}) needs an input size that is a multiple of "
            f"{step} (patch {patch} x {windows} windows per side), got {height}x{width}"
        )


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
    """The family's processor defaults at the anchor size or 640x640 (for models without a processor config).

    RT-DETR-processor families: RGB, /255, no normalisation; LW-DETR / RF-DETR (DETR-style
    processors): RGB, /255, ImageNet mean/std.
    """
    size = getattr(config, "anchor_image_size", None) or (640, 640)
    processor = family_of(config.model_type, "model config").processor
    if processor == "RTDetrImageProcessor":
        return Preprocessing(height=int(size[0]), width=int(size[1]))
    return Preprocessing(
        height=int(size[0]),
        width=int(size[1]),
        antialias=processor not in NON_ANTIALIASED_PROCESSORS,
        do_normalize=True,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )


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
    family_of(cfg.get("model_type"), str(cfg_path))
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
    pre = _default_preprocessing(config)
    norm = f"ImageNet mean/std {pre.mean}/{pre.std}" if pre.do_normalize else "no normalisation"
    msg = (
        f"{folder}: no preprocessor_config.json; using the {config.model_type} processor's defaults (stretch "
        f"resize to {pre.width}x{pre.height}, {pre.resample}, RGB, /255, {norm})"
    )
    log.warning(msg)
    warnings.append(msg)
    return pre


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
    cls = getattr(transformers, FAMILIES[cfg["model_type"]].model_class)
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
    check_input_size(model.config, pre.height, pre.width, str(folder))
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
        source: ``"PekingU/rtdetr_r18vd"``, a folder path, or a model instance of one of the
            :data:`FAMILIES` (``RTDetrForObjectDetection``, ``DFineForObjectDetection``, ...).
        revision: hub revision (branch, tag or commit).
        cache_dir: hub cache folder (default: the Hugging Face cache).
        preprocessing: contract for an in-memory model (default: its family's processor defaults
            at the anchor size or 640x640, see :func:`_default_preprocessing`). Ignored for folders and hub ids, which carry
            their own ``preprocessor_config.json``.
    """
    if hasattr(source, "config") and hasattr(source, "forward"):
        family_of(getattr(source.config, "model_type", None), f"model object {type(source).__name__}")
        source.eval()
        pre = preprocessing or _default_preprocessing(source.config)
        check_input_size(source.config, pre.height, pre.width, f"model object {type(source).__name__}")
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
