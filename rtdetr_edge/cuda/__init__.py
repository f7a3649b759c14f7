"""CUDA buffers, streams, events and graphs for the TensorRT runtime (cuda-python, or pycuda).

Importing this package imports no CUDA binding; they load on first use. See
:mod:`rtdetr_edge.cuda.buffers`.
"""

from __future__ import annotations

from .buffers import (
    MEMORY_KINDS,
    CudaGraph,
    CudaStatus,
    DeviceProperties,
    Event,
    HostDeviceBuffer,
    Stream,
    choose_memory_kind,
    copy_device,
    cuda_status,
    device_count,
    device_properties,
    on_device,
    set_device,
)

__all__ = [
    "MEMORY_KINDS",
    "CudaGraph",
    "CudaStatus",
    "DeviceProperties",
    "Event",
    "HostDeviceBuffer",
    "Stream",
    "choose_memory_kind",
    "copy_device",
    "cuda_status",
    "device_count",
    "device_properties",
    "on_device",
    "set_device",
]
