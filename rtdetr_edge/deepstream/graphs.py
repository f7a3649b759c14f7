"""The DeepStream model folder: a bundle whose graphs take nvinfer's 0-255 network-input image.

nvinfer feeds the engine ``y = net-scale-factor * (x - offsets[c])`` with one scale for all
channels (Gst-nvinfer plugin documentation), which cannot express a per-channel std (ImageNet
normalisation: LW-DETR, RF-DETR). So every graph of the precision DeepStream runs gets the
scaling front of :func:`rtdetr_edge.export.frames.prepend_scaling` (the frame front without its
resize): its input ``image`` is the float32 ``[N,3,H,W]`` 0-255 image in the model's channel
order, and every family maps to ``net-scale-factor=1``, ``offsets=0;0;0``.

The folder is an rtdetr-edge bundle of its own (``metadata.json``, the graphs' hashes, the
native INT8 caches), with a contract that says what its graphs take (rescale factor 1, no
normalisation): ``rtdetr-engine`` builds the recipe's engine from it on the device, and the
``Detector`` runs it anywhere (the tests compare it with the source bundle's preprocessing).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..bundle import Bundle, finalize_bundle
from ..errors import BundleError

# the graph entries of an artifact (bundle_graphs reads these two)
_GRAPH_KEYS = ("file", "trt8_file")


def write_model_folder(bundle: Bundle, precision: str, folder: Path) -> Bundle:
    """Write the scaling graphs of fp32 (a bundle always has it) and ``precision`` into ``folder``.

    Returns:
        The new bundle (hashes recorded, ready for ``rtdetr-engine`` and the ``Detector``).
    """
    import onnx

    from ..export.frames import prepend_scaling

    folder.mkdir(parents=True)
    artifacts: dict[str, Any] = {}
    contract = None
    for p in dict.fromkeys(("fp32", precision)):
        source = bundle.artifact(p)
        entry: dict[str, Any] = {k: source[k] for k in ("kind", "precision", "quantization") if k in source}
        for key in _GRAPH_KEYS:
            if not source.get(key):
                continue
            path = bundle.onnx_path(p) if key == "file" else bundle.trt8_onnx_path()
            if path is None:
                continue
            model = onnx.load(str(path))
            scaled, contract = prepend_scaling(model, bundle.contract)
            onnx.save(scaled, str(folder / source[key]))
            entry[key] = source[key]
        caches = source.get("tensorrt_caches") or {}
        if caches:
            (folder / "calib").mkdir(exist_ok=True)
            for rel in caches.values():
                shutil.copy2(bundle.file(str(rel)), folder / str(rel))  # graph input renamed; ONNX value names kept
            entry["tensorrt_caches"] = dict(caches)
        artifacts[p] = entry
    if contract is None:
        raise BundleError(f"{bundle.path}: no graphs to write for DeepStream")
    metadata = {
        "contract": contract.to_dict(),
        "artifacts": artifacts,
        "default_precision": precision,
        "source": {**(bundle.metadata.get("source") or {}), "deepstream_from": str(bundle.path.resolve())},
        "versions": bundle.metadata.get("versions") or {},
        "deepstream": {"input": contract.input_name, "net_scale_factor": 1.0, "from_bundle": str(bundle.path)},
    }
    finalize_bundle(folder, metadata)
    return Bundle(folder)


__all__ = ["write_model_folder"]
