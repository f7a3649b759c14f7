"""Polygraphy's version floor (checked at import, the same in pyproject's extras) and TensorRT's loggers:
the builder leaves Polygraphy's own TensorRT logger alone.
"""

from __future__ import annotations

import re
import sys
import types
from typing import Any

import pytest

from rtdetr_edge import _optional
from rtdetr_edge.errors import MissingDependencyError
from tests.helpers import REPO


def _polygraphy(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    mod = types.ModuleType("polygraphy")
    mod.__version__ = version  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "polygraphy", mod)


@pytest.mark.parametrize("version", ["0.47.1", "0.49.12", "0.48.1"])
def test_polygraphy_below_the_floor_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    """0.47.x (older NGC images) lacks ``strongly_typed`` and the Python-logging switch: one line, not a TypeError."""
    _polygraphy(monkeypatch, version)
    from rtdetr_edge.check._polygraphy import CheckError, polygraphy
    from rtdetr_edge.engine.polygraphy_log import polygraphy_log

    expected = f"'polygraphy' {version} is too old for .*: rtdetr-edge needs polygraphy >= 0.49.13"
    for call in (
        lambda: _optional.require("polygraphy", "building TensorRT engines"),
        lambda: polygraphy_log().__enter__(),
        lambda: polygraphy("polygraphy"),
    ):
        with pytest.raises((MissingDependencyError, CheckError)) as info:
            call()
        assert re.match(expected, str(info.value)) and "\n" not in str(info.value)
        assert 'pip install "polygraphy>=0.49.13"' in str(info.value)


@pytest.mark.parametrize("version", ["0.49.13", "0.49.27", "0.53.6", "1.0.0.dev2"])
def test_polygraphy_at_or_above_the_floor_is_taken(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    _polygraphy(monkeypatch, version)
    assert _optional.require("polygraphy").__version__ == version


def test_the_extras_name_the_floor_checked_at_import() -> None:
    text = (REPO / "pyproject.toml").read_text()
    requirements = re.findall(r'"polygraphy\s*[<>=!~][^"]*"', text)  # trt, trt-cu13, check
    assert len(requirements) == 3 and set(requirements) == {f'"polygraphy>={_optional.MIN_VERSIONS["polygraphy"]}"'}


def test_the_builder_leaves_polygraphys_tensorrt_logger_alone(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Polygraphy's builder logs through its own TensorRT logger into Polygraphy's log (which we route);
    TensorRT uses the logger each builder/runtime was created with (NvInferRuntimeBase.h)."""
    import polygraphy.backend.trt as ptrt
    from polygraphy.backend.trt import util

    from rtdetr_edge.engine import builder
    from tests.engine import fake_tensorrt as fake
    from tests.engine.test_polygraphy_builder import HINTS, Recorder, _recipe

    fake.install(monkeypatch, "10.3.0.30")
    for name, cls in Recorder().classes.items():
        monkeypatch.setattr(ptrt, name, cls)
    monkeypatch.setattr(util, "TRT_LOGGER", None)
    builder.build_serialized_engine(_recipe("10.3.0.30", "fp32", batch=1), HINTS)
    assert util.TRT_LOGGER is None
