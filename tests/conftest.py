"""Shared fixtures: tiny models, bundles and datasets made by the tests themselves.

Nothing here needs the network or a GPU. Tests marked ``network`` skip when the Hugging Face hub
or the COCO image server cannot be reached; tests marked ``gpu`` skip without a CUDA device.
Tests marked ``slow`` (more than a few seconds each) skip unless ``--run-slow`` is given or
``-m slow`` selects them: ``pytest -q`` is the quick lane, ``pytest -q -m slow`` the slow one,
``pytest -q --run-slow`` everything.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rtdetr_edge.build import Int8Options
from rtdetr_edge.calib import CalibrationOptions
from rtdetr_edge.export.options import ExportOptions
from tests.helpers import REFERENCE_MODEL


def _reachable(host: str, port: int = 443, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _cuda_device() -> bool:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        return False
    err, count = cudart.cudaGetDeviceCount()
    return int(err) == 0 and count > 0


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run tests marked slow (the default lane skips them; -m slow runs only them)",
    )


def _selects_slow(markexpr: str) -> bool:
    """Whether a ``-m`` expression asks for slow tests (``slow``, ``slow or gpu``; not ``not slow``)."""
    return "slow" in markexpr and not markexpr.replace(" ", "").startswith("notslow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_slow = config.getoption("--run-slow") or _selects_slow(config.getoption("markexpr") or "")
    network = gpu = None
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow: run with --run-slow or -m slow"))
        if "network" in item.keywords:
            if network is None:
                network = _reachable("huggingface.co")
            if not network:
                item.add_marker(pytest.mark.skip(reason="needs internet (huggingface.co unreachable)"))
        if "gpu" in item.keywords:
            if gpu is None:
                gpu = _cuda_device()
            if not gpu:
                item.add_marker(pytest.mark.skip(reason="needs an NVIDIA GPU with CUDA (none found)"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rtdetr_edge.export import testing

    folder = tmp_path_factory.mktemp("tiny_model")
    testing.save_model_folder(testing.random_model(testing.tiny_config(), seed=0), folder, image_size=(64, 64))
    return folder


@pytest.fixture(scope="session")
def tiny_bundle(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rtdetr_edge.build import BuildOptions, build_bundle

    return build_bundle(
        tiny_model_dir, tmp_path_factory.mktemp("b") / "tiny", BuildOptions(export=ExportOptions(top_k=50))
    )


@pytest.fixture(scope="session")
def best_bundle(tiny_model_dir: Path, shapes_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fp32 + fp16 + int8 (Q/DQ) of the tiny model, calibrated on 8 of the 12 shapes images.

    The build's accuracy and Polygraphy checks ran on 4 held-out images; native TensorRT
    calibration caches for 10.3.0 and 8.6.2 (JetPack 6.0).
    """
    from rtdetr_edge.build import BuildOptions, build_bundle

    return build_bundle(
        tiny_model_dir,
        tmp_path_factory.mktemp("best") / "bundle",
        BuildOptions(
            precision="best",
            check_images=4,
            export=ExportOptions(top_k=50),
            calibration=CalibrationOptions(calib=str(shapes_data), size=8, cache_dir=None),
            int8=Int8Options(trt_cache_versions=("10.3.0", "8.6.2")),
        ),
    )


@pytest.fixture(scope="session")
def shapes_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A handful of generated images in COCO format (seed 99, never used for training)."""
    from rtdetr_edge.data import synth

    return synth.generate(tmp_path_factory.mktemp("shapes"), 12, seed=99)


@pytest.fixture(scope="session")
def reference_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped reference model exported to an fp32 bundle."""
    if not (REFERENCE_MODEL / "config.json").is_file():
        pytest.skip("models/rtdetr-shapes is not present")
    from rtdetr_edge.build import BuildOptions, build_bundle

    return build_bundle(REFERENCE_MODEL, tmp_path_factory.mktemp("ref") / "shapes", BuildOptions())


@pytest.fixture(autouse=True)
def _restore_package_logger() -> Iterator[None]:
    """Undo what a CLI's ``setup_logging`` did to the ``rtdetr_edge`` logger.

    ``setup_logging`` replaces the logger's handlers with one bound to the ``sys.stderr`` of the
    moment (capsys's buffer in an in-process CLI test) and stops propagation, which would send
    later tests' log records to a closed buffer and hide them from ``caplog``.
    """
    log = logging.getLogger("rtdetr_edge")
    saved = (log.handlers[:], log.level, log.propagate)
    yield
    log.handlers[:], log.level, log.propagate = saved[0], saved[1], saved[2]


@pytest.fixture()
def scene() -> np.ndarray:
    from rtdetr_edge.data.synth import render_scene

    return render_scene(np.random.default_rng(5), 640, 480)[0]
