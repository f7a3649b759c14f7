"""Fixtures of the HTML report tests: checks of the tiny fp32 + fp16 + int8 bundle, a broken INT8 copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.check.perturb import scaled_activation_qdq_copy
from tests.cli.conftest import cli  # noqa: F401 - the in-process CLI fixture

pytest.importorskip("polygraphy")
pytest.importorskip("faster_coco_eval")
pytest.importorskip("jinja2")
pytest.importorskip("matplotlib")


@pytest.fixture(scope="session")
def broken_int8(best_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The INT8 artifact of ``best_bundle`` with every activation scale x0.05: fails any check."""
    out = tmp_path_factory.mktemp("broken") / "broken.int8.onnx"
    scaled_activation_qdq_copy(best_bundle / "model.int8.qdq.onnx", out, 0.05)
    return out
