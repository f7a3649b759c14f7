"""EngineBuildOptions: defaults, validation, and the CLI flags that make them (cli/options.py).

Run-time flags (--cuda-graph, --memory, --device) are TensorRTOptions: tests/cli/test_runtime_flags_reach_backend.py."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from rtdetr_edge.cli.options import add_engine_arguments, engine_build_options
from rtdetr_edge.engine_format import (
    BatchProfile,
)
from rtdetr_edge.engine_recipe import DEFAULT_FP32_LAYERS, EngineBuildOptions
from rtdetr_edge.errors import InputError


def test_engine_options_defaults_and_validation() -> None:
    o = EngineBuildOptions()
    assert o.batch.as_tuple() == (1, 1, 8) and o.fp32_layers == DEFAULT_FP32_LAYERS
    assert EngineBuildOptions(batch="1,4,16").batch.as_tuple() == (1, 4, 16)  # type: ignore[arg-type]
    assert EngineBuildOptions(fp32_layers="Softmax,post/*").fp32_layers == ("Softmax", "post/*")  # type: ignore[arg-type]
    bads: list[dict[str, Any]] = [
        dict(workspace_mib=0),
        dict(builder_optimization_level=6),
        dict(dla_core=-1),
        dict(batch="4,2,1"),
    ]
    for bad in bads:
        with pytest.raises(InputError):
            EngineBuildOptions(**bad)
    assert EngineBuildOptions().to_dict()["batch"] == [1, 1, 8]
    custom = EngineBuildOptions(batch=BatchProfile(1, 2, 4), workspace_mib=256, dla_core=1, fp32_layers=("Softmax",))
    assert EngineBuildOptions(**custom.to_dict()) == custom  # the dict form travels through build options / JSON


def test_engine_arguments() -> None:
    p = argparse.ArgumentParser()
    add_engine_arguments(p)
    args = p.parse_args(
        [
            "--batch",
            "1,4,8",
            "--workspace",
            "512",
            "--timing-cache",
            "t.cache",
            "--builder-opt-level",
            "5",
            "--dla-core",
            "0",
            "--fp32-layers",
            "none",
        ]
    )
    o = engine_build_options(args)
    assert (
        o.batch.as_tuple(),
        o.workspace_mib,
        o.timing_cache,
        o.builder_optimization_level,
        o.dla_core,
        o.fp32_layers,
    ) == ((1, 4, 8), 512, "t.cache", 5, 0, ())
    assert engine_build_options(p.parse_args([])) == EngineBuildOptions()
    assert engine_build_options(p.parse_args(["--batch", "2"])).batch.as_tuple() == (2, 2, 2)
    # the implicit INT8 route is gone: its flags are unknown now
    for bad in (["--batch", "8,1,1"], ["--builder-opt-level", "9"], ["--int8-mode", "qdq"], ["--int8-dynamic-range"]):
        with pytest.raises(SystemExit):
            p.parse_args(bad)
    # rtdetr-detect/bench keep their own --batch (images per call)
    q = argparse.ArgumentParser()
    q.add_argument("--batch", type=int, default=1)
    add_engine_arguments(q, batch_flag="--engine-batch")
    args = q.parse_args(["--batch", "4", "--engine-batch", "1,4,8"])
    assert args.batch == 4 and engine_build_options(args).batch.as_tuple() == (1, 4, 8)
