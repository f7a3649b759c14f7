"""The README of a DeepStream folder: how to build the engine and the parser, and run it."""

from __future__ import annotations

from .. import __version__
from ..contract import ModelContract
from .configs import APP_CONFIG, NVINFER_CONFIG, PARSER_LIB
from .routes import EngineRoute, OnnxRoute


def deepstream_readme(
    contract: ModelContract, precision: str, streams: int, engine: EngineRoute, onnx: OnnxRoute, model_dir: str
) -> str:
    pre = contract.preprocessing
    trtexec = "\n".join(f"# {label} ({where})\n{cmd}\n" for label, where, cmd in engine.trtexec)
    return f"""# RT-DETR in DeepStream ({precision}, {streams} stream(s))

Written by `rtdetr-deepstream` (rtdetr-edge {__version__}). **Not run on a device by rtdetr-edge
yet**: the parser is tested on the host against the Detector, the configs with GLib's key-file
parser; see rtdetr-edge's `docs/deepstream.md` for what to check on a Jetson.

| file | what |
| --- | --- |
| `{NVINFER_CONFIG}` | Gst-nvinfer config: engine, `onnx-file` route, {contract.num_classes} classes, per-class thresholds |
| `{APP_CONFIG}` | deepstream-app: {streams} stream(s) -> nvstreammux (batch {streams}) -> nvinfer -> NvDCF tracker -> tiled file sink |
| `nvdsparsebbox_rtdetr.cpp`, `Makefile` | the bounding-box parser `NvDsInferParseRtdetr` -> `{PARSER_LIB}` |
| `labels.txt` | class names, one per line |
| `{model_dir}/` | an rtdetr-edge bundle whose graphs take the 0-255 {pre.channel_order} image ({pre.width}x{pre.height}) and scale it themselves |

## On the device (Jetson: JetPack 6.x + DeepStream 7.x, or JetPack 7.2 + DeepStream 9.2)

In this folder:

```bash
pip install "rtdetr-edge[trt]"                            # the engine builder, torch-free; JetPack 7.2: "rtdetr-edge[trt-cu13]"
cp "$({engine.rtdetr_engine} -q)" {engine.engine_file}      # the recipe's engine for this GPU
make CUDA_VER=12.6                                        # JetPack 6.x; JetPack 7.2: make CUDA_VER=13.2
deepstream-app -c {APP_CONFIG}
```

`rtdetr-engine` builds the engine the engine recipe decides ({engine.recipe.source.file},
{"strongly typed" if engine.recipe.strongly_typed else "weakly typed"} on TensorRT
{engine.recipe.tensorrt_version}; batch profile 1,{streams},{streams}) and prints its path; the copy gives
nvinfer a fixed `model-engine-file`. Without `rtdetr-edge` on the device, build it with trtexec
(the same recipe, one command per TensorRT line):

```bash
{trtexec}```

If `model-engine-file` is missing, nvinfer builds from `onnx-file` itself: {onnx.note}; that engine
is not the recipe's (for INT8 the recipe's engine is the Q/DQ graph), so build the engine first.

## What the config says

* `net-scale-factor=1`, `offsets=0;0;0`: the graph's first nodes do the model processor's rescale
  and normalisation; nvinfer's one scale factor could not express a per-channel std.
* `maintain-aspect-ratio=0`: stretch resize, as the model's processor; `scaling-filter` is the
  closest nvinfer filter to the processor's `{pre.resample}` (none antialiases when downscaling).
* `cluster-mode=4`: no clustering (DETRs predict one box per object).
* `[class-attrs-<id>] pre-cluster-threshold`: each class's score threshold (the parser keeps
  scores >= it).
"""
