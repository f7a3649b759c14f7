"""Fixtures of the engine tests: a fake ``tensorrt`` module, or none at all."""

from __future__ import annotations

import sys
import types

import pytest


@pytest.fixture()
def fake_trt(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A stand-in ``tensorrt`` module: a version string and the names load_tensorrt looks for."""
    mod = types.ModuleType("tensorrt")
    mod.__version__ = "10.3.0.30"  # type: ignore[attr-defined]
    mod.Builder = object  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorrt", mod)
    return mod


@pytest.fixture()
def no_trt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import raises ImportError
