"""The frame front: camera frames (uint8 ``[N,H,W,3]`` BGR) -> the model's input tensor, inside the graph.

A bundle built with ``--frame-size WxH`` carries, for each precision, the model graph with this
front prepended, so the device does the resize and scaling on the GPU and the host only copies the
frame. The front computes exactly what the model's own processor does (Hugging Face's Pillow
path), not an approximation of it:

1. ``Cast`` to float32 and ``Transpose`` to ``[N,3,H,W]``;
2. the processor's resize filter (Pillow's bilinear/bicubic/..., antialiased: its support is
   scaled by the downscale factor) as **two fixed-weight MatMuls**, the weight matrices computed
   here for this frame size the way Pillow computes its coefficients (:func:`resample_weights`),
   quantised to Pillow's 22-bit fixed point, in Pillow's pass order (:func:`resize_order`); after
   each pass the values are rounded half up and clipped to 0..255, as Pillow's 8-bit passes do;
3. ``Gather`` for the channel order, ``Mul``/``Add`` for rescale and normalisation.

Every node is named ``frame/...`` (the engine builder pins ``frame/*`` to FP32 on weakly typed
TensorRT networks; the host's FP16 and INT8 conversions never see the front, which is prepended
to their finished graphs). Only numpy and onnx are needed (no torch), so the build adds frame
artifacts to an existing bundle torch-free.

:func:`prepend_scaling` is the same front without its resize, channel gather and uint8 cast: its
input is the resized 0-255 float image DeepStream's nvinfer hands over (``rtdetr-deepstream``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rtdetr_edge.contract import FrameInput, ModelContract, Preprocessing
from rtdetr_edge.errors import BundleError, InputError

if TYPE_CHECKING:
    import onnx

FRAME_PREFIX = "frame/"
PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed-point coefficients for 8-bit images (Resample.c)

# The ops the front is built from (all in TensorRT 8.6's parser matrix, rtdetr_edge.export.trt_ops, which
# checks the rest). TensorRT takes UINT8 only as a network input/output cast right away to float,
# which the front's first node does.
FRONT_OPS = frozenset({"Cast", "Transpose", "MatMul", "Add", "Floor", "Clip", "Gather", "Mul"})


def _bilinear(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


def _bicubic(x: np.ndarray) -> np.ndarray:
    a = -0.5  # Keys' cubic convolution with a = -0.5, as Pillow
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def _box(x: np.ndarray) -> np.ndarray:
    return np.where((x > -0.5) & (x <= 0.5), 1.0, 0.0)


def _sinc(x: np.ndarray) -> np.ndarray:
    return np.sinc(x)  # sin(pi x) / (pi x), 1 at 0


def _hamming(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x >= 1.0, 0.0, _sinc(x) * (0.54 + 0.46 * np.cos(np.pi * x)))


def _lanczos(x: np.ndarray) -> np.ndarray:
    return np.where((x >= -3.0) & (x < 3.0), _sinc(x) * _sinc(x / 3.0), 0.0)


# filter name -> (kernel, support at scale 1), Pillow's separable filters
FILTERS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], float]] = {
    "bilinear": (_bilinear, 1.0),
    "bicubic": (_bicubic, 2.0),
    "box": (_box, 0.5),
    "hamming": (_hamming, 1.0),
    "lanczos": (_lanczos, 3.0),
}


def resample_weights(in_size: int, out_size: int, resample: str = "bilinear", fixed_point: bool = True) -> np.ndarray:
    """The ``[out_size, in_size]`` matrix of Pillow's resampling coefficients along one axis.

    Output pixel ``i`` is centred at ``(i + 0.5) * scale`` in the source (``scale = in / out``);
    the filter's support is widened by ``max(scale, 1)`` (antialiasing when downscaling) and its
    argument divided by it; taps span the source pixels whose centres lie within the support,
    clamped to the image; each row is normalised to sum 1.

    Args:
        in_size, out_size: source and destination length (>= 1).
        resample: ``bilinear`` (default), ``bicubic``, ``box``, ``hamming`` or ``lanczos``.
        fixed_point: round each coefficient to Pillow's 22-bit fixed point (half away from zero),
            as its 8-bit path uses them (default True); False keeps the float64 coefficients.
    """
    if resample not in FILTERS:
        raise InputError(f"resample {resample!r}: the frame front supports {', '.join(FILTERS)}")
    if in_size < 1 or out_size < 1:
        raise InputError(f"resample: sizes must be >= 1, got {in_size} -> {out_size}")
    kernel, base_support = FILTERS[resample]
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = base_support * filterscale
    weights = np.zeros((out_size, in_size), np.float64)
    for i in range(out_size):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)  # int() truncates toward zero, as C does
        hi = min(int(center + support + 0.5), in_size)
        taps = np.arange(lo, hi)
        k = kernel((taps - center + 0.5) / filterscale)
        total = k.sum()
        weights[i, lo:hi] = k / total if total != 0.0 else k
    if fixed_point:
        one = float(1 << PRECISION_BITS)
        weights = np.trunc(weights * one + np.where(weights < 0, -0.5, 0.5)) / one
    return weights


def pillow_resize_reference(
    image: np.ndarray, width: int, height: int, resample: str = "bilinear", rounding: bool = True
) -> np.ndarray:
    """Numpy model of the front's resize on one HxWxC uint8 image (float64; tests and benchmarks).

    The two passes in Pillow's order (:func:`resize_order`), each a matrix product with :func:`resample_weights`;
    ``rounding`` rounds half up and clips to 0..255 after each pass (Pillow's 8-bit passes).
    """
    h, w = image.shape[:2]
    x = image.astype(np.float64)
    passes = []
    for name in resize_order((h, w), (height, width)):
        if name == "x" and w != width:
            passes.append((1, resample_weights(w, width, resample)))
        if name == "y" and h != height:
            passes.append((0, resample_weights(h, height, resample)))
    for axis, weights in passes:
        x = np.tensordot(weights, x, axes=([1], [axis]))
        x = np.moveaxis(x, 0, axis)
        if rounding:
            x = np.clip(np.floor(x + 0.5), 0.0, 255.0)
    return x


def resize_order(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> str:
    """``"xy"`` (columns first) or ``"yx"``: the pass order Pillow uses for this resize.

    Pillow (13.0, ``ImagingResampleInner``) runs the vertical pass first when the height shrinks
    by more than twice as many pixels as the width, else the horizontal pass first (Pillow <= 11.0
    always went horizontal first; the two agree for landscape camera frames to a square input).
    The order matters for exactness only through the rounding between passes.
    """
    (sh, sw), (dh, dw) = src_hw, dst_hw
    return "yx" if sh - dh > 0 and sh - dh > 2 * (sw - dw) else "xy"


def cheaper_order(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> str:
    """The pass order with fewer multiply-accumulates as dense MatMuls.

    Columns first costs ``H*w*(W+h)`` per channel, rows first ``h*W*(H+w)``.
    """
    (sh, sw), (dh, dw) = src_hw, dst_hw
    return "yx" if dh * sw * (sh + dw) < sh * dw * (sw + dh) else "xy"


def resize_macs(src_hw: tuple[int, int], dst_hw: tuple[int, int], order: str | None = None) -> int:
    """Multiply-accumulates of the two resize MatMuls for one 3-channel frame."""
    (sh, sw), (dh, dw) = src_hw, dst_hw
    order = order or resize_order(src_hw, dst_hw)
    xy = (sh * sw * dw if sw != dw else 0) + (dh * sh * dw if sh != dh else 0)
    yx = (dh * sh * sw if sh != dh else 0) + (dh * sw * dw if sw != dw else 0)
    return 3 * (xy if order == "xy" else yx)


@dataclass(frozen=True)
class FrontReport:
    """What :func:`prepend_front` made: order, MACs, node count."""

    frame: FrameInput
    order: str
    macs: int
    nodes: int


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.ascontiguousarray(value), name)


def front_nodes(
    frame: FrameInput, pre: Preprocessing, output: str, output_dtype: int = 1
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], str]:
    """(nodes, initializers, order) of the front writing ``output`` from the ``frame.input_name`` input.

    ``output_dtype`` is the ONNX element type the model's input expects (1 float32, 10 float16).
    """
    from onnx import TensorProto, helper

    p = FRAME_PREFIX
    c = f"{p}const/"  # initializers: a namespace apart from node outputs
    nodes, inits = [], []

    def node(op: str, name: str, inputs: list[str], **attrs: Any) -> str:
        out = f"{p}{name}"
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    x = node("Cast", "cast", [frame.input_name], to=TensorProto.FLOAT)
    x = node("Transpose", "nchw", [x], perm=[0, 3, 1, 2])  # [N,H,W,3] -> [N,3,H,W]
    src, dst = (frame.height, frame.width), (pre.height, pre.width)
    order = resize_order(src, dst)
    inits += [_const(f"{c}half", np.array(0.5, np.float32)), _const(f"{c}zero", np.array(0.0, np.float32))]
    inits.append(_const(f"{c}max", np.array(255.0, np.float32)))

    def rounded(x: str, tag: str) -> str:
        # Pillow's 8-bit passes: (sum + 2^21) >> 22 then clip to 0..255, i.e. floor(x + 0.5) clipped
        x = node("Add", f"{tag}/half", [x, f"{c}half"])
        x = node("Floor", f"{tag}/floor", [x])
        return node("Clip", f"{tag}/clip", [x, f"{c}zero", f"{c}max"])

    passes = {"x": frame.width != pre.width, "y": frame.height != pre.height}
    for axis in order:
        if not passes[axis]:
            continue
        if axis == "x":  # [N,3,H,W] @ [W,w]
            inits.append(_const(f"{c}wx", resample_weights(frame.width, pre.width, pre.resample).T.astype(np.float32)))
            x = node("MatMul", "resize_x", [x, f"{c}wx"])
        else:  # [h,H] @ [N,3,H,w]
            inits.append(_const(f"{c}wy", resample_weights(frame.height, pre.height, pre.resample).astype(np.float32)))
            x = node("MatMul", "resize_y", [f"{c}wy", x])
        x = rounded(x, f"round_{axis}")
    if pre.channel_order == "RGB":  # frames are BGR
        inits.append(_const(f"{c}bgr_to_rgb", np.array([2, 1, 0], np.int32)))
        x = node("Gather", "rgb", [x, f"{c}bgr_to_rgb"], axis=1)
    _scale_nodes(pre, x, node, inits, output_dtype)
    nodes[-1].output[0] = output  # the last node writes the model's input tensor
    return nodes, inits, order


def _scale_nodes(
    pre: Preprocessing, x: str, node: Callable[..., str], inits: list[onnx.TensorProto], output_dtype: int
) -> str:
    """The processor's rescale and normalisation (one ``Mul``, an ``Add`` if there is a mean), then the input type."""
    from onnx import TensorProto

    c = f"{FRAME_PREFIX}const/"
    mean = np.asarray(pre.mean, np.float32) if pre.do_normalize else np.zeros(3, np.float32)
    std = np.asarray(pre.std, np.float32) if pre.do_normalize else np.ones(3, np.float32)
    scale = (np.float32(pre.rescale_factor) / std).astype(np.float32).reshape(1, 3, 1, 1)
    bias = (-mean / std).astype(np.float32).reshape(1, 3, 1, 1)
    inits.append(_const(f"{c}scale", scale))
    x = node("Mul", "scale", [x, f"{c}scale"])
    if np.any(bias != 0):
        inits.append(_const(f"{c}bias", bias))
        x = node("Add", "bias", [x, f"{c}bias"])
    if output_dtype != TensorProto.FLOAT:
        x = node("Cast", "to_input_type", [x], to=output_dtype)
    return x


# the DeepStream scaling graph's input: the 0-255 network-input image nvinfer hands over after its
# own resize (net-scale-factor=1, offsets 0), float32 NCHW in the model's channel order
IMAGE_INPUT_NAME = "image"


def scaling_front_nodes(
    pre: Preprocessing, input_name: str, output: str, output_dtype: int = 1
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """(nodes, initializers) of the front without a resize: 0-255 ``[N,3,H,W]`` float32 -> the model's input.

    The processor's rescale and per-channel normalisation (what nvinfer's single
    ``net-scale-factor`` cannot express for ImageNet mean/std), named ``frame/...`` like the frame front.
    """
    from onnx import helper

    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def node(op: str, name: str, inputs: list[str], **attrs: Any) -> str:
        out = f"{FRAME_PREFIX}{name}"
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    _scale_nodes(pre, input_name, node, inits, output_dtype)
    nodes[-1].output[0] = output
    return nodes, inits


def prepend_scaling(
    model: onnx.ModelProto, contract: ModelContract, input_name: str = IMAGE_INPUT_NAME
) -> tuple[onnx.ModelProto, ModelContract]:
    """A copy of ``model`` whose input is the 0-255 image ``input_name`` (float32 ``[N,3,H,W]``).

    The model's own input becomes the output of :func:`scaling_front_nodes`; outputs, opset and
    weights are unchanged. The returned contract (also embedded in the copy) says what the graph
    now takes: ``input_name``, rescale factor 1, no normalisation, so a host that preprocesses by
    it (the :class:`~rtdetr_edge.Detector`) feeds the graph what DeepStream does.
    """
    import onnx
    from onnx import TensorProto, helper

    from rtdetr_edge.contract import METADATA_KEY

    if contract.frame is not None:
        raise InputError("scaling front: the graph already takes camera frames; use the tensor-input graph")
    g = model.graph
    inputs = [i for i in g.input if i.name == contract.input_name]
    if not inputs:
        raise BundleError(f"scaling front: the graph has no input {contract.input_name!r}")
    model_in = inputs[0].type.tensor_type
    nodes, inits = scaling_front_nodes(contract.preprocessing, input_name, contract.input_name, model_in.elem_type)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    og = out.graph
    keep = [i for i in og.input if i.name != contract.input_name]
    del og.input[:]
    dims: list[str | int] = [d.dim_param or d.dim_value for d in model_in.shape.dim]
    og.input.append(helper.make_tensor_value_info(input_name, TensorProto.FLOAT, dims))
    og.input.extend(keep)
    body = list(og.node)
    del og.node[:]
    og.node.extend(nodes + body)
    og.initializer.extend(inits)
    pre = dataclasses.replace(
        contract.preprocessing, rescale_factor=1.0, do_normalize=False, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)
    )
    scaled = dataclasses.replace(contract, preprocessing=pre, input_name=input_name)
    props = {m.key: m.value for m in out.metadata_props}
    props[METADATA_KEY] = scaled.to_json()
    del out.metadata_props[:]
    for k, v in props.items():
        out.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    return out, scaled


def prepend_front(
    model: onnx.ModelProto, frame: FrameInput, contract: ModelContract
) -> tuple[onnx.ModelProto, FrontReport]:
    """A copy of ``model`` (onnx.ModelProto) whose input is ``frames`` uint8 ``[N,H,W,3]`` BGR.

    The model's own input (``contract.input_name``) becomes the front's output; its outputs,
    opset and weights are unchanged; the embedded contract gets ``frame``.

    Returns:
        (new model, :class:`FrontReport`).
    """
    import onnx
    from onnx import TensorProto, helper

    from rtdetr_edge.contract import METADATA_KEY

    if not contract.preprocessing.antialias:
        # the front's weights are Pillow's (support widened when downscaling); a processor that
        # resizes without antialiasing would get another filter than it was trained with
        raise InputError(
            f"--frame-size: the {contract.extra.get('model_type', 'model')} processor resizes without "
            "antialiasing; the frame front computes only Pillow's antialiased filters, so frames of this "
            "model take the host path"
        )
    g = model.graph
    inputs = [i for i in g.input if i.name == contract.input_name]
    if not inputs:
        raise BundleError(f"frame front: the graph has no input {contract.input_name!r}")
    model_in = inputs[0]
    dtype = model_in.type.tensor_type.elem_type
    batch = model_in.type.tensor_type.shape.dim[0]
    nodes, inits, order = front_nodes(frame, contract.preprocessing, contract.input_name, dtype)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    og = out.graph
    keep = [i for i in og.input if i.name != contract.input_name]
    del og.input[:]
    batch_dim: str | int = batch.dim_param or "N" if not batch.dim_value else batch.dim_value
    og.input.append(
        helper.make_tensor_value_info(frame.input_name, TensorProto.UINT8, [batch_dim, frame.height, frame.width, 3])
    )
    og.input.extend(keep)
    body = list(og.node)
    del og.node[:]
    og.node.extend(nodes + body)
    og.initializer.extend(inits)
    with_frame = ModelContract.from_dict({**contract.to_dict(), "frame": frame.to_dict()})
    props = {m.key: m.value for m in out.metadata_props}
    props[METADATA_KEY] = with_frame.to_json()
    del out.metadata_props[:]
    for k, v in props.items():
        out.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    macs = resize_macs(
        (frame.height, frame.width), (contract.preprocessing.height, contract.preprocessing.width), order
    )
    return out, FrontReport(frame, order, macs, len(nodes))


def front_op_faults(model: onnx.ModelProto, trt8: bool = True) -> list[str]:
    """Why TensorRT would not parse the frame front of ``model`` (empty: it would).

    Checks: the ``frame/`` nodes and the opset against TensorRT 8.6's parser matrix (with
    ``trt8``, the default) or 10.x's (:func:`rtdetr_edge.export.trt_ops.op_faults`); every ``frame/``
    node's op is one the front is built from (:data:`FRONT_OPS`); the uint8 input is consumed only
    by a Cast to float (TensorRT's UINT8 rule).
    """
    from onnx import TensorProto

    from .trt_ops import op_faults

    faults = op_faults(model, "8.6" if trt8 else "10", prefix=FRAME_PREFIX)
    for n in model.graph.node:
        if n.name.startswith(FRAME_PREFIX) and n.op_type not in FRONT_OPS:
            faults.append(f"node {n.name}: op {n.op_type} is not one the frame front is built from")
    uint8_inputs = {i.name for i in model.graph.input if i.type.tensor_type.elem_type == TensorProto.UINT8}
    for n in model.graph.node:
        for name in n.input:
            if name in uint8_inputs and not (
                n.op_type == "Cast" and any(a.name == "to" and a.i in (1, 10) for a in n.attribute)
            ):
                faults.append(f"node {n.name}: reads the uint8 input {name} without casting it to float first")
    return faults


# the graph each artifact entry names, and whether TensorRT 8.6 parses it (its op check applies)
_GRAPHS = (("file", "fp16_typed"), ("trt8_file", "trt8"))


def write_frame_artifacts(
    directory: str | os.PathLike[str],
    artifacts: dict[str, Any],
    contract: ModelContract,
    sizes: Sequence[tuple[int, int]],
) -> dict[str, Any]:
    """Write each precision's graph with the frame front prepended, for each frame size (in place).

    Args:
        directory: the bundle being assembled (its ``artifacts`` files are read from there).
        artifacts: ``metadata["artifacts"]``; each precision gets ``frames["WxH"]`` entries
            (file, trt8_file for int8, the frame spec and the front's pass order and MACs),
            replacing earlier ones; hashes are filled in by :func:`rtdetr_edge.bundle.finalize_bundle`.
        contract: the bundle's model contract.
        sizes: (width, height) of each camera frame size.

    Returns:
        The report: per precision and size the files, pass order, MACs, nodes.

    Raises:
        BundleError: a written graph fails the TensorRT 8.6 op check of its front.
    """
    import onnx

    from rtdetr_edge import atomic

    root = Path(directory)
    report: dict[str, Any] = {}
    for precision, art in artifacts.items():
        entries: dict[str, Any] = {}
        for width, height in sizes:
            frame = FrameInput(width=width, height=height)
            entry: dict[str, Any] = {"frame": frame.to_dict()}
            for key, kind in _GRAPHS:
                if not art.get(key):
                    continue
                model = onnx.load(str(root / art[key]))
                # TensorRT 8.6 parses the fp32 graph and int8's trt8 graph (the op check applies to
                # them); fp16 and the opset-19 Q/DQ graph are for TensorRT >= 10 and ONNX Runtime
                trt8 = kind == "trt8" or precision == "fp32"
                with_front, front = prepend_front(model, frame, contract)
                faults = front_op_faults(with_front, trt8=trt8)
                if faults:
                    raise BundleError(f"frame front for {art[key]} at {frame.key}: {'; '.join(faults)}")
                name = frame_file(str(art[key]), frame)
                with atomic.replacing_file(root / name, suffix=".onnx") as tmp:
                    onnx.save(with_front, str(tmp))
                entry[key] = name
                entry.update(order=front.order, macs=front.macs, nodes=front.nodes)
            entries[frame.key] = entry
        if entries:
            art["frames"] = entries
        else:
            art.pop("frames", None)
        report[precision] = {k: {n: e[n] for n in ("file", "order", "macs")} for k, e in entries.items()}
    return report


def frame_file(artifact_file: str, frame: FrameInput) -> str:
    """``model.fp16.onnx`` -> ``model.fp16.frames-1280x720.onnx``."""
    stem = artifact_file[: -len(".onnx")] if artifact_file.endswith(".onnx") else artifact_file
    return f"{stem}.frames-{frame.key}.onnx"


def parse_frame_size(text: str, what: str = "--frame-size") -> tuple[int, int]:
    """``"1280x720"`` -> (1280, 720); a one-line InputError naming ``what`` otherwise."""
    parts = str(text).lower().split("x")
    try:
        if len(parts) != 2:
            raise ValueError
        w, h = int(parts[0]), int(parts[1])
    except ValueError:
        raise InputError(f"{what} {text!r}: expected WIDTHxHEIGHT, e.g. 1280x720") from None
    if w < 1 or h < 1:
        raise InputError(f"{what} {text!r}: width and height must be >= 1")
    if w > 8192 or h > 8192:
        raise InputError(f"{what} {text!r}: at most 8192x8192 (the resize weights grow with the frame)")
    return w, h


def downscale(frame: FrameInput, pre: Preprocessing) -> float:
    """The larger of the two axes' downscale factors (1.0 or less: upscaling)."""
    return max(frame.width / pre.width, frame.height / pre.height)


__all__ = [
    "FILTERS",
    "FRAME_PREFIX",
    "IMAGE_INPUT_NAME",
    "FrontReport",
    "cheaper_order",
    "downscale",
    "frame_file",
    "front_op_faults",
    "parse_frame_size",
    "pillow_resize_reference",
    "prepend_front",
    "prepend_scaling",
    "resample_weights",
    "resize_macs",
    "resize_order",
    "scaling_front_nodes",
    "write_frame_artifacts",
]
