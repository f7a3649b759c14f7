"""The self-test's runtime checks (graph replay, mapped vs pinned) against the simulated TensorRT of
tests/engine/fake_tensorrt.py: the checks' own code runs here; on a device they run on TensorRT.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rtdetr_edge.cuda import buffers
from rtdetr_edge.selftest import checks
from tests.engine import fake_tensorrt as fake
from tests.engine.fakes import engine_with_sidecar


@pytest.fixture()
def session(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> checks.Session:
    fake.install(monkeypatch, "10.3.0.30")
    driver = fake.FakeDriver()
    driver.name = "cuda-python"  # graphs are available
    monkeypatch.setattr(buffers, "_DRIVER", driver)
    monkeypatch.setattr(checks, "OUTPUTS", ("total",))  # the simulated engine's one output
    engine = engine_with_sidecar(tmp_path, tensorrt_version="10.3.0.30", gpu_name="Orin", compute_capability="8.7")
    images = np.random.default_rng(0).random((4, fake.C, fake.H, fake.W), np.float32)
    s = checks.Session(
        bundle=None,  # type: ignore[arg-type]  # not used by these checks
        reference={"images": images},
        required={},
        device=0,
        trt_version="10.3.0.30",
        cuda=buffers.cuda_status(),
        gpu=driver.properties(0),
    )
    s.engines["engine_fp32"] = engine
    return s


def test_graph_replay_check_counts_two_graphs_and_two_replays(session: checks.Session) -> None:
    numbers = checks.check_graph_replay(session)
    assert (numbers["graphs"], numbers["replays"], numbers["contexts"]) == (2, 2, 2)


def test_graph_replay_check_fails_when_graphs_do_not_replay(
    session: checks.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = buffers.driver()
    assert isinstance(driver, fake.FakeDriver)
    monkeypatch.setattr(driver, "fail_capture", True)  # every capture fails: plain enqueues only
    with pytest.raises(checks.CheckFailed, match="expected 2 graphs captured and 2 replays"):
        checks.check_graph_replay(session)


def test_mapped_vs_pinned_check_passes_on_equal_outputs(session: checks.Session) -> None:
    numbers = checks.check_mapped_vs_pinned(session)
    assert set(numbers) == {"mapped_gpu_ms", "pinned_gpu_ms"}


def test_a_missing_engine_build_is_a_skip_pointing_at_its_check(session: checks.Session) -> None:
    session.engines.clear()
    session.engine_errors["engine_fp32"] = "TensorRT could not build the fp32 engine"
    with pytest.raises(checks.Skipped, match="the engine_fp32 engine did not build"):
        checks.check_graph_replay(session)


def test_pycuda_check_runs_on_two_threads_and_finds_a_leaked_context(
    session: checks.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rtdetr_edge import _optional
    from tests.engine.test_cuda_bindings import FakePyCuda

    pycuda = FakePyCuda()
    monkeypatch.setattr(checks, "available", lambda name: True)
    monkeypatch.setattr(_optional, "require", lambda name, purpose="": pycuda)
    assert checks.check_pycuda(session) == {"threads": 2, "bytes": 4096 * 4}
    monkeypatch.setattr(pycuda.Context, "pop", staticmethod(lambda: None))  # the old bug: pushed, never popped
    with pytest.raises(checks.CheckFailed, match="left a context current"):
        checks.check_pycuda(session)
