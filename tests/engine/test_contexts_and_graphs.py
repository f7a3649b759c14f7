"""Execution contexts per thread and CUDA graphs per batch, on a simulated TensorRT (tests/engine/fake_tensorrt.py).

What is checked is our logic against TensorRT's documented rules (profile 0 only for an 8.x
engine's first context; a graph is stale once its context's shapes change); the real TensorRT
paths are the ``gpu`` tests and ``rtdetr-selftest`` on a device.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from rtdetr_edge.backends import trt_runtime
from rtdetr_edge.backends.options import TensorRTOptions
from rtdetr_edge.cuda import buffers
from rtdetr_edge.errors import EngineError
from tests.engine import fake_tensorrt as fake
from tests.engine.fakes import engine_with_sidecar

if TYPE_CHECKING:
    from rtdetr_edge.backends.tensorrt import TensorRTBackend

SHAPE = (fake.C, fake.H, fake.W)


@pytest.mark.parametrize(
    "version, dynamic, shares",
    [("8.6.1.6", True, False), ("8.6.2", False, True), ("10.3.0.30", True, True), ("11.1.0", True, True)],
)
def test_profile_sharing_follows_the_tensorrt_version(version: str, dynamic: bool, shares: bool) -> None:
    assert trt_runtime.shares_profiles(version, dynamic) is shares


@pytest.mark.parametrize("version, copies", [("8.6.1.6", 3), ("10.3.0.30", 1)])
def test_every_context_can_set_shapes_on_8x_and_10x(monkeypatch: pytest.MonkeyPatch, version: str, copies: int) -> None:
    fake.install(monkeypatch, version)
    engine = trt_runtime.Engine(b"plan", "m.engine")
    contexts = [engine.create_context() for _ in range(3)]
    for ctx in contexts:
        ctx.set_input_shape("images", (2, *SHAPE))  # 8.x: fails unless the context has profile 0
    assert engine.copies == copies
    # the rule the fake models: a second context on the same 8.x engine has no profile
    if copies > 1:
        bare = trt_runtime.ExecutionContext(fake.FakeEngineObject(version), "m.engine")
        bare.set_input_shape("images", (1, *SHAPE))
        with pytest.raises(EngineError, match="rejected input images shape"):
            trt_runtime.ExecutionContext(bare._engine, "m.engine").set_input_shape("images", (1, *SHAPE))
    clone = engine.retain()
    engine.close()
    clone.create_context()  # one user left: still open
    clone.close()
    with pytest.raises(EngineError, match="closed"):
        engine.create_context()


class Memory:
    """Input/output arrays whose addresses the fake contexts read and write."""

    def __init__(self, capacity: int = 4) -> None:
        self.images = np.zeros((capacity, *SHAPE), np.float32)
        self.total = np.zeros((capacity, 1), np.float32)
        self.addresses = {"images": int(self.images.ctypes.data), "total": int(self.total.ctypes.data)}

    def fill(self, batch: int, seed: int) -> np.ndarray:
        self.images[:batch] = np.random.default_rng(seed).random((batch, *SHAPE), np.float32)
        return 2 * self.images[:batch].reshape(batch, -1).sum(axis=1)


def _runner(
    monkeypatch: pytest.MonkeyPatch, driver: fake.FakeDriver | None, version: str = "10.3.0.30"
) -> tuple[trt_runtime.BatchRunner, Memory, trt_runtime.Engine]:
    fake.install(monkeypatch, version)
    engine = trt_runtime.Engine(b"plan", "m.engine")
    capture = None
    if driver is not None:
        monkeypatch.setattr(buffers, "_DRIVER", driver)
        capture = lambda stream, body: buffers.CudaGraph(stream, body)  # noqa: E731
    runner = trt_runtime.BatchRunner(engine.create_context, engine.inputs, capture, "m.engine")
    runner.start()
    mem = Memory()
    runner.bind(mem.addresses)
    return runner, mem, engine


BATCHES = (1, 2, 1, 2, 1, 2)


def _fake_context(ctx: trt_runtime.Context) -> fake.FakeContext:
    assert isinstance(ctx, trt_runtime.ExecutionContext) and isinstance(ctx._ctx, fake.FakeContext)
    return ctx._ctx


def test_plain_enqueues_set_shapes_only_on_a_batch_change(monkeypatch: pytest.MonkeyPatch) -> None:
    runner, mem, _ = _runner(monkeypatch, None)
    stream = buffers.Stream.__new__(buffers.Stream)
    stream.handle = 7
    for i, batch in enumerate((*BATCHES, 2)):
        want = mem.fill(batch, i)
        ctx = runner.run(batch, stream)
        fake.run_queued(stream.handle)  # the outputs are there only after the stream ran
        np.testing.assert_allclose(mem.total[:batch, 0], want, rtol=1e-6)
        assert ctx.tensor_shape("total") == (batch, 1)
    assert runner.contexts == 1 and runner._main is not None
    assert _fake_context(runner._main).shape_sets == len(BATCHES)  # the repeated 2 set nothing


@pytest.mark.parametrize("version", ["8.6.1.6", "10.3.0.30"])
def test_graphs_replay_after_batch_switches_and_stay_correct(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    driver = fake.FakeDriver()
    runner, mem, engine = _runner(monkeypatch, driver, version)
    stream = buffers.Stream()
    for i, batch in enumerate(BATCHES):
        want = mem.fill(batch, i)
        runner.run(batch, stream)
        stream.synchronize()
        np.testing.assert_allclose(mem.total[:batch, 0], want, rtol=1e-6)  # NaN if a stale graph ran
    # one context and one graph per batch size; calls 3-6 replayed (the first per size is plain,
    # the second captures and launches)
    assert (runner.contexts, runner.graphs, driver.captures, driver.launches) == (2, 2, 2, 4)
    assert (runner.captures, runner.launches) == (2, 4)
    assert engine.copies == (2 if version.startswith("8.") else 1)
    for slot in runner._slots.values():
        assert _fake_context(slot.context).shape_sets == 1  # set once, never changed under a graph
    mem2 = Memory()
    runner.bind(mem2.addresses)  # new buffers: graphs recorded the old pointers
    assert runner.graphs == 0
    want = mem2.fill(1, 99)
    runner.run(1, stream)
    stream.synchronize()
    np.testing.assert_allclose(mem2.total[:1, 0], want, rtol=1e-6)
    runner.close()


def test_the_simulation_catches_a_graph_replayed_after_a_shape_change(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the old backend did (one context, a graph per batch, shapes changed under them) goes wrong here."""
    fake.install(monkeypatch)
    monkeypatch.setattr(buffers, "_DRIVER", fake.FakeDriver())
    ctx = trt_runtime.Engine(b"plan").create_context()
    mem = Memory()
    for name, ptr in mem.addresses.items():
        ctx.set_tensor_address(name, ptr)
    stream = buffers.Stream()
    graphs = {}
    for batch in (1, 2):
        ctx.set_input_shape("images", (batch, *SHAPE))
        ctx.execute_async(stream.handle)
        graphs[batch] = buffers.CudaGraph(stream, lambda: ctx.execute_async(stream.handle))
    ctx.set_input_shape("images", (1, *SHAPE))
    mem.fill(1, 0)
    graphs[1].launch(stream)
    stream.synchronize()
    assert np.isnan(mem.total[0, 0])


def test_a_failed_capture_falls_back_to_plain_enqueues(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    driver = fake.FakeDriver(fail_capture=True)
    runner, mem, _ = _runner(monkeypatch, driver)
    stream = buffers.Stream()
    with caplog.at_level(logging.WARNING, "rtdetr_edge"):
        for i, batch in enumerate(BATCHES):
            want = mem.fill(batch, i)
            runner.run(batch, stream)
            stream.synchronize()
            np.testing.assert_allclose(mem.total[:batch, 0], want, rtol=1e-6)
    failures = [r for r in caplog.records if "CUDA graph capture for batch" in r.getMessage()]
    assert len(failures) == 2 and "stream is capturing" in failures[0].getMessage()  # once per batch size
    assert runner.graphs == 0 and driver.launches == 0


def _backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: str, **options: Any) -> TensorRTBackend:
    from rtdetr_edge.backends.tensorrt import TensorRTBackend

    fake.install(monkeypatch, version)
    monkeypatch.setattr(buffers, "_DRIVER", fake.FakeDriver(integrated=options.pop("integrated", True) is True))
    tmp_path.mkdir(parents=True, exist_ok=True)
    engine = engine_with_sidecar(tmp_path, tensorrt_version=version, gpu_name="Orin", compute_capability="8.7")
    return TensorRTBackend(engine, TensorRTOptions(**options))


def _infer(backend: TensorRTBackend, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    buf = backend.input_buffer(batch)
    buf[...] = np.random.default_rng(seed).random(buf.shape, np.float32)
    want = 2 * buf.reshape(batch, -1).sum(axis=1)
    return backend.infer(batch)["total"][:, 0], want


@pytest.mark.parametrize("version", ["8.6.1.6", "10.3.0.30"])
def test_backend_clones_run_in_threads_and_graphs_replay(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: str
) -> None:
    be = _backend(monkeypatch, tmp_path, version, cuda_graph=True)
    for i, batch in enumerate(BATCHES):
        got, want = _infer(be, batch, i)
        np.testing.assert_allclose(got, want, rtol=1e-6)
    info = be.describe()
    assert info["cuda_graphs"] == info["cuda_graph_captures"] == 2 and info["execution_contexts"] == 2
    assert info["zero_copy"]
    clones = [be.clone() for _ in range(2)]
    errors: list[BaseException] = []

    def work(clone: TensorRTBackend, seed: int) -> None:
        try:
            for batch in (1, 2, 1, 2):
                got, want = _infer(clone, batch, seed + batch)
                np.testing.assert_allclose(got, want, rtol=1e-6)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c, 10 * i)) for i, c in enumerate(clones)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    # 8.x: the original's 2 contexts + 2 per clone, each beyond the first on its own engine copy
    assert be._engine.copies == (6 if version.startswith("8.") else 1)
    be.close()
    for c in clones:
        c.close()
    assert be._engine._engine is None


def test_backend_mapped_and_pinned_give_the_same_outputs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    mapped = _backend(monkeypatch, tmp_path / "a", "10.3.0.30", memory="mapped")
    pinned = _backend(monkeypatch, tmp_path / "b", "10.3.0.30", memory="pinned", integrated=False)
    for be in (mapped, pinned):
        got, want = _infer(be, 3, 5)
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert mapped.describe()["zero_copy"] and not pinned.describe()["zero_copy"]


@pytest.mark.parametrize(
    "version, graphs, shared",
    [
        ("10.3.0.30", True, True),  # a context per batch size, one block for all
        ("10.3.0.30", False, False),  # one context: TensorRT's own STATIC block
        ("10.0.1.6", True, False),  # no setDeviceMemoryV2 before 10.1
        ("8.6.1.6", True, False),  # no allocation strategies on 8.6
    ],
)
def test_a_graph_backends_contexts_share_one_device_memory_block(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: str, graphs: bool, shared: bool
) -> None:
    """createExecutionContext(kUSER_MANAGED) + setDeviceMemoryV2(block, getDeviceMemorySizeV2()) on
    TensorRT >= 10.1 (NvInferRuntime.h release/10.3:2523-2525, 2725, 3691), as Polygraphy's TrtRunner does."""
    be = _backend(monkeypatch, tmp_path, version, cuda_graph=graphs)
    for i, batch in enumerate((1, 2, 3, 1)):
        got, want = _infer(be, batch, i)
        np.testing.assert_allclose(got, want, rtol=1e-6)
    contexts = [_fake_context(s.context) for s in be._runner._slots.values()] or [
        _fake_context(be._runner._main)  # type: ignore[arg-type]
    ]
    assert len(contexts) == (3 if graphs else 1)
    if shared:
        block = be.describe()["shared_context_memory"]
        assert block == 4096  # the engine's device_memory_size_v2, allocated once
        assert {c.strategy for c in contexts} == {"USER_MANAGED"}
        assert len({c.device_memory for c in contexts}) == 1 and contexts[0].device_memory is not None
        assert contexts[0].device_memory[1] == 4096
    else:
        assert be.describe()["shared_context_memory"] is None
        assert {c.strategy for c in contexts} == {"STATIC"} and all(c.device_memory is None for c in contexts)
    be.close()
