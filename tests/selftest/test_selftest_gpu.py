"""``pytest -m gpu``: the self-test's CUDA and TensorRT checks, one test each, on a GPU machine.

They need only the runtime install and the shipped self-test bundle (no torch, no export): a
Jetson or T4 user runs ``python -m pytest -m gpu``. A check that cannot run there (no DLA, TensorRT
11 without implicit INT8, no TensorRT) is skipped with its reason; a failed one fails with its
reason and numbers. Never run by us: no development machine has a GPU.
"""

from __future__ import annotations

import json

import pytest

from rtdetr_edge import selftest
from rtdetr_edge.selftest.checks import CHECKS


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> selftest.SelftestReport:
    work = tmp_path_factory.mktemp("selftest")
    result = selftest.run_selftest(selftest.SelftestOptions(work=str(work)))
    (work / "report.json").write_text(json.dumps(result.to_dict(), indent=2, default=str))
    return result


@pytest.mark.gpu
@pytest.mark.parametrize("name", [c.name for c in CHECKS if c.needs != "cpu"])
def test_gpu_selftest_check(report: selftest.SelftestReport, name: str) -> None:
    (entry,) = [c for c in report.checks if c.name == name]
    if entry.status == "skipped":
        pytest.skip(entry.reason)
    assert entry.status == "passed", f"{entry.reason}\nnumbers: {entry.numbers}\n{entry.traceback or ''}"


@pytest.mark.gpu
def test_gpu_selftest_report_names_the_device(report: selftest.SelftestReport) -> None:
    env = report.environment
    assert env["gpu"] is not None and env["cuda"]["devices"] >= 1, env
    assert all(c.versions["gpu"] for c in report.checks if c.status == "passed" and c.needs != "cpu")
