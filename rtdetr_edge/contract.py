"""The model I/O contract: everything needed to feed a graph and read its outputs.

It travels with every artifact (``metadata.json`` in a bundle and the ONNX ``metadata_props``)
and is read from the model's own image-processor config at export time, never assumed. The
runtime preprocesses and postprocesses from this alone.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import BundleError

CONTRACT_VERSION = 1
# key of the contract JSON in an ONNX model's metadata_props (and in engine sidecars)
METADATA_KEY = "rtdetr_edge.contract"

# Pillow resample names that an image-processor config may carry (PILImageResampling values).
RESAMPLE_NAMES = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# image processors whose class defaults normalise (a config may leave do_normalize/mean/std out)
DETR_STYLE_PROCESSORS = frozenset(
    {
        "DeformableDetrImageProcessor",
        "DeformableDetrImageProcessorPil",
        "DeformableDetrImageProcessorFast",
        "RfDetrImageProcessor",
    }
)
# image processors that resize without antialiasing
NON_ANTIALIASED_PROCESSORS = frozenset({"RfDetrImageProcessor"})

OUTPUT_TOPK = "topk"  # scores [N,K] f32, labels [N,K] i32, boxes [N,K,4] f32 normalised xyxy
OUTPUT_RAW = "raw"  # logits [N,Q,C] f32, pred_boxes [N,Q,4] f32 normalised cxcywh


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the input tensor.

    Attributes:
        height, width: input size; images are stretch-resized to it (no letterbox), as
            RT-DETR was trained.
        resample: the model processor's resample filter name (``"bilinear"``).
        antialias: the filter's support widens with the downscale factor, as Pillow's resize
            (and torchvision's ``antialias=True``) do (default); False: plain 2-tap interpolation,
            as ``RfDetrImageProcessor`` resizes (``antialias=False``).
        channel_order: ``"RGB"`` or ``"BGR"`` channel order the model expects.
        rescale_factor: multiply pixel values by this (``1/255``).
        do_normalize: subtract ``mean`` and divide by ``std`` after rescaling.
        mean, std: per-channel, in ``channel_order``.
        layout: ``"NCHW"``.
        dtype: ``"float32"``.
    """

    height: int
    width: int
    resample: str = "bilinear"
    antialias: bool = True
    channel_order: str = "RGB"
    rescale_factor: float = 1.0 / 255.0
    do_normalize: bool = False
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    layout: str = "NCHW"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise BundleError(f"contract: input size must be positive, got {self.height}x{self.width}")
        if self.channel_order not in ("RGB", "BGR"):
            raise BundleError(f"contract: channel_order must be RGB or BGR, got {self.channel_order!r}")
        if self.layout != "NCHW" or self.dtype != "float32":
            raise BundleError(f"contract: only NCHW float32 inputs are supported, got {self.layout} {self.dtype}")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s == 0 for s in self.std):
            raise BundleError(f"contract: mean/std must be 3 values, std non-zero; got {self.mean} {self.std}")


FRAME_INPUT_NAME = "frames"


@dataclass(frozen=True)
class FrameInput:
    """A frame-input graph's input: camera frames, preprocessed inside the graph (``rtdetr_edge.export.frames``).

    Attributes:
        width, height: the frame size the graph takes (its resize weights are computed for it).
        input_name: graph input (``"frames"``).
        dtype, layout, channel_order: ``uint8`` ``NHWC`` ``BGR``, as cameras and OpenCV give
            frames; only these.
        resize: how the graph resizes: ``"pillow"`` (the processor's own filter as two MatMuls,
            rounded per pass like Pillow's 8-bit path).
    """

    width: int
    height: int
    input_name: str = FRAME_INPUT_NAME
    dtype: str = "uint8"
    layout: str = "NHWC"
    channel_order: str = "BGR"
    resize: str = "pillow"

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise BundleError(f"contract: frame {name} must be an integer >= 1, got {v!r}")
        if (self.dtype, self.layout, self.channel_order) != ("uint8", "NHWC", "BGR"):
            raise BundleError(
                f"contract: frame inputs are uint8 NHWC BGR, got {self.dtype} {self.layout} {self.channel_order}"
            )
        if self.resize != "pillow":
            raise BundleError(f"contract: frame resize must be 'pillow', got {self.resize!r}")

    @property
    def key(self) -> str:
        """``"1280x720"``: how bundles name this frame size."""
        return f"{self.width}x{self.height}"

    @property
    def shape(self) -> tuple[int, int, int]:
        """One frame's ``(H, W, 3)``."""
        return (self.height, self.width, 3)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ModelContract:
    """Input and output description of one exported RT-DETR graph.

    Attributes:
        preprocessing: see :class:`Preprocessing`.
        class_names: label index -> name (from the model's ``id2label``).
        input_name: graph input (``"images"``, float32 ``[N,3,H,W]``).
        output_kind: ``"topk"`` (postprocessing in the graph) or ``"raw"``.
        output_names: graph outputs in order.
        top_k: K of the in-graph top-k (``"topk"`` only).
        num_queries: decoder queries.
        box_format: ``"xyxy_norm"`` (topk: corners relative to the image, unclipped) or
            ``"cxcywh_norm"`` (raw).
        min_batch, max_batch: batch range the graph accepts (``max_batch`` 0 = unbounded).
        version: contract schema version.
        frame: set on frame-input graphs (:class:`FrameInput`): the graph's input is then
            ``frame.input_name`` (uint8 frames) and ``input_name`` is the tensor the front
            writes; None (default) for graphs that take the preprocessed tensor.
    """

    preprocessing: Preprocessing
    class_names: tuple[str, ...]
    input_name: str = "images"
    output_kind: str = OUTPUT_TOPK
    output_names: tuple[str, ...] = ("scores", "labels", "boxes")
    top_k: int = 300
    num_queries: int = 300
    box_format: str = "xyxy_norm"
    min_batch: int = 1
    max_batch: int = 0
    version: int = CONTRACT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    frame: FrameInput | None = None

    def __post_init__(self) -> None:
        if self.output_kind not in (OUTPUT_TOPK, OUTPUT_RAW):
            raise BundleError(f"contract: output_kind must be 'topk' or 'raw', got {self.output_kind!r}")
        if not self.class_names:
            raise BundleError("contract: class_names is empty")
        if self.min_batch < 1 or (self.max_batch and self.max_batch < self.min_batch):
            raise BundleError(f"contract: bad batch range {self.min_batch}..{self.max_batch}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def graph_input(self) -> str:
        """The graph's input name: ``frame.input_name`` for frame-input graphs, else ``input_name``."""
        return self.frame.input_name if self.frame is not None else self.input_name

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["class_names"] = list(self.class_names)
        d["output_names"] = list(self.output_names)
        if self.frame is None:  # contracts without a frame input read as before
            d.pop("frame")
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: object, source: str = "contract") -> ModelContract:
        """Validate and build a contract; ``source`` names the file in error messages."""
        if not isinstance(d, dict):
            raise BundleError(f"{source}: expected a JSON object for the model contract, got {type(d).__name__}")
        version = d.get("version")
        if version != CONTRACT_VERSION:
            raise BundleError(
                f"{source}: unknown model contract version {version!r}; this rtdetr-edge reads version "
                f"{CONTRACT_VERSION}. Rebuild the bundle or upgrade rtdetr-edge."
            )
        try:
            pre_d = dict(d["preprocessing"])
            for key in ("mean", "std"):
                if key in pre_d:
                    pre_d[key] = tuple(float(v) for v in pre_d[key])
            pre = Preprocessing(**_known(Preprocessing, pre_d))
            body = _known(cls, d)
            body["preprocessing"] = pre
            body["class_names"] = tuple(str(n) for n in d["class_names"])
            body["output_names"] = tuple(d.get("output_names", ("scores", "labels", "boxes")))
            frame = d.get("frame")
            body["frame"] = FrameInput(**_known(FrameInput, dict(frame))) if frame is not None else None
            return cls(**body)
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{source}: invalid model contract ({exc!r})") from exc

    @classmethod
    def from_json(cls, text: str, source: str = "contract") -> ModelContract:
        try:
            return cls.from_dict(json.loads(text), source)
        except json.JSONDecodeError as exc:
            raise BundleError(f"{source}: not valid JSON ({exc})") from exc


def check_same_contract(recorded: ModelContract, embedded_json: str, recorded_in: str, artifact: str) -> None:
    """BundleError unless ``recorded`` (a bundle's ``metadata.json``) matches the contract the
    artifact carries in its own ``metadata_props`` (the frame input aside).

    The artifact's copy is written with the graph and covered by its sha256; the one in
    ``metadata.json`` is not, so an edit there (class names, input size) would give silently
    wrong labels or fail only at the first inference.
    """
    embedded = ModelContract.from_json(embedded_json, artifact)
    mine = dataclasses.replace(recorded, frame=None).to_dict()
    theirs = dataclasses.replace(embedded, frame=None).to_dict()
    differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
    if differ:
        detail = "; ".join(f"{k}: {mine.get(k)!r} there, {theirs.get(k)!r} in the artifact" for k in differ)
        raise BundleError(
            f"{recorded_in}: the model contract differs from the one inside {artifact} ({detail[:400]}); "
            "it was edited after the build: restore it or rebuild the bundle"
        )


def _known(klass: type, d: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(klass)}
    return {k: v for k, v in d.items() if k in names}


def preprocessing_from_processor_config(cfg: dict[str, Any], source: str = "preprocessor_config.json") -> Preprocessing:
    """Read the preprocessing contract from a Hugging Face image-processor config.

    The processor config is the authority (the model card text may disagree): ``size``,
    ``resample``, ``do_rescale``/``rescale_factor``, ``do_normalize``/``image_mean``/``image_std``.
    Hugging Face image processors work on RGB images.

    ``size`` must be a fixed ``{"height", "width"}`` (or one int): the graph has one input size.
    ``do_pad`` (DETR-style processors: ``DeformableDetrImageProcessor`` for LW-DETR,
    ``RfDetrImageProcessor``) is accepted when it is a no-op: those processors pad each image to
    the batch's largest (or ``pad_size``), and after a fixed-size resize every image already is
    ``height x width``, so nothing is padded and the pixel mask is all ones (the models' default).
    An aspect-preserving ``shortest_edge``/``longest_edge`` size with padding is refused: its
    images have different sizes and need a pixel mask, which a fixed-size graph cannot take.
    """
    size = cfg.get("size") or {}
    if isinstance(size, int):
        height = width = size
    elif isinstance(size, dict) and "height" in size and "width" in size:
        height, width = int(size["height"]), int(size["width"])
    elif isinstance(size, dict) and ("shortest_edge" in size or "longest_edge" in size):
        raise BundleError(
            f"{source}: size {size!r} resizes keeping the aspect ratio (and pads to the batch), so images "
            "differ in size; a fixed-size export needs size {'height': H, 'width': W} (as the published "
            "RT-DETR-family checkpoints carry, e.g. 640x640): set it in the processor config to export"
        )
    else:
        raise BundleError(
            f"{source}: size {size!r} is not a fixed height/width; RT-DETR exports need a fixed input size"
        )
    if cfg.get("do_resize") is False:
        raise BundleError(f"{source}: do_resize is false; a fixed-size graph needs resizing")
    if cfg.get("do_pad"):
        pad = cfg.get("pad_size")
        if pad is not None and not (
            isinstance(pad, dict) and int(pad.get("height", -1)) == height and int(pad.get("width", -1)) == width
        ):
            raise BundleError(
                f"{source}: do_pad with pad_size {pad!r} pads the {height}x{width} image; padding preprocessing "
                "is not supported (only padding that is a no-op after the fixed-size resize)"
            )
    # the processor class's own defaults for keys a config leaves out (DETR-style processors
    # normalise with ImageNet mean/std unless told not to; RT-DETR's do not normalise)
    detr_style = cfg.get("image_processor_type") in DETR_STYLE_PROCESSORS
    resample = cfg.get("resample", 2)
    resample_name = RESAMPLE_NAMES.get(resample, str(resample)) if isinstance(resample, int) else str(resample)
    rescale = float(cfg.get("rescale_factor", 1.0 / 255.0)) if cfg.get("do_rescale", True) else 1.0
    normalize = bool(cfg.get("do_normalize", detr_style))
    mean = tuple(float(v) for v in cfg.get("image_mean", IMAGENET_MEAN)) if normalize else (0.0, 0.0, 0.0)
    std = tuple(float(v) for v in cfg.get("image_std", IMAGENET_STD)) if normalize else (1.0, 1.0, 1.0)
    return Preprocessing(
        height=height,
        width=width,
        resample=resample_name,
        # RfDetrImageProcessor rescales, then resizes with antialias=False (transformers 5.x)
        antialias=cfg.get("image_processor_type") not in NON_ANTIALIASED_PROCESSORS,
        channel_order="RGB",
        rescale_factor=rescale,
        do_normalize=normalize,
        mean=mean,  # type: ignore[arg-type]  # Preprocessing validates the length (3) itself
        std=std,  # type: ignore[arg-type]
    )
