"""The ``config.pbtxt`` of each model in a generated repository (see :mod:`.repository`).

Names (``NAME`` is :attr:`RepositoryOptions.name`, ``rtdetr`` by default):

* ``NAME`` (ensemble, ``max_batch_size: 0``): input ``image`` (``TYPE_STRING [1]``, one encoded
  image file: JPEG, PNG, BMP, WebP, TIFF); outputs ``boxes`` (``TYPE_FP32 [-1,4]``, pixels xyxy of
  the original image), ``scores`` (``TYPE_FP32 [-1]``), ``class_ids`` (``TYPE_INT32 [-1]``,
  ``labels.txt``) and ``image_size`` (``TYPE_INT32 [2]``, width, height).
* ``NAME_preprocess`` (Python backend, unbatched, ``preprocess_instances`` CPU instances): decode +
  the contract's preprocessing -> ``images [1,3,H,W]``, ``image_size [1,2]``.
* ``NAME_detector`` (batched, dynamic batching): TensorRT plan, ONNX Runtime, or the Python
  backend running :class:`~rtdetr_edge.Detector`; input ``images [3,H,W]`` per item.
* ``NAME_postprocess`` (Python backend, unbatched): threshold, scale to pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..contract import ModelContract
from .pbtxt import Enum, Message, parameter

# ONNX TensorProto element types -> Triton data types (the ones an RT-DETR graph can have)
ONNX_TO_TRITON = {1: "TYPE_FP32", 10: "TYPE_FP16", 6: "TYPE_INT32", 7: "TYPE_INT64", 9: "TYPE_BOOL", 11: "TYPE_FP64"}
POSTPROCESS_INPUT_PREFIX = "detector_"  # rtdetr_edge.serving.triton_models.postprocess.INPUT_PREFIX


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, Triton data type, dims without the batch dimension."""

    name: str
    data_type: str
    dims: tuple[int, ...]


@dataclass(frozen=True)
class DetectorIO:
    """The detector graph's input and outputs (from the ONNX that the repository serves)."""

    input: TensorSpec
    outputs: tuple[TensorSpec, ...]


def _tensor(spec: TensorSpec, dims: tuple[int, ...] | None = None, label_file: str = "") -> Message:
    msg: Message = [
        ("name", spec.name),
        ("data_type", Enum(spec.data_type)),
        ("dims", list(spec.dims if dims is None else dims)),
    ]
    if label_file:
        msg.append(("label_filename", label_file))
    return msg


def _instances(count: int, kind: str) -> tuple[str, Message]:
    return ("instance_group", [("count", count), ("kind", Enum(kind))])


def preprocess_config(name: str, contract: ModelContract, instances: int) -> Message:
    p = contract.preprocessing
    return [
        ("name", name),
        ("backend", "python"),
        ("max_batch_size", 0),
        ("input", _tensor(TensorSpec("image", "TYPE_STRING", (1,)))),
        ("output", _tensor(TensorSpec("images", "TYPE_FP32", (1, 3, p.height, p.width)))),
        ("output", _tensor(TensorSpec("image_size", "TYPE_INT32", (1, 2)))),
        _instances(instances, "KIND_CPU"),
    ]


def _batching(max_batch: int, preferred: tuple[int, ...], queue_delay_us: int) -> Message:
    return [("preferred_batch_size", list(preferred)), ("max_queue_delay_microseconds", queue_delay_us)]


def _warmup(io: DetectorIO) -> Message:
    data: Message = [("data_type", Enum(io.input.data_type)), ("dims", list(io.input.dims)), ("zero_data", True)]
    return [("name", "zeros"), ("batch_size", 1), ("inputs", [("key", io.input.name), ("value", data)])]


def detector_config(
    name: str,
    kind: str,
    io: DetectorIO,
    max_batch: int,
    preferred: tuple[int, ...],
    queue_delay_us: int,
    instances: int,
    cuda_graphs: bool,
    threads: int | None,
) -> Message:
    """``kind``: ``tensorrt`` (``platform: "tensorrt_plan"``, GPU instances, CUDA graphs, warm-up),
    ``onnxruntime`` (``platform: "onnxruntime_onnx"``, CPU instances) or ``python`` (the Python
    backend running rtdetr-edge's Detector on ``1/model.onnx``, CPU instances)."""
    msg: Message = [("name", name)]
    if kind == "tensorrt":
        msg.append(("platform", "tensorrt_plan"))
    elif kind == "onnxruntime":
        msg.append(("platform", "onnxruntime_onnx"))
    else:
        msg.append(("backend", "python"))
    msg.append(("max_batch_size", max_batch))
    msg.append(("input", _tensor(io.input)))
    msg += [("output", _tensor(o)) for o in io.outputs]
    msg.append(("dynamic_batching", _batching(max_batch, preferred, queue_delay_us)))
    msg.append(_instances(instances, "KIND_GPU" if kind == "tensorrt" else "KIND_CPU"))
    if kind == "tensorrt":
        if cuda_graphs:
            # the TensorRT backend captures one graph per batch size it chooses from the config
            msg.append(("optimization", [("cuda", [("graphs", True)])]))
        msg.append(("model_warmup", _warmup(io)))
    elif kind == "onnxruntime":
        if threads:
            msg.append(parameter("intra_op_thread_count", str(threads)))
        msg.append(("model_warmup", _warmup(io)))
    else:
        msg.append(parameter("model_file", "model.onnx"))
        if threads:
            msg.append(parameter("threads", str(threads)))
    return msg


def postprocess_config(
    name: str, io: DetectorIO, conf: float, max_det: int, clip: bool, label_file: str = "labels.txt"
) -> Message:
    msg: Message = [("name", name), ("backend", "python"), ("max_batch_size", 0)]
    msg += [
        ("input", _tensor(TensorSpec(POSTPROCESS_INPUT_PREFIX + o.name, o.data_type, (1, *o.dims)))) for o in io.outputs
    ]
    msg.append(("input", _tensor(TensorSpec("image_size", "TYPE_INT32", (1, 2)))))
    msg += _result_outputs(label_file)
    msg.append(_instances(1, "KIND_CPU"))
    msg += [parameter("conf", repr(conf)), parameter("max_det", str(max_det)), parameter("clip", str(clip).lower())]
    return msg


def _result_outputs(label_file: str) -> Message:
    return [
        ("output", _tensor(TensorSpec("boxes", "TYPE_FP32", (-1, 4)))),
        ("output", _tensor(TensorSpec("scores", "TYPE_FP32", (-1,)))),
        ("output", _tensor(TensorSpec("class_ids", "TYPE_INT32", (-1,)), label_file=label_file)),
        ("output", _tensor(TensorSpec("image_size", "TYPE_INT32", (2,)))),
    ]


def _step(model: str, inputs: dict[str, str], outputs: dict[str, str]) -> Message:
    msg: Message = [("model_name", model), ("model_version", -1)]
    msg += [("input_map", [("key", k), ("value", v)]) for k, v in inputs.items()]
    msg += [("output_map", [("key", k), ("value", v)]) for k, v in outputs.items()]
    return msg


def ensemble_config(
    name: str, io: DetectorIO, class_names: tuple[str, ...], conf: float, label_file: str = "labels.txt"
) -> Message:
    """The ensemble ``name``: image bytes -> preprocess -> detector -> postprocess -> results.

    Its ``parameters`` carry ``class_names`` (JSON) and ``conf`` so a client can name classes and
    knows which scores the server already dropped.
    """
    import json

    detector_out = {o.name: f"_detector_{o.name}" for o in io.outputs}
    steps: Message = [
        ("step", _step(f"{name}_preprocess", {"image": "image"}, {"images": "_images", "image_size": "_image_size"})),
        ("step", _step(f"{name}_detector", {io.input.name: "_images"}, detector_out)),
        (
            "step",
            _step(
                f"{name}_postprocess",
                {**{POSTPROCESS_INPUT_PREFIX + k: v for k, v in detector_out.items()}, "image_size": "_image_size"},
                {k: k for k in ("boxes", "scores", "class_ids", "image_size")},
            ),
        ),
    ]
    msg: Message = [
        ("name", name),
        ("platform", "ensemble"),
        ("max_batch_size", 0),
        ("input", _tensor(TensorSpec("image", "TYPE_STRING", (1,)))),
    ]
    msg += _result_outputs(label_file)
    msg.append(("ensemble_scheduling", steps))
    msg += [parameter("class_names", json.dumps(list(class_names))), parameter("conf", repr(conf))]
    return msg
