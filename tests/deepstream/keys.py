"""The config keys DeepStream's own parsers accept, each with the source line that names it (read by the config tests).

Every key below was checked against NVIDIA's DeepStream 8.0 sources as vendored in
github.com/levipereira/deepstream_8.0_plugins at commit 6ddf18dc70e71ffdbc7215e7a3028fe21da6be05
(a third-party copy of /opt/nvidia/deepstream/deepstream/sources; the files carry NVIDIA's
"Copyright (c) 2018-2025 NVIDIA CORPORATION" headers):

- nvinfer: ``gst-plugins/gst-nvinfer/gstnvinfer_property_parser.h`` defines each key string as a
  ``CONFIG_GROUP_INFER_*`` macro, and ``gstnvinfer_property_parser.cpp`` compares the ``[property]``
  keys (``gst_nvinfer_parse_other_attribute`` / ``gst_nvinfer_parse_context_params``) and the
  ``[class-attrs-*]`` keys (``gst_nvinfer_parse_class_attrs``) against those macros. The value
  given for each key is its macro. Cross-checks: NVIDIA's API reference page for the same header
  (8.0: https://docs.nvidia.com/metropolis/deepstream/dev-guide/sdk-api/gstnvinfer__property__parser_8h.html,
  6.4: https://docs.nvidia.com/metropolis/deepstream/6.4/dev-guide/sdk-api/gstnvinfer__property__parser_8h_source.html;
  only excerpts could be read here, e.g. gie-unique-id ... disable-output-host-copy, use-dla-core),
  and the 2018-2021 (DeepStream 6.x) header vendored in github.com/zhouyuchong/gst-nvinfer-custom at
  80e3dd1bcb0e0566ea7cdad4981a174e78192e14 (``gstnvinfer_property_parser.h``), which has every key
  below except ``crop-objects-to-roi-boundary`` and ``disable-output-host-copy`` (newer keys).
- deepstream-app: ``apps/apps-common/src/deepstream_config_file_parser.c`` (``parse_source``,
  ``parse_streammux``, ``parse_gie``, ``parse_tracker``, ``parse_osd``, ``parse_sink``,
  ``parse_tiled_display``; macros defined at the top of that file and in
  ``apps/apps-common/includes/deepstream_config_file_parser.h``) and
  ``apps/sample_apps/deepstream-app/deepstream_app_config_parser.c`` (``parse_app``, ``parse_tests``).
  The value given for each key is the macro (or literal) its parse function compares ``*key`` with.
  ``bbox-border-color`` / ``bbox-bg-color`` are matched by prefix (``strncmp``): the bare key sets
  all classes, ``bbox-border-color<class-id>`` one class (that suffixed form is not listed here).

Removed after that check (not parsed by DeepStream 8.0): ``[streammux] config-file`` (the key is
``config-file-path``) and ``[osd] border-color`` (defined as CONFIG_GROUP_OSD_BORDER_COLOR but never
compared in ``parse_osd``). A key added here needs the same check: its macro in these files.
"""

from __future__ import annotations

# [property] key -> its CONFIG_GROUP_INFER_* macro in gstnvinfer_property_parser.h (DeepStream 8.0)
NVINFER_PROPERTY_SOURCE: dict[str, str] = {
    "batch-size": "CONFIG_GROUP_INFER_BATCH_SIZE",
    "classifier-async-mode": "CONFIG_GROUP_INFER_CLASSIFIER_ASYNC_MODE",
    "classifier-threshold": "CONFIG_GROUP_INFER_CLASSIFIER_THRESHOLD",
    "cluster-mode": "CONFIG_GROUP_INFER_CLUSTER_MODE",
    "crop-objects-to-roi-boundary": "CONFIG_GROUP_INFER_CROP_OBJECTS_TO_ROI_BOUNDARY",
    "custom-lib-path": "CONFIG_GROUP_INFER_CUSTOM_LIB_PATH",
    "custom-network-config": "CONFIG_GROUP_INFER_CUSTOM_NETWORK_CONFIG",
    "disable-output-host-copy": "CONFIG_GROUP_INFER_DISABLE_OUTPUT_HOST_COPY",
    "enable-dbscan": "CONFIG_GROUP_INFER_ENABLE_DBSCAN",
    "enable-dla": "CONFIG_GROUP_INFER_ENABLE_DLA",
    "engine-create-func-name": "CONFIG_GROUP_INFER_CUSTOM_ENGINE_CREATE_FUNC",
    "filter-out-class-ids": "CONFIG_GROUP_INFER_CLASS_IDS_FOR_FILTERING",
    "force-implicit-batch-dim": "CONFIG_GROUP_INFER_FORCE_IMPLICIT_BATCH_DIM",
    "gie-unique-id": "CONFIG_GROUP_INFER_UNIQUE_ID",
    "gpu-id": "CONFIG_GROUP_INFER_GPU_ID",
    "infer-dims": "CONFIG_GROUP_INFER_INFER_DIMENSIONS",
    "input-object-max-height": "CONFIG_GROUP_INFER_INPUT_OBJECT_MAX_HEIGHT",
    "input-object-max-width": "CONFIG_GROUP_INFER_INPUT_OBJECT_MAX_WIDTH",
    "input-object-min-height": "CONFIG_GROUP_INFER_INPUT_OBJECT_MIN_HEIGHT",
    "input-object-min-width": "CONFIG_GROUP_INFER_INPUT_OBJECT_MIN_WIDTH",
    "int8-calib-file": "CONFIG_GROUP_INFER_INT8_CALIBRATION_FILE",
    "interval": "CONFIG_GROUP_INFER_INTERVAL",
    "labelfile-path": "CONFIG_GROUP_INFER_LABEL",
    "layer-device-precision": "CONFIG_GROUP_INFER_LAYER_DEVICE_PRECISION",
    "maintain-aspect-ratio": "CONFIG_GROUP_INFER_MAINTAIN_ASPECT_RATIO",
    "mean-file": "CONFIG_GROUP_INFER_MEANFILE",
    "model-color-format": "CONFIG_GROUP_INFER_MODEL_COLOR_FORMAT",
    "model-engine-file": "CONFIG_GROUP_INFER_MODEL_ENGINE",
    "model-file": "CONFIG_GROUP_INFER_MODEL",
    "net-scale-factor": "CONFIG_GROUP_INFER_SCALE_FACTOR",
    "network-mode": "CONFIG_GROUP_INFER_NETWORK_MODE",
    "network-type": "CONFIG_GROUP_INFER_NETWORK_TYPE",
    "num-detected-classes": "CONFIG_GROUP_INFER_NUM_DETECTED_CLASSES",
    "offsets": "CONFIG_GROUP_INFER_OFFSETS",
    "onnx-file": "CONFIG_GROUP_INFER_ONNX",
    "operate-on-class-ids": "CONFIG_GROUP_INFER_CLASS_IDS_FOR_OPERATION",
    "operate-on-gie-id": "CONFIG_GROUP_INFER_GIE_ID_FOR_OPERATION",
    "output-blob-names": "CONFIG_GROUP_INFER_OUTPUT_BLOB_NAMES",
    "output-instance-mask": "CONFIG_GROUP_INFER_OUTPUT_INSTANCE_MASK",
    "output-io-formats": "CONFIG_GROUP_INFER_OUTPUT_IO_FORMATS",
    "output-tensor-meta": "CONFIG_GROUP_INFER_OUTPUT_TENSOR_META",
    "parse-bbox-func-name": "CONFIG_GROUP_INFER_CUSTOM_PARSE_BBOX_FUNC",
    "parse-classifier-func-name": "CONFIG_GROUP_INFER_CUSTOM_PARSE_CLASSIFIER_FUNC",
    "process-mode": "CONFIG_GROUP_INFER_PROCESS_MODE",
    "proto-file": "CONFIG_GROUP_INFER_PROTO",
    "scaling-compute-hw": "CONFIG_GROUP_INFER_SCALING_COMPUTE_HW",
    "scaling-filter": "CONFIG_GROUP_INFER_SCALING_FILTER",
    "secondary-reinfer-interval": "CONFIG_GROUP_INFER_SECONDARY_REINFER_INTERVAL",
    "segmentation-threshold": "CONFIG_GROUP_INFER_SEGMENTATION_THRESHOLD",
    "symmetric-padding": "CONFIG_GROUP_INFER_SYMMETRIC_PADDING",
    "tlt-encoded-model": "CONFIG_GROUP_INFER_TLT_ENCODED_MODEL",
    "tlt-model-key": "CONFIG_GROUP_INFER_TLT_MODEL_KEY",
    "uff-file": "CONFIG_GROUP_INFER_UFF",
    "uff-input-blob-name": "CONFIG_GROUP_INFER_UFF_INPUT_BLOB_NAME",
    "uff-input-dims": "CONFIG_GROUP_INFER_UFF_INPUT_DIMENSIONS_LEGACY_V2",
    "use-dla-core": "CONFIG_GROUP_INFER_USE_DLA_CORE",
    "workspace-size": "CONFIG_GROUP_INFER_WORKSPACE_SIZE",
}
# [class-attrs-all] / [class-attrs-<id>] key -> its macro (parsed in gst_nvinfer_parse_class_attrs)
NVINFER_CLASS_ATTRS_SOURCE: dict[str, str] = {
    "dbscan-min-score": "CONFIG_GROUP_INFER_CLASS_ATTRS_DBSCAN_MIN_SCORE",
    "detected-max-h": "CONFIG_GROUP_INFER_CLASS_ATTRS_DETECTED_MAX_HEIGHT",
    "detected-max-w": "CONFIG_GROUP_INFER_CLASS_ATTRS_DETECTED_MAX_WIDTH",
    "detected-min-h": "CONFIG_GROUP_INFER_CLASS_ATTRS_DETECTED_MIN_HEIGHT",
    "detected-min-w": "CONFIG_GROUP_INFER_CLASS_ATTRS_DETECTED_MIN_WIDTH",
    "eps": "CONFIG_GROUP_INFER_CLASS_ATTRS_EPS",
    "group-threshold": "CONFIG_GROUP_INFER_CLASS_ATTRS_GROUP_THRESHOLD",
    "minBoxes": "CONFIG_GROUP_INFER_CLASS_ATTRS_MIN_BOXES",
    "nms-iou-threshold": "CONFIG_GROUP_INFER_CLASS_ATTRS_NMS_IOU_THRESHOLD",
    "post-cluster-threshold": "CONFIG_GROUP_INFER_CLASS_ATTRS_POST_CLUSTER_THRESHOLD",
    "pre-cluster-threshold": "CONFIG_GROUP_INFER_CLASS_ATTRS_PRE_CLUSTER_THRESHOLD",
    "roi-bottom-offset": "CONFIG_GROUP_INFER_CLASS_ATTRS_ROI_BOTTOM_OFFSET",
    "roi-top-offset": "CONFIG_GROUP_INFER_CLASS_ATTRS_ROI_TOP_OFFSET",
    "threshold": "CONFIG_GROUP_INFER_CLASS_ATTRS_THRESHOLD",
    "topk": "CONFIG_GROUP_INFER_CLASS_ATTRS_TOP_K",
}
NVINFER_PROPERTY = frozenset(NVINFER_PROPERTY_SOURCE)
NVINFER_CLASS_ATTRS = frozenset(NVINFER_CLASS_ATTRS_SOURCE)

# deepstream-app group ("source0", "sink1": the group name without its index) -> key -> the macro
# its parse function compares the key with (DeepStream 8.0, files above)
DEEPSTREAM_APP_SOURCE: dict[str, dict[str, str]] = {
    "application": {  # deepstream_app_config_parser.c parse_app()
        "enable-perf-measurement": "CONFIG_GROUP_APP_ENABLE_PERF_MEASUREMENT",
        "gie-kitti-output-dir": "CONFIG_GROUP_APP_GIE_OUTPUT_DIR",
        "kitti-track-output-dir": "CONFIG_GROUP_APP_GIE_TRACK_OUTPUT_DIR",
        "perf-measurement-interval-sec": "CONFIG_GROUP_APP_PERF_MEASUREMENT_INTERVAL",
    },
    "tiled-display": {  # deepstream_config_file_parser.c parse_tiled_display()
        "columns": "CONFIG_GROUP_TILED_DISPLAY_COLUMNS",
        "enable": "CONFIG_GROUP_ENABLE",
        "gpu-id": "CONFIG_GPU_ID",
        "height": "CONFIG_GROUP_TILED_DISPLAY_HEIGHT",
        "nvbuf-memory-type": "CONFIG_NVBUF_MEMORY_TYPE",
        "rows": "CONFIG_GROUP_TILED_DISPLAY_ROWS",
        "width": "CONFIG_GROUP_TILED_DISPLAY_WIDTH",
    },
    "source": {  # deepstream_config_file_parser.c parse_source()
        "camera-csi-sensor-id": "CONFIG_GROUP_SOURCE_CAMERA_CSI_SID",
        "camera-fps-d": "CONFIG_GROUP_SOURCE_CAMERA_FPS_D",
        "camera-fps-n": "CONFIG_GROUP_SOURCE_CAMERA_FPS_N",
        "camera-height": "CONFIG_GROUP_SOURCE_CAMERA_HEIGHT",
        "camera-id": "CONFIG_GROUP_SOURCE_CAMERA_ID",
        "camera-v4l2-dev-node": "CONFIG_GROUP_SOURCE_CAMERA_V4L2_DEVNODE",
        "camera-width": "CONFIG_GROUP_SOURCE_CAMERA_WIDTH",
        "cudadec-memtype": '"cudadec-memtype" (a string literal in parse_source)',
        "drop-frame-interval": "CONFIG_GROUP_SOURCE_DROP_FRAME_INTERVAL",
        "enable": "CONFIG_GROUP_ENABLE",
        "gpu-id": "CONFIG_GPU_ID",
        "intra-decode-enable": "CONFIG_GROUP_SOURCE_INTRA_DECODE",
        "latency": "CONFIG_GROUP_SOURCE_LATENCY",
        "num-extra-surfaces": "CONFIG_GROUP_SOURCE_NUM_EXTRA_SURFACES",
        "num-sources": "CONFIG_GROUP_SOURCE_NUM_SOURCES",
        "nvbuf-memory-type": "CONFIG_NVBUF_MEMORY_TYPE",
        "rtsp-reconnect-interval-sec": "CONFIG_GROUP_SOURCE_RTSP_RECONNECT_INTERVAL_SEC",
        "select-rtp-protocol": "CONFIG_GROUP_SOURCE_SELECT_RTP_PROTOCOL",
        "type": "CONFIG_GROUP_SOURCE_TYPE",
        "uri": "CONFIG_GROUP_SOURCE_URI",
    },
    "streammux": {  # deepstream_config_file_parser.c parse_streammux()
        "attach-sys-ts-as-ntp": "CONFIG_GROUP_STREAMMUX_ATTACH_SYS_TS_AS_NTP",
        "batch-size": "CONFIG_GROUP_STREAMMUX_BATCH_SIZE",
        "batched-push-timeout": "CONFIG_GROUP_STREAMMUX_BATCHED_PUSH_TIMEOUT",
        "config-file-path": "CONFIG_GROUP_STREAMMUX_CONFIG_FILE_PATH",
        "enable-padding": "CONFIG_GROUP_STREAMMUX_ENABLE_PADDING",
        "gpu-id": "CONFIG_GPU_ID",
        "height": "CONFIG_GROUP_STREAMMUX_HEIGHT",
        "live-source": "CONFIG_GROUP_STREAMMUX_LIVE_SOURCE",
        "nvbuf-memory-type": "CONFIG_NVBUF_MEMORY_TYPE",
        "sync-inputs": "CONFIG_GROUP_STREAMMUX_SYNC_INPUTS",
        "width": "CONFIG_GROUP_STREAMMUX_WIDTH",
    },
    "primary-gie": {  # deepstream_config_file_parser.c parse_gie()
        "batch-size": "CONFIG_GROUP_GIE_BATCH_SIZE",
        "bbox-bg-color": "CONFIG_GROUP_GIE_BBOX_BG_COLOR",
        "bbox-border-color": "CONFIG_GROUP_GIE_BBOX_BORDER_COLOR",
        "config-file": "CONFIG_GROUP_GIE_CONFIG_FILE",
        "enable": "CONFIG_GROUP_ENABLE",
        "gie-unique-id": "CONFIG_GROUP_GIE_UNIQUE_ID",
        "gpu-id": "CONFIG_GPU_ID",
        "infer-raw-output-dir": "CONFIG_GROUP_GIE_RAW_OUTPUT_DIR",
        "interval": "CONFIG_GROUP_GIE_INTERVAL",
        "labelfile-path": "CONFIG_GROUP_GIE_LABEL",
        "model-engine-file": "CONFIG_GROUP_GIE_MODEL_ENGINE",
        "nvbuf-memory-type": "CONFIG_NVBUF_MEMORY_TYPE",
        "operate-on-class-ids": "CONFIG_GROUP_GIE_CLASS_IDS_FOR_OPERATION",
        "operate-on-gie-id": "CONFIG_GROUP_GIE_ID_FOR_OPERATION",
        "plugin-type": "CONFIG_GROUP_GIE_PLUGIN_TYPE",
    },
    "tracker": {  # deepstream_config_file_parser.c parse_tracker()
        "compute-hw": "CONFIG_GROUP_TRACKER_COMPUTE_HW",
        "display-tracking-id": "CONFIG_GROUP_TRACKER_DISPLAY_TRACKING_ID",
        "enable": "CONFIG_GROUP_ENABLE",
        "gpu-id": "CONFIG_GPU_ID",
        "ll-config-file": "CONFIG_GROUP_TRACKER_LL_CONFIG_FILE",
        "ll-lib-file": "CONFIG_GROUP_TRACKER_LL_LIB_FILE",
        "tracker-height": "CONFIG_GROUP_TRACKER_HEIGHT",
        "tracker-width": "CONFIG_GROUP_TRACKER_WIDTH",
        "tracking-id-reset-mode": "CONFIG_GROUP_TRACKER_TRACKING_ID_RESET_MODE",
        "tracking-surface-type": "CONFIG_GROUP_TRACKER_TRACKING_SURFACE_TYPE",
    },
    "osd": {  # deepstream_config_file_parser.c parse_osd()
        "border-width": "CONFIG_GROUP_OSD_BORDER_WIDTH",
        "clock-color": "CONFIG_GROUP_OSD_CLOCK_COLOR",
        "clock-text-size": "CONFIG_GROUP_OSD_CLOCK_TEXT_SIZE",
        "clock-x-offset": "CONFIG_GROUP_OSD_CLOCK_X_OFFSET",
        "clock-y-offset": "CONFIG_GROUP_OSD_CLOCK_Y_OFFSET",
        "display-bbox": "CONFIG_GROUP_OSD_SHOW_BBOX",
        "display-mask": "CONFIG_GROUP_OSD_SHOW_MASK",
        "display-text": "CONFIG_GROUP_OSD_SHOW_TEXT",
        "enable": "CONFIG_GROUP_ENABLE",
        "font": "CONFIG_GROUP_OSD_FONT",
        "gpu-id": "CONFIG_GPU_ID",
        "nvbuf-memory-type": "CONFIG_NVBUF_MEMORY_TYPE",
        "process-mode": "CONFIG_GROUP_OSD_MODE",
        "show-clock": "CONFIG_GROUP_OSD_CLOCK_ENABLE",
        "text-bg-color": "CONFIG_GROUP_OSD_TEXT_BG_COLOR",
        "text-color": "CONFIG_GROUP_OSD_TEXT_COLOR",
        "text-size": "CONFIG_GROUP_OSD_TEXT_SIZE",
    },
    "sink": {  # deepstream_config_file_parser.c parse_sink()
        "bitrate": "CONFIG_GROUP_SINK_BITRATE",
        "codec": "CONFIG_GROUP_SINK_CODEC",
        "container": "CONFIG_GROUP_SINK_CONTAINER",
        "enable": "CONFIG_GROUP_ENABLE",
        "enc-type": "CONFIG_GROUP_SINK_ENC_TYPE",
        "height": "CONFIG_GROUP_SINK_HEIGHT",
        "iframeinterval": "CONFIG_GROUP_SINK_IFRAMEINTERVAL",
        "output-file": "CONFIG_GROUP_SINK_OUTPUT_FILE",
        "profile": "CONFIG_GROUP_SINK_PROFILE",
        "qos": "CONFIG_GROUP_SINK_QOS",
        "rtsp-port": "CONFIG_GROUP_SINK_RTSP_PORT",
        "source-id": "CONFIG_GROUP_SINK_SOURCE_ID",
        "sync": "CONFIG_GROUP_SINK_SYNC",
        "type": "CONFIG_GROUP_SINK_TYPE",
        "udp-port": "CONFIG_GROUP_SINK_UDP_PORT",
        "width": "CONFIG_GROUP_SINK_WIDTH",
    },
    "tests": {  # deepstream_app_config_parser.c parse_tests()
        "file-loop": "CONFIG_GROUP_TESTS_FILE_LOOP",
    },
}
DEEPSTREAM_APP = {group: frozenset(entries) for group, entries in DEEPSTREAM_APP_SOURCE.items()}
