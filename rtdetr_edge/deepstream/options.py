"""What ``rtdetr-deepstream`` writes: precision, streams, threshold, the TensorRT line of nvinfer's own build."""

from __future__ import annotations

from dataclasses import dataclass

from ..engine_format import version_tuple
from ..errors import InputError, RtdetrEdgeError

PRECISION_CHOICES = ("auto", "fp32", "fp16", "int8")
MAX_STREAMS = 64  # nvstreammux batches one frame per source; 64 sources is far past one Jetson's decoders
# TensorRT of the DeepStream release the config is written for (nvinfer's own build from onnx-file
# and the INT8 calibration cache must match it exactly): DeepStream 7.1 on JetPack 6.1/6.2
DEFAULT_TENSORRT = "10.3.0"


@dataclass(frozen=True)
class DeepStreamOptions:
    """How the DeepStream setup runs the bundle.

    Attributes:
        precision: ``"auto"`` (the bundle's default precision), ``"fp32"``, ``"fp16"`` or ``"int8"``.
        streams: cameras batched by ``nvstreammux`` (1..64); the nvinfer ``batch-size`` and the
            engine's batch profile (1, N, N) follow it (default 1).
        conf: each class's ``pre-cluster-threshold``, the parser's per-class score threshold
            (default 0.3, the Detector's).
        tensorrt: the TensorRT version nvinfer builds with when it builds from ``onnx-file`` itself
            (default 10.3.0: DeepStream 7.1 on JetPack 6.1/6.2); picks the recipe's TensorRT line and
            the bundle's native calibration cache ``calib/trt-<version>.cache`` for INT8.
    """

    precision: str = "auto"
    streams: int = 1
    conf: float = 0.3
    tensorrt: str = DEFAULT_TENSORRT

    def __post_init__(self) -> None:
        if self.precision not in PRECISION_CHOICES:
            raise InputError(f"--precision: expected one of {', '.join(PRECISION_CHOICES)}, got {self.precision!r}")
        s = self.streams
        if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= MAX_STREAMS:
            raise InputError(f"--streams {s}: expected an integer in 1..{MAX_STREAMS}")
        c = self.conf
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0.0 <= float(c) <= 1.0:
            raise InputError(f"--conf {c}: expected a number in [0, 1]")
        object.__setattr__(self, "conf", float(c))
        try:
            v = version_tuple(self.tensorrt)
        except RtdetrEdgeError:
            raise InputError(f"--tensorrt {self.tensorrt!r}: expected a version such as 10.3.0") from None
        if v[:2] != (8, 6) and v[0] != 10:
            # TensorRT 11 removed implicit quantization and the weak-typing flags nvinfer builds with;
            # no DeepStream release known to rtdetr-edge pairs with it (DeepStream 9.2: TensorRT 10.16)
            raise InputError(
                f"--tensorrt {self.tensorrt}: expected a TensorRT 8.6 or 10.x of a DeepStream release "
                "(7.0: 8.6.2, 7.1: 10.3.0, 9.2: 10.16.1)"
            )
