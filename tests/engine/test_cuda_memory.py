"""Host memory kinds per device (mapped on Jetson, pinned on discrete GPUs) and the CUDA check script without a GPU."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rtdetr_edge.cuda.buffers import choose_memory_kind
from rtdetr_edge.errors import EngineError, InputError
from tests.helpers import REPO


@pytest.mark.parametrize(
    "integrated, can_map, requested, expected",
    [
        (True, True, "auto", "mapped"),  # Jetson: zero-copy
        (True, False, "auto", "pinned"),
        (False, True, "auto", "pinned"),  # T4: mapped memory would cross PCIe in every kernel
        (False, False, "auto", "pinned"),
        (False, True, "mapped", "mapped"),
        (True, True, "pinned", "pinned"),
        (False, False, "mapped", "cannot map host memory"),
        (True, True, "unified", "expected one of"),
    ],
)
def test_memory_kind_follows_the_device_and_the_request(
    integrated: bool, can_map: bool, requested: str, expected: str
) -> None:
    if expected in ("mapped", "pinned"):
        assert choose_memory_kind(integrated, can_map, requested) == expected
    else:
        with pytest.raises((EngineError, InputError), match=expected):
            choose_memory_kind(integrated, can_map, requested)


def test_no_gpu_means_zero_devices_and_a_clear_error() -> None:
    from rtdetr_edge.cuda import buffers

    if buffers.device_count() > 0:
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(EngineError, match="CUDA device 0 is not available"):
        buffers.device_properties(0)


def test_cuda_check_script_skips_cleanly_without_gpu() -> None:
    from rtdetr_edge.cuda import buffers

    if buffers.device_count() > 0:
        pytest.skip("this machine has a CUDA device (the gpu test runs the script)")
    script = REPO / "benchmarks" / "cuda_buffers_check.py"
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("SKIP"), proc.stdout + proc.stderr
    proc = subprocess.run([sys.executable, str(script), "--require-gpu"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
