"""How a generated Triton repository serves the model (``rtdetr-triton``'s and ``rtdetr-serve``'s options)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from ..errors import InputError
from ..postprocess import PostprocessOptions

DetectorKind = Literal["tensorrt", "onnxruntime", "python"]
DETECTOR_KINDS: tuple[str, ...] = get_args(DetectorKind)
# bounds that keep a config inside Triton's int32 fields and a batch a GPU can hold
MAX_BATCH_LIMIT = 4096
MAX_INSTANCES = 64
MAX_QUEUE_DELAY_US = 10_000_000


@dataclass(frozen=True)
class RepositoryOptions:
    """How the repository serves the model.

    Attributes:
        detector: ``"tensorrt"`` (``platform: "tensorrt_plan"``, default: the production Triton
            container on a GPU), ``"onnxruntime"`` (``platform: "onnxruntime_onnx"``, CPU servers)
            or ``"python"`` (Triton's Python backend running rtdetr-edge's Detector: servers without
            those backends, such as the ``nvidia-pytriton`` wheel's).
        precision: ``"auto"`` (the bundle's default, for every detector: what a local ``Detector``
            runs, so served and local results agree), ``"fp32"``, ``"fp16"`` or ``"int8"``.
        name: the ensemble's name (``"rtdetr"``); the steps are ``NAME_preprocess`` and so on.
        max_batch: the detector's ``max_batch_size`` (8).
        preferred_batch: dynamic batching's preferred sizes (default: half of ``max_batch`` and
            ``max_batch``).
        queue_delay_us: how long the dynamic batcher waits for more requests (2000 µs).
        instances: detector instances (1; one execution context each on a GPU).
        preprocess_instances: preprocessing (decode + resize) instances on the CPU (2).
        cuda_graphs: TensorRT: ``optimization { cuda { graphs: true } }`` (True).
        threads: ONNX Runtime intra-op threads per instance (None: ONNX Runtime's choice).
        conf, max_det, clip: what the postprocess step keeps (rtdetr-edge's Detector defaults: 0.3, 300,
            boxes clipped to the image).
    """

    detector: DetectorKind = "tensorrt"
    precision: str = "auto"
    name: str = "rtdetr"
    max_batch: int = 8
    preferred_batch: tuple[int, ...] = ()
    queue_delay_us: int = 2000
    instances: int = 1
    preprocess_instances: int = 2
    cuda_graphs: bool = True
    threads: int | None = None
    conf: float = 0.3
    max_det: int = 300
    clip: bool = True

    def __post_init__(self) -> None:
        if self.detector not in DETECTOR_KINDS:
            raise InputError(f"--detector: expected one of {', '.join(DETECTOR_KINDS)}, got {self.detector!r}")
        if self.precision not in ("auto", "fp32", "fp16", "int8"):
            raise InputError(f"--precision: expected auto, fp32, fp16 or int8, got {self.precision!r}")
        if not self.name or not all(c.isalnum() or c in "_-" for c in self.name):
            raise InputError(f"--name: expected letters, digits, '_' or '-', got {self.name!r}")
        for flag, value, most in (
            ("--max-batch", self.max_batch, MAX_BATCH_LIMIT),
            ("--instances", self.instances, MAX_INSTANCES),
            ("--preprocess-instances", self.preprocess_instances, MAX_INSTANCES),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
                raise InputError(f"{flag}: expected an integer in 1..{most}, got {value!r}")
        delay = self.queue_delay_us
        if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= MAX_QUEUE_DELAY_US:
            raise InputError(f"--queue-delay-us: expected an integer in 0..{MAX_QUEUE_DELAY_US}, got {delay!r}")
        preferred = tuple(self.preferred_batch) or tuple(sorted({max(1, self.max_batch // 2), self.max_batch}))
        if any(isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= self.max_batch for b in preferred):
            raise InputError(f"--preferred-batch: expected sizes in 1..{self.max_batch}, got {list(preferred)}")
        object.__setattr__(self, "preferred_batch", preferred)
        if self.threads is not None and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or not 1 <= self.threads <= 1024
        ):
            raise InputError(f"--threads: expected an integer in 1..1024, got {self.threads!r}")
        PostprocessOptions(conf=self.conf, max_det=self.max_det, clip=self.clip)  # validates them
