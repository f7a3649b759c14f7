"""The config keys DeepStream documents, with where each list comes from (read by the config tests).

Gst-nvinfer: the "Gst-nvinfer Property Group Supported Keys" and "Class-attributes Group Supported
Keys" tables of the Gst-nvinfer plugin page (https://docs.nvidia.com/deepstream/text/DS_plugin_gst-nvinfer,
source text e.g. https://docs.nvidia.com/metropolis/deepstream-nvaie31/dev-guide/_sources/text/DS_plugin_gst-nvinfer.rst.txt)
and the CONFIG_GROUP_INFER_* key macros of gstnvinfer_property_parser.h in the DeepStream SDK API
reference (8.0: https://docs.nvidia.com/metropolis/deepstream/dev-guide/sdk-api/gstnvinfer__property__parser_8h.html,
9.2: https://docs.nvidia.com/metropolis/deepstream/dev-guide/sdk-api/9_82_2sources_2libs_2gst-nvdsinferbase_2gstnvinfer__property__parser_8h.html).
deepstream-app: the "Configuration Groups" tables of "DeepStream Reference Application -
deepstream-app" (https://docs.nvidia.com/deepstream/text/DS_ref_app_deepstream; 4.0's group page:
https://docs.nvidia.com/metropolis/deepstream/4.0/dev-guide/DeepStream_Development_Guide/deepstream_app_config.3.2.html).
Only parts of these pages could be read from here (search excerpts); the lists hold the keys as those
tables name them, and a key added here should be checked against the page it cites.
"""

from __future__ import annotations

NVINFER_PROPERTY = frozenset(
    {
        "num-detected-classes",
        "net-scale-factor",
        "model-file",
        "proto-file",
        "int8-calib-file",
        "batch-size",
        "model-engine-file",
        "uff-file",
        "onnx-file",
        "enable-dbscan",
        "labelfile-path",
        "mean-file",
        "gie-unique-id",
        "operate-on-gie-id",
        "operate-on-class-ids",
        "interval",
        "input-object-min-width",
        "input-object-min-height",
        "input-object-max-width",
        "input-object-max-height",
        "uff-input-blob-name",
        "network-mode",
        "offsets",
        "output-blob-names",
        "parse-bbox-func-name",
        "custom-lib-path",
        "model-color-format",
        "classifier-async-mode",
        "process-mode",
        "classifier-threshold",
        "uff-input-dims",
        "secondary-reinfer-interval",
        "output-tensor-meta",
        "enable-dla",
        "use-dla-core",
        "network-type",
        "maintain-aspect-ratio",
        "symmetric-padding",
        "parse-classifier-func-name",
        "custom-network-config",
        "tlt-encoded-model",
        "tlt-model-key",
        "segmentation-threshold",
        "workspace-size",
        "force-implicit-batch-dim",
        "infer-dims",
        "engine-create-func-name",
        "cluster-mode",
        "filter-out-class-ids",
        "scaling-filter",
        "scaling-compute-hw",
        "output-io-formats",
        "layer-device-precision",
        "gpu-id",
        "crop-objects-to-roi-boundary",
        "disable-output-host-copy",
        "output-instance-mask",
    }
)
NVINFER_CLASS_ATTRS = frozenset(
    {
        "threshold",
        "pre-cluster-threshold",
        "post-cluster-threshold",
        "eps",
        "group-threshold",
        "minBoxes",
        "dbscan-min-score",
        "nms-iou-threshold",
        "roi-top-offset",
        "roi-bottom-offset",
        "detected-min-w",
        "detected-min-h",
        "detected-max-w",
        "detected-max-h",
        "topk",
    }
)

# deepstream-app group -> its documented keys ("source0", "sink1": the group name without its index)
DEEPSTREAM_APP = {
    "application": frozenset(
        {"enable-perf-measurement", "perf-measurement-interval-sec", "gie-kitti-output-dir", "kitti-track-output-dir"}
    ),
    "tiled-display": frozenset({"enable", "rows", "columns", "width", "height", "gpu-id", "nvbuf-memory-type"}),
    "source": frozenset(
        {
            "enable",
            "type",
            "uri",
            "num-sources",
            "intra-decode-enable",
            "num-extra-surfaces",
            "gpu-id",
            "camera-id",
            "camera-width",
            "camera-height",
            "camera-fps-n",
            "camera-fps-d",
            "camera-v4l2-dev-node",
            "latency",
            "camera-csi-sensor-id",
            "drop-frame-interval",
            "cudadec-memtype",
            "nvbuf-memory-type",
            "select-rtp-protocol",
            "rtsp-reconnect-interval-sec",
        }
    ),
    "streammux": frozenset(
        {
            "gpu-id",
            "live-source",
            "batch-size",
            "batched-push-timeout",
            "width",
            "height",
            "enable-padding",
            "nvbuf-memory-type",
            "attach-sys-ts-as-ntp",
            "config-file",
            "sync-inputs",
        }
    ),
    "primary-gie": frozenset(
        {
            "enable",
            "gie-unique-id",
            "gpu-id",
            "model-engine-file",
            "nvbuf-memory-type",
            "config-file",
            "batch-size",
            "interval",
            "bbox-border-color",
            "bbox-bg-color",
            "operate-on-gie-id",
            "operate-on-class-ids",
            "infer-raw-output-dir",
            "labelfile-path",
            "plugin-type",
        }
    ),
    "tracker": frozenset(
        {
            "enable",
            "tracker-width",
            "tracker-height",
            "ll-config-file",
            "ll-lib-file",
            "gpu-id",
            "tracking-surface-type",
            "display-tracking-id",
            "tracking-id-reset-mode",
            "compute-hw",
        }
    ),
    "osd": frozenset(
        {
            "enable",
            "gpu-id",
            "border-width",
            "border-color",
            "text-size",
            "text-color",
            "text-bg-color",
            "font",
            "show-clock",
            "clock-x-offset",
            "clock-y-offset",
            "clock-text-size",
            "clock-color",
            "nvbuf-memory-type",
            "process-mode",
            "display-text",
            "display-bbox",
            "display-mask",
        }
    ),
    "sink": frozenset(
        {
            "enable",
            "type",
            "sync",
            "source-id",
            "codec",
            "enc-type",
            "bitrate",
            "output-file",
            "container",
            "profile",
            "iframeinterval",
            "rtsp-port",
            "udp-port",
            "qos",
            "width",
            "height",
        }
    ),
    "tests": frozenset({"file-loop"}),
}
