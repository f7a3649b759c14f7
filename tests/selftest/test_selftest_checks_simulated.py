"""The self-test's runtime checks (graph replay, mapped vs pinned) against the simulated TensorRT of
tests/engine/fake_tensorrt.py: the checks' own code runs here; on a device they run on TensorRT.
"""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest

from rtdetr_edge.cuda import buffers
from rtdetr_edge.errors import EngineError
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


def test_graph_replay_check_replays_graphs_after_batch_switches(session: checks.Session) -> None:
    """1,2,1,2,1,2: 2 captures (calls 3-4), 4 launches; calls 5-6 replay a graph after a switch."""
    driver = buffers.driver()
    assert isinstance(driver, fake.FakeDriver)
    numbers = checks.check_graph_replay(session)
    assert numbers["batches"] == [1, 2, 1, 2, 1, 2]
    assert (numbers["captures"], numbers["launches"], numbers["replays_after_a_switch"]) == (2, 4, 2)
    assert numbers["contexts"] == 2
    # each of the two runs (graph backend, plain backend) went through the simulated driver
    assert (driver.captures, driver.launches) == (2, 4)


def test_graph_replay_check_fails_when_graphs_do_not_replay(
    session: checks.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = buffers.driver()
    assert isinstance(driver, fake.FakeDriver)
    monkeypatch.setattr(driver, "fail_capture", True)  # every capture fails: plain enqueues only
    with pytest.raises(
        checks.CheckFailed, match="expected 2 graphs captured and 4 launches over batches 1,2,1,2,1,2, got 0 and 0"
    ):
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
    session.trt_version = None  # the copies only (the TensorRT run: the next test)
    assert checks.check_pycuda(session) == {
        "threads": 2,
        "bytes": 4096 * 4,
        "tensorrt": "not run: TensorRT is not installed (pycuda copies only)",
    }
    monkeypatch.setattr(pycuda.Context, "pop", staticmethod(lambda: None))  # the old bug: pushed, never popped
    with pytest.raises(checks.CheckFailed, match="left a context current"):
        checks.check_pycuda(session)


def test_pycuda_check_runs_the_engine_on_pycudas_buffers_and_restores_the_bindings(
    session: checks.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TensorRT through pycuda: the backend's buffers, stream and events come from the pycuda driver."""

    class OnPyCuda(fake.FakeDriver):
        name = "pycuda"

        def __init__(self) -> None:
            super().__init__()
            self.allocations = 0

        def host_alloc(self, nbytes: int, mapped: bool) -> tuple[int, object]:
            self.allocations += 1
            return super().host_alloc(nbytes, mapped)

    compared: list[np.ndarray] = []

    def within(name: str, out: dict[str, np.ndarray], s: checks.Session, precision: str) -> dict[str, float]:
        compared.append(out["total"])
        return {}

    monkeypatch.setattr(checks, "_within", within)
    before = buffers.driver()
    pycuda = OnPyCuda()
    numbers = checks._tensorrt_on(pycuda, session)
    assert numbers["bindings"] == "pycuda" and pycuda.allocations > 0  # the run was on pycuda's memory
    assert buffers.driver() is before  # and the runtime's own bindings are back
    want = 2 * session.images.reshape(4, -1).sum(axis=1)  # the simulated engine: 2 x sum per image
    np.testing.assert_allclose(compared[0][:, 0], want, rtol=1e-5)


@pytest.mark.parametrize("version", ["10.3.0.30", "8.6.2.3"])
def test_timing_cache_check_rebuilds_on_cache_hits_only_where_tensorrt_can_say(
    session: checks.Session, monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    """>= 10: the rebuild is asked to fail on any timing-cache miss; 8.6 (no such flag): said, not claimed."""
    from rtdetr_edge.engine import builder, cache

    engine = session.engines["engine_fp32"]
    session.engines["engine_fp16"] = engine
    session.trt_version = version
    (engine.parent / "timing_trt10.3.0_sm87_orin.cache").write_bytes(b"tactics")
    calls: list[tuple[str | None, bool]] = []

    def build(r: object, hints: object, timing_cache: str | None = None, cache_hits_only: bool = False) -> bytes:
        calls.append((timing_cache, cache_hits_only))
        return b"engine"

    monkeypatch.setattr(builder, "build_serialized_engine", build)
    monkeypatch.setattr(
        cache,
        "bundle_recipe",
        lambda *a, **k: types.SimpleNamespace(source=types.SimpleNamespace(path="m.onnx", sha256="x"), fp32_pins=()),
    )
    monkeypatch.setattr(cache, "inspect_onnx", lambda *a, **k: types.SimpleNamespace(hints=None))
    rebuilt: list[str] = []
    if version.startswith("8."):

        def built(s: checks.Session, key: str, precision: str, **options: object) -> Path:
            rebuilt.append(key)
            return engine

        monkeypatch.setattr(checks, "_engine", built)
        numbers = checks.check_timing_cache(session)
        assert numbers["reads_cache"].startswith("not provable on TensorRT 8.6.2.3") and calls == []
        assert rebuilt == ["engine_fp16", "timing_rebuild"]  # a plain rebuild, its time reported
        return
    numbers = checks.check_timing_cache(session)
    assert calls == [(str(engine.parent / "timing_trt10.3.0_sm87_orin.cache"), True)]
    assert numbers["reads_cache"].startswith("every tactic of the rebuild came from the cache")

    def missed(r: object, hints: object, timing_cache: str | None = None, cache_hits_only: bool = False) -> bytes:
        raise EngineError(f"the rebuild missed the timing cache {timing_cache}: tactic 0x12 not in cache")

    monkeypatch.setattr(builder, "build_serialized_engine", missed)
    with pytest.raises(checks.CheckFailed, match="missed the timing cache"):
        checks.check_timing_cache(session)
