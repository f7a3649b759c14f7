"""Run-time options of each backend, validated where they are made.

These are what a running model needs (threads, providers, CUDA device, CUDA graphs, memory
kind); how a TensorRT engine is *built* (batch profile, workspace, INT8 route) is
:class:`rtdetr_edge.engine_recipe.EngineBuildOptions`, part of the engine's cache key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from ..errors import InputError

Optimization = Literal["all", "extended", "basic", "disable"]
MemoryKind = Literal["auto", "mapped", "pinned"]
BackendName = Literal["auto", "onnxruntime", "tensorrt"]
RuntimePrecision = Literal["auto", "fp32", "fp16", "int8"]

BACKEND_CHOICES: tuple[str, ...] = get_args(BackendName)
RUNTIME_PRECISIONS: tuple[str, ...] = get_args(RuntimePrecision)


def check_choice(value: object, choices: tuple[str, ...], what: str) -> None:
    """Raise ``InputError("what: expected one of ..., got ...")`` unless ``value`` is a choice."""
    if value not in choices:
        raise InputError(f"{what}: expected one of {', '.join(choices)}, got {value!r}")


@dataclass(frozen=True)
class OnnxRuntimeOptions:
    """ONNX Runtime session options.

    Attributes:
        providers: execution providers, best first (None: TensorRT EP, CUDA EP, CPU, as available).
        threads: intra-op threads (None: ONNX Runtime's choice, one per core).
        optimization: graph optimisation level: ``all`` (default), ``extended``, ``basic`` or
            ``disable`` (tools that need the ONNX's own tensor names).
    """

    providers: tuple[str, ...] | None = None
    threads: int | None = None
    optimization: Optimization = "all"

    def __post_init__(self) -> None:
        if self.threads is not None and (isinstance(self.threads, bool) or self.threads < 1):
            raise InputError(f"threads: expected an integer >= 1 or None, got {self.threads!r}")
        check_choice(self.optimization, get_args(Optimization), "optimization")
        if self.providers is not None:
            object.__setattr__(self, "providers", tuple(self.providers))


@dataclass(frozen=True)
class TensorRTOptions:
    """How a TensorRT engine runs.

    Attributes:
        device: CUDA device index (0).
        cuda_graph: capture inference in a CUDA graph per batch size and replay it (False).
        memory: ``auto`` (mapped on integrated GPUs, pinned otherwise), ``mapped`` or ``pinned``.
        verify_hash: check the engine's sha256 against its sidecar (size is always checked).
    """

    device: int = 0
    cuda_graph: bool = False
    memory: MemoryKind = "auto"
    verify_hash: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.device, bool) or not isinstance(self.device, int) or self.device < 0:
            raise InputError(f"device: expected a CUDA device index >= 0, got {self.device!r}")
        check_choice(self.memory, get_args(MemoryKind), "memory")
