"""``rtdetr-engine BUNDLE --precision best``: FP16 and INT8 engines from the recipe, timed at the
profile's opt batch, INT8 the device's default only when the host's INT8 check passed and it is at
least 10 % faster; timings and the choice in both sidecars, read back by ``Detector`` (``auto``).
Timings are injected: nothing here runs TensorRT.
"""

from __future__ import annotations

import json
import re
import types
from pathlib import Path
from typing import Any

import pytest

from rtdetr_edge import bench, detector
from rtdetr_edge.bundle import Bundle
from rtdetr_edge.cuda import buffers
from rtdetr_edge.engine_format import BatchProfile, load_sidecar
from rtdetr_edge.errors import InputError
from tests.engine import fake_tensorrt as fake
from tests.engine.fakes import fake_bundle, fake_meta


@pytest.mark.parametrize(
    "check, fp16, int8, chosen, why",
    [
        (None, 10.0, 8.9, "int8", r"INT8 8\.90 ms vs FP16 10\.00 ms \(\+11\.0 %\), and the host INT8 check passed"),
        (None, 10.0, 9.0, "int8", r"\+10\.0 %"),  # exactly 10 % faster is enough
        (None, 10.0, 9.1, "fp16", r"\(\+9\.0 %\): INT8 is not at least 10 % faster"),
        (None, 10.0, 10.6, "fp16", r"\(-6\.0 %\): INT8 is not at least 10 % faster"),  # slower (rf-detr#1024)
        ("the host INT8 check failed: AP", 10.0, 5.0, "fp16", r"^the host INT8 check failed: AP; INT8 5\.00 ms"),
    ],
)
def test_int8_is_the_default_only_when_checked_and_ten_percent_faster(
    check: str | None, fp16: float, int8: float, chosen: str, why: str
) -> None:
    got, reason = bench.choose_precision(check, fp16, int8)
    assert got == chosen and re.search(why, reason), reason


@pytest.mark.parametrize(
    "report, expected",
    [
        ({"check": {"int8": {"passed": True}}}, None),
        (
            {"check": {"int8": {"passed": False, "failures": ["AP 0.41 < 0.44"]}}},
            "the host INT8 check failed: AP 0.41 < 0.44",
        ),
        ({"check": None}, "the host INT8 check did not run (rtdetr-build --check-images)"),
        (None, "the bundle's report.json cannot be read"),
    ],
)
def test_the_host_int8_check_is_read_from_the_bundle_report(tmp_path: Path, report: Any, expected: str | None) -> None:
    bundle = types.SimpleNamespace(path=tmp_path)
    if report is not None:
        (tmp_path / "report.json").write_text(json.dumps(report))
    got = bench.host_int8_check(bundle)
    if report is None:
        assert got is not None and expected is not None and got.startswith(expected)
    else:
        assert got == expected


def _built(bundle: Bundle, calls: list[tuple[str, Any]]) -> Any:
    """engine_for_bundle's stand-in: an engine and sidecar per precision (what the recipe's build writes)."""

    def build(b: Bundle, precision: str, options: Any = None, device: int = 0, rebuild: bool = False) -> Path:
        calls.append((precision, options))
        b.engines_dir.mkdir(exist_ok=True)
        path = b.engines_dir / f"{precision}.engine"
        path.write_bytes(b"\0" * 64)
        meta = fake_meta(
            precision=precision,
            int8_mode="qdq" if precision == "int8" else "none",
            batch=BatchProfile(1, 2, 4),
            engine_bytes=64,
        )
        meta.save(path.with_suffix(".json"))
        return path

    return build


@pytest.mark.parametrize(
    "passed, times, chosen",
    [
        (True, {"fp16": 6.0, "int8": 5.0}, "int8"),
        (True, {"fp16": 6.0, "int8": 5.9}, "fp16"),
        (False, {"fp16": 6.0, "int8": 3.0}, "fp16"),
    ],
)
def test_best_builds_both_times_at_opt_batch_records_and_the_detector_takes_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, passed: bool, times: dict[str, float], chosen: str
) -> None:
    import rtdetr_edge.engine as engine_pkg

    bundle = fake_bundle(tmp_path)
    (bundle.path / "report.json").write_text(json.dumps({"check": {"int8": {"passed": passed}}}))
    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(engine_pkg, "engine_for_bundle", _built(bundle, calls))
    timed: list[tuple[str, int]] = []

    def timer(path: Path, batch: int) -> dict[str, Any]:
        timed.append((path.stem, batch))
        return {"batch": batch, "iterations": 50, "gpu_compute_ms": times[path.stem], "host_latency_ms": 9.0}

    options = object()
    best = bench.best_precision(bundle, options, timer=timer)
    assert [c[0] for c in calls] == ["fp16", "int8"] and all(c[1] is options for c in calls)  # one recipe, both
    assert timed == [("fp16", 2), ("int8", 2)]  # the profile 1,2,4's opt batch
    assert best.chosen == chosen and best.metric == "gpu_compute_ms"
    for precision in ("fp16", "int8"):
        meta = load_sidecar(bundle.engines_dir / f"{precision}.engine")
        assert meta is not None and meta.timings["gpu_compute_ms"] == times[precision]
        assert meta.best["chosen"] == chosen and meta.best["reason"] == best.reason
        assert json.loads((bundle.engines_dir / f"{precision}.json").read_text())["format_version"] == 2
    table = best.table().splitlines()
    assert table[0].split() == ["precision", "batch", "GPU", "ms", "p50", "host", "ms", "p50", "engine"]
    assert table[1].split()[:3] == ["fp16", "2", f"{times['fp16']:.2f}"]
    assert table[-1] == f"default on this device: {chosen} ({best.reason})"
    # the Detector's precision="auto" on this TensorRT and GPU takes the choice (the sidecars name both)
    fake.install(monkeypatch, "10.3.0.30")
    monkeypatch.setattr(buffers, "_DRIVER", fake.FakeDriver())  # an AGX Orin 64 GB: "Orin", 16 SMs, 61 GiB
    assert detector.device_precision(bundle) == chosen
    monkeypatch.setattr(buffers, "_DRIVER", fake.FakeDriver(sm_count=8, memory_gib=15))  # another Orin
    assert detector.device_precision(bundle) is None


def test_best_needs_both_graphs_and_falls_back_to_host_latency(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import rtdetr_edge.engine as engine_pkg

    with pytest.raises(InputError, match="has no int8 graph"):
        bench.best_precision(fake_bundle(tmp_path / "a", int8=None), timer=lambda p, n: {})
    bundle = fake_bundle(tmp_path / "b")
    monkeypatch.setattr(engine_pkg, "engine_for_bundle", _built(bundle, []))
    host = {"fp16": 10.0, "int8": 8.0}
    best = bench.best_precision(
        bundle, timer=lambda p, n: {"batch": n, "gpu_compute_ms": None, "host_latency_ms": host[p.stem]}
    )
    assert best.metric == "host_latency_ms" and best.chosen == "fp16"  # no report.json: no host check
    assert best.reason.startswith("the bundle's report.json cannot be read")


def test_the_engine_command_prints_the_table_with_the_choice_last(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import rtdetr_edge.engine as engine_pkg
    from rtdetr_edge.cli.engine import main

    bundle = fake_bundle(tmp_path)
    fake.install(monkeypatch, "10.3.0.30")
    monkeypatch.setattr(engine_pkg, "engine_for_bundle", _built(bundle, []))
    gpu = {"fp16": 4.0, "int8": 3.9}
    monkeypatch.setattr(
        bench, "time_engine", lambda p, n, device=0: {"batch": n, "gpu_compute_ms": gpu[p.stem], "host_latency_ms": 5.0}
    )
    assert main([str(bundle.path), "--precision", "best"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in out[1:3]] == ["fp16", "int8"]
    assert out[-1].startswith("default on this device: fp16 (the bundle's report.json cannot be read")
