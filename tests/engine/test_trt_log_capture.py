"""TensorRT log lines are captured per call: two threads loading engines see only their own errors."""

from __future__ import annotations

import threading

from rtdetr_edge.backends import trt_logging


def test_capture_collects_only_its_own_context() -> None:
    with trt_logging.capture() as outer:
        trt_logging.record("error", "outer error")
        with trt_logging.capture() as inner:
            trt_logging.record("warning", "inner warning")
        trt_logging.record("error", "outer again")
    trt_logging.record("error", "nobody listening")  # no capture open: only logged
    assert outer.errors == ["outer error", "outer again"] and outer.warnings == []
    assert inner.warnings == ["inner warning"] and inner.errors == []
    assert outer.summary() == "outer error; outer again"
    assert trt_logging.LogCapture().summary() == "no error logged by TensorRT"


def test_two_threads_do_not_see_each_others_errors() -> None:
    started, finished = threading.Barrier(2), threading.Barrier(2)
    seen: dict[str, list[str]] = {}

    def load(name: str) -> None:
        with trt_logging.capture() as cap:
            started.wait()  # both captures are open at once
            for i in range(50):
                trt_logging.record("error", f"{name} {i}")
            finished.wait()  # neither capture closes before both threads have logged
        seen[name] = cap.errors

    threads = [threading.Thread(target=load, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen["a"] == [f"a {i}" for i in range(50)]
    assert seen["b"] == [f"b {i}" for i in range(50)]
