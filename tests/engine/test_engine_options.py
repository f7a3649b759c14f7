"""EngineOptions: defaults, validation, and the trtexec-like CLI flags."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from rtdetr_edge.engine.metadata import (
    BatchProfile,
)
from rtdetr_edge.engine.options import DEFAULT_FP32_LAYERS, EngineOptions, add_engine_arguments
from rtdetr_edge.errors import InputError


def test_engine_options_defaults_and_validation() -> None:
    o = EngineOptions()
    assert o.batch.as_tuple() == (1, 1, 8) and o.int8_mode == "auto" and o.fp32_layers == DEFAULT_FP32_LAYERS
    assert EngineOptions(batch="1,4,16").batch.as_tuple() == (1, 4, 16)  # type: ignore[arg-type]
    assert EngineOptions(fp32_layers="Softmax,post/*").fp32_layers == ("Softmax", "post/*")  # type: ignore[arg-type]
    bads: list[dict[str, Any]] = [dict(workspace_mib=0), dict(builder_optimization_level=6), dict(dla_core=-1),
                                  dict(int8_mode="ptq"), dict(device=-1), dict(batch="4,2,1")]
    for bad in bads:
        with pytest.raises(InputError):
            EngineOptions(**bad)
    assert EngineOptions().to_dict()["batch"] == [1, 1, 8]
    custom = EngineOptions(batch=BatchProfile(1, 2, 4), workspace_mib=256, dla_core=1, fp32_layers=("Softmax",))
    assert EngineOptions(**custom.to_dict()) == custom  # the dict form travels through build options / JSON


def test_engine_arguments_follow_trtexec_habits() -> None:
    p = argparse.ArgumentParser()
    add_engine_arguments(p)
    args = p.parse_args(["--batch", "1,4,8", "--workspace", "512", "--timing-cache", "t.cache", "--builder-opt-level",
                         "5", "--dla-core", "0", "--int8-mode", "qdq", "--fp32-layers", "none", "--cuda-graph"])
    o = EngineOptions.from_args(args)
    assert (o.batch.as_tuple(), o.workspace_mib, o.timing_cache, o.builder_optimization_level, o.dla_core,
            o.int8_mode, o.fp32_layers, o.cuda_graph) == ((1, 4, 8), 512, "t.cache", 5, 0, "qdq", (), True)
    assert EngineOptions.from_args(p.parse_args([])) == EngineOptions()
    assert EngineOptions.from_args(p.parse_args(["--batch", "2"])).batch.as_tuple() == (2, 2, 2)
    for bad in (["--batch", "8,1,1"], ["--builder-opt-level", "9"], ["--int8-mode", "minmax"]):
        with pytest.raises(SystemExit):
            p.parse_args(bad)
    # rtdetr-detect/bench keep their own --batch (images per call)
    q = argparse.ArgumentParser()
    q.add_argument("--batch", type=int, default=1)
    add_engine_arguments(q, batch_flag="--engine-batch")
    args = q.parse_args(["--batch", "4", "--engine-batch", "1,4,8"])
    assert args.batch == 4 and EngineOptions.from_args(args).batch.as_tuple() == (1, 4, 8)
