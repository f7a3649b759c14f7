"""``rtdetr-deepstream``: a bundle -> a DeepStream setup (nvinfer config, parser, app config).

::

    DIR/
      README.md                         how to build the engine and the parser, and run it
      rtdetr-deepstream.json            what made it: bundle, options, rtdetr-edge version
      config_infer_primary_rtdetr.txt   Gst-nvinfer config (:mod:`.configs`)
      deepstream_app_config.txt         deepstream-app, N streams
      labels.txt
      nvdsparsebbox_rtdetr.cpp          the bounding-box parser; Makefile builds
      Makefile                          libnvdsinfer_custom_impl_rtdetr.so
      model/                            a bundle whose graphs take the 0-255 image (:mod:`.graphs`)

The engine and nvinfer's own build route come from the engine recipe (:mod:`.routes`). The
folder is assembled in a temporary sibling and renamed into place. Host tooling (it writes ONNX
graphs with :mod:`rtdetr_edge.export.frames`), torch-free.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from importlib import resources
from pathlib import Path

from .. import __version__, atomic
from ..atomic import OutputKind
from ..bundle import Bundle
from ..contract import OUTPUT_TOPK
from ..errors import BundleError, InputError
from . import configs
from .graphs import write_model_folder
from .options import DeepStreamOptions
from .readme import deepstream_readme
from .routes import engine_route, onnx_route

__all__ = ["DeepStreamOptions", "is_deepstream_folder", "write_deepstream"]

log = logging.getLogger("rtdetr_edge")

MARKER = "rtdetr-deepstream.json"
MARKER_FORMAT = "rtdetr-edge-deepstream"
MODEL_DIR = "model"
PARSER_FILES = ("nvdsparsebbox_rtdetr.cpp", "Makefile")
# the parser reads these outputs by name (nvdsparsebbox_rtdetr.cpp)
PARSER_OUTPUTS = ("scores", "labels", "boxes")


def is_deepstream_folder(path: str | os.PathLike[str]) -> bool:
    """``path`` is a folder :func:`write_deepstream` made."""
    try:
        obj = json.loads((Path(path) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(obj, dict) and obj.get("format") == MARKER_FORMAT


# what rtdetr-deepstream --force may replace: an empty folder or a folder it wrote
DEEPSTREAM_FOLDERS = OutputKind(
    is_deepstream_folder, f"is not a folder rtdetr-deepstream wrote ({MARKER} missing); nothing was deleted"
)


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _populate(root: Path, bundle: Bundle, precision: str, options: DeepStreamOptions) -> dict[str, object]:
    contract = bundle.contract
    if contract.output_kind != OUTPUT_TOPK or tuple(contract.output_names) != PARSER_OUTPUTS:
        raise BundleError(
            f"{bundle.path}: the DeepStream parser reads the top-k outputs {', '.join(PARSER_OUTPUTS)}; this bundle "
            f"has {contract.output_kind} outputs {', '.join(contract.output_names)} (rebuild it without --raw-outputs)"
        )
    if contract.max_batch and options.streams > contract.max_batch:
        raise InputError(f"--streams {options.streams}: the model takes batches of at most {contract.max_batch}")
    ds = write_model_folder(bundle, precision, root / MODEL_DIR)
    engine = engine_route(ds, MODEL_DIR, precision, options.streams, options.tensorrt)
    onnx = onnx_route(ds, MODEL_DIR, precision, options.tensorrt)
    if precision == "int8" and onnx.int8_calib_file is None:
        log.warning("%s", onnx.note)
    _write(root / configs.LABELS, configs.labels_text(contract))
    _write(
        root / configs.NVINFER_CONFIG,
        configs.nvinfer_config(ds.contract, options.streams, options.conf, engine, onnx, precision),
    )
    _write(root / configs.APP_CONFIG, configs.app_config(ds.contract, options.streams))
    parser_dir = resources.files(__package__) / "parser"
    for name in PARSER_FILES:
        _write(root / name, (parser_dir / name).read_text(encoding="utf-8"))
    _write(root / "README.md", deepstream_readme(ds.contract, precision, options.streams, engine, onnx, MODEL_DIR))
    info: dict[str, object] = {
        "format": MARKER_FORMAT,
        "format_version": 1,
        "rtdetr_edge_version": __version__,
        "bundle": str(bundle.path),
        "precision": precision,
        "options": asdict(options),
        "engine": {"file": engine.engine_file, "recipe": engine.recipe.decision(), "tensorrt": options.tensorrt},
        "onnx_route": asdict(onnx),
        "class_names": list(contract.class_names),
        "input": [contract.preprocessing.height, contract.preprocessing.width],
    }
    _write(root / MARKER, json.dumps(info, indent=2) + "\n")
    return info


def write_deepstream(
    bundle: str | os.PathLike[str], out: str | os.PathLike[str], options: DeepStreamOptions, force: bool = False
) -> Path:
    """Write a DeepStream setup for ``bundle`` at ``out`` (see the module docstring).

    Args:
        bundle: a bundle folder (rtdetr-build).
        out: the folder to write: new or empty; with ``force`` also one this function wrote
            (anything else is refused, nothing deleted).
        options: see :class:`DeepStreamOptions`.

    Raises:
        InputError, BundleError, EngineError: one line naming the argument or file and what was expected.
    """
    src = Path(bundle)
    b = Bundle(src)  # one line naming what is wrong: no folder, no metadata.json, unreadable, not ours
    target = Path(out)
    if target.resolve() == src.resolve() or target.resolve().is_relative_to(src.resolve()):
        raise InputError(f"--out {out}: is or is inside the bundle {src}; choose another folder")
    if src.resolve().is_relative_to(target.resolve()):
        raise InputError(f"--out {out}: contains the bundle {src}; choose another folder")
    precision = b.precision_for(options.precision)
    if precision not in b.precisions:
        raise InputError(
            f"--precision {precision}: the bundle {src} has {', '.join(b.precisions)} "
            f"(add it with rtdetr-build --model {src} --precision {precision} --out {src})"
        )
    with atomic.replacing_dir(target, overwrite=force, kind=DEEPSTREAM_FOLDERS) as tmp:
        _populate(tmp, b, precision, options)
    log.info("wrote the DeepStream setup %s (%s, %d stream(s))", target, precision, options.streams)
    return target
