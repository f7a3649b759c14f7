"""Run-time options of each backend, validated where they are made.

These are what a running model needs (threads, providers, CUDA device, CUDA graphs, memory
kind); how a TensorRT engine is *built* (batch profile, workspace, INT8 route) is
:class:`rtdetr_edge.engine_recipe.EngineBuildOptions`, part of the engine's cache key.
"""

from __future__ import annotations

import os
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


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one, else the CPU count)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


@dataclass(frozen=True)
class OnnxRuntimeOptions:
    """ONNX Runtime session options.

    Attributes:
        providers: execution providers, best first (None: TensorRT EP, CUDA EP, CPU, as available).
        threads: intra-op threads, at most the usable CPU cores (None: ONNX Runtime's choice, one
            per core).
        optimization: graph optimisation level: ``all`` (default), ``extended``, ``basic`` or
            ``disable`` (tools that need the ONNX's own tensor names).
    """

    providers: tuple[str, ...] | None = None
    threads: int | None = None
    optimization: Optimization = "all"

    def __post_init__(self) -> None:
        threads, cores = self.threads, usable_cores()
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= cores
        ):
            # more threads than cores only adds contention (and 100000 of them exhaust memory)
            raise InputError(
                f"threads: expected an integer in 1..{cores} (the CPU cores this process may use) or None, "
                f"got {threads!r}"
            )
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
