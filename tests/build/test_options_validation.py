"""Every option is checked where it is made: a bad value fails at construction with "expected ..."."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rtdetr_edge.backends.options import OnnxRuntimeOptions, TensorRTOptions
from rtdetr_edge.build import BuildOptions, Int8Options
from rtdetr_edge.calib import CalibrationOptions
from rtdetr_edge.engine import EngineBuildOptions
from rtdetr_edge.errors import InputError
from rtdetr_edge.export.options import ExportOptions

CASES: list[tuple[Callable[[], Any], str]] = [
    (lambda: CalibrationOptions("data/calib", algorithm="x"), "--calib-algorithm: expected one of auto"),  # type: ignore[arg-type]
    (lambda: CalibrationOptions("data/calib", scope="some"), "--calib-tensors: expected one of int8, all"),  # type: ignore[arg-type]
    (lambda: CalibrationOptions("data/calib", size=0), "--calib-size: expected an integer >= 1"),
    (lambda: CalibrationOptions("data/calib", batch_size=0), "--calib-batch: expected an integer >= 1"),
    (lambda: CalibrationOptions(""), "--calib: expected"),
    (lambda: ExportOptions(top_k=0), "--top-k: expected an integer >= 1"),
    (lambda: ExportOptions(opset=18), "--opset: expected one of 16, 17"),
    (lambda: ExportOptions(tolerance=0), "--tolerance: expected a number > 0"),
    (lambda: Int8Options(target=1.5), "--int8-target: expected a fraction"),
    (lambda: BuildOptions(precision="int4"), "--precision: expected one of fp32, fp16, int8, best"),  # type: ignore[arg-type]
    (lambda: BuildOptions(precision="int8"), "--precision int8 needs --calib"),
    (lambda: BuildOptions(check_images=-1), "--check-images: expected an integer >= 0"),
    (lambda: EngineBuildOptions(dla_core=-1), "--dla-core"),
    (lambda: EngineBuildOptions(workspace_mib=0), "--workspace"),
    (lambda: TensorRTOptions(device=-1), "device: expected a CUDA device index >= 0"),
    (lambda: TensorRTOptions(memory="shared"), "memory: expected one of auto, mapped, pinned"),  # type: ignore[arg-type]
    (lambda: OnnxRuntimeOptions(threads=0), "threads: expected an integer in 1.."),
    (lambda: OnnxRuntimeOptions(optimization="max"), "optimization: expected one of all"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("make", "message"), CASES)
def test_bad_option_fails_when_made(make: Callable[[], Any], message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        make()


def test_good_options_nest_whole() -> None:
    opts = BuildOptions(
        precision="int8",
        calibration=CalibrationOptions("data/calib", algorithm="entropy2"),
        export=ExportOptions(top_k=50),
    )
    assert (
        opts.precisions == ["fp16", "int8"] and opts.calibration is not None and opts.export.top_k == 50
    )  # fp16: the fallback
    assert BuildOptions(precision="best").precisions == ["fp16"]
    assert TensorRTOptions(cuda_graph=True).cuda_graph and EngineBuildOptions().batch.as_tuple() == (1, 1, 8)
