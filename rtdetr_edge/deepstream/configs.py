"""The nvinfer config, the deepstream-app config and the labels, as GLib key files.

Every key is one DeepStream's own config parsers accept: Gst-nvinfer's ``[property]`` and
``[class-attrs-*]`` keys (the ``CONFIG_GROUP_INFER_*`` macros of ``gstnvinfer_property_parser.h``)
and deepstream-app's groups (``deepstream_config_file_parser.c``, ``deepstream_app_config_parser.c``);
``tests/deepstream/keys.py`` cites the DeepStream 8.0 source line for each key, and
``tests/deepstream/test_configs.py`` parses both files with GLib's own ``GKeyFile`` and holds every
key to those lists.
"""

from __future__ import annotations

from ..contract import ModelContract
from .keyfile import Group, Value, render
from .routes import EngineRoute, OnnxRoute

NVINFER_CONFIG = "config_infer_primary_rtdetr.txt"
APP_CONFIG = "deepstream_app_config.txt"
LABELS = "labels.txt"
PARSER_FUNC = "NvDsInferParseRtdetr"
PARSER_LIB = "libnvdsinfer_custom_impl_rtdetr.so"
# Gst-nvinfer cluster-mode: 0 groupRectangles, 1 DBSCAN, 2 NMS, 3 DBSCAN+NMS, 4 none.
# DETRs predict one box per object (set prediction): no clustering.
CLUSTER_NONE = 4
# Gst-nvinfer scaling-filter takes an NvBufSurfTransform_Inter (DeepStream SDK API reference,
# https://docs.nvidia.com/metropolis/deepstream/5.1/sdk-api/BufSurfTransform/BufSurfTransform.html):
# 0 nearest, 1 bilinear, 2 Algo1 (GPU cubic), 3 Algo2 (GPU super sampling), 4 Algo3 (GPU Lanczos). The closest to the model
# processor's Pillow filter on the GPU (scaling-compute-hw=1); none of them antialiases when it
# downscales as Pillow does (docs/deepstream.md).
SCALING_FILTER = {"nearest": 0, "bilinear": 1, "hamming": 1, "box": 3, "bicubic": 2, "lanczos": 4}
SCALING_COMPUTE_GPU = 1
# deepstream-app source / sink types: 3 multi-URI source; 1 fakesink, 3 file sink
SAMPLE_STREAM = "file:///opt/nvidia/deepstream/deepstream/samples/streams/sample_1080p_h264.mp4"
TRACKER_LIB = "/opt/nvidia/deepstream/deepstream/lib/libnvds_nvmultiobjecttracker.so"
TRACKER_CONFIG = "/opt/nvidia/deepstream/deepstream/samples/configs/deepstream-app/config_tracker_NvDCF_perf.yml"


def labels_text(contract: ModelContract) -> str:
    """One class name per line, in class-id order (``labelfile-path``)."""
    return "\n".join(contract.class_names) + "\n"


def nvinfer_config(
    contract: ModelContract, streams: int, conf: float, engine: EngineRoute, onnx: OnnxRoute, precision: str
) -> str:
    """``config_infer_primary_rtdetr.txt`` (paths relative to the config's folder, as nvinfer reads them)."""
    pre = contract.preprocessing
    prop: list[tuple[str, Value]] = [
        ("gpu-id", 0),
        # the graph's own front scales and normalises: nvinfer hands it the 0-255 image
        ("net-scale-factor", 1.0),
        ("offsets", (0.0, 0.0, 0.0)),
        ("model-color-format", 0 if pre.channel_order == "RGB" else 1),
        ("model-engine-file", engine.engine_file),
        ("onnx-file", onnx.onnx_file),
        ("labelfile-path", LABELS),
        ("batch-size", streams),
        ("network-mode", onnx.network_mode),
        ("num-detected-classes", contract.num_classes),
        ("infer-dims", (3, pre.height, pre.width)),
        ("output-blob-names", contract.output_names),
        ("gie-unique-id", 1),
        ("process-mode", 1),
        ("network-type", 0),
        ("interval", 0),
        ("cluster-mode", CLUSTER_NONE),
        ("maintain-aspect-ratio", 0),
        ("scaling-filter", SCALING_FILTER.get(pre.resample, 1)),
        ("scaling-compute-hw", SCALING_COMPUTE_GPU),
        ("parse-bbox-func-name", PARSER_FUNC),
        ("custom-lib-path", PARSER_LIB),
    ]
    if onnx.int8_calib_file:
        prop.append(("int8-calib-file", onnx.int8_calib_file))
    if onnx.layer_precisions:
        prop.append(("layer-device-precision", onnx.layer_precisions))
    groups: list[Group] = [("property", prop), ("class-attrs-all", [("pre-cluster-threshold", conf)])]
    for i in range(contract.num_classes):
        groups.append((f"class-attrs-{i}", [("pre-cluster-threshold", conf)]))
    r = engine.recipe
    header = (
        f"Gst-nvinfer config for an RT-DETR bundle ({precision}, {streams} stream(s)); written by rtdetr-deepstream.\n"
        f"model-engine-file is the engine rtdetr-engine builds on the device from the engine recipe\n"
        f"({r.source.file}, {'strongly typed' if r.strongly_typed else 'weakly typed'} on TensorRT {r.tensorrt_version}, "
        f"batch {r.profile.min},{r.profile.opt},{r.profile.max}); build it first (README.md):\n"
        f'  cp "$({engine.rtdetr_engine} -q)" {engine.engine_file}\n'
        f"Without it nvinfer builds from onnx-file itself: {onnx.note}.\n"
        "The graph's input is the 0-255 image: it scales and normalises inside (net-scale-factor=1).\n"
        "Per-class score thresholds: pre-cluster-threshold in [class-attrs-<id>] (labels.txt order).\n"
        "Not run on a device by rtdetr-edge yet (docs/deepstream.md)."
    )
    return render(groups, header)


def app_config(contract: ModelContract, streams: int) -> str:
    """``deepstream_app_config.txt``: N copies of DeepStream's sample stream, tiled, tracked, to a file."""
    rows = max(1, int(streams**0.5))
    columns = -(-streams // rows)
    groups: list[Group] = [
        ("application", [("enable-perf-measurement", 1), ("perf-measurement-interval-sec", 5)]),
        (
            "tiled-display",
            [("enable", 1), ("rows", rows), ("columns", columns), ("width", 1280), ("height", 720), ("gpu-id", 0)],
        ),
        (
            "source0",
            [("enable", 1), ("type", 3), ("uri", SAMPLE_STREAM), ("num-sources", streams), ("gpu-id", 0)],
        ),
        (
            "streammux",
            [
                ("gpu-id", 0),
                ("live-source", 0),
                ("batch-size", streams),
                ("batched-push-timeout", 40000),
                ("width", 1920),
                ("height", 1080),
                ("enable-padding", 0),
            ],
        ),
        (
            "primary-gie",
            [
                ("enable", 1),
                ("gpu-id", 0),
                ("batch-size", streams),
                ("gie-unique-id", 1),
                ("config-file", NVINFER_CONFIG),
            ],
        ),
        (
            "tracker",
            [
                ("enable", 1),
                ("tracker-width", 960),
                ("tracker-height", 544),
                ("ll-lib-file", TRACKER_LIB),
                ("ll-config-file", TRACKER_CONFIG),
                ("gpu-id", 0),
                ("display-tracking-id", 1),
            ],
        ),
        ("osd", [("enable", 1), ("gpu-id", 0), ("border-width", 2), ("text-size", 12), ("process-mode", 1)]),
        (
            "sink0",
            [
                ("enable", 1),
                ("type", 3),
                ("container", 1),
                ("codec", 1),
                ("enc-type", 0),
                ("sync", 0),
                ("bitrate", 4000000),
                ("output-file", "rtdetr_out.mp4"),
                ("source-id", 0),
            ],
        ),
        ("sink1", [("enable", 0), ("type", 1), ("sync", 0), ("source-id", 0)]),
        ("tests", [("file-loop", 0)]),
    ]
    header = (
        f"deepstream-app config: {streams} stream(s) batched by nvstreammux into the RT-DETR nvinfer, NvDCF tracker,\n"
        "tiled to rtdetr_out.mp4 (sink1: a fakesink for speed runs; enc-type=1 on Orin Nano, which has no NVENC).\n"
        "Run: deepstream-app -c deepstream_app_config.txt (README.md). Written by rtdetr-deepstream; not run on a device yet."
    )
    return render(groups, header)
