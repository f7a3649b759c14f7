"""rtdetr-bench from the command line, in-process: latency per stage, throughput, JSON."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import Cli


def test_bench_cli_reports_latency_per_stage_and_json(cli: Cli, tiny_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run = cli(
        "rtdetr-bench", str(tiny_bundle), "--batch", "2", "--iterations", "5", "--warmup", "1", "--json", str(out)
    )
    assert run.code == 0, run.err
    assert "host latency" in run.out and "preprocess" in run.out and "throughput" in run.out
    data = json.loads(out.read_text())
    assert data["batch"] == 2 and {"p50", "p90", "p99"} <= set(data["latency_ms"])
    assert set(data["stages_ms"]) == {"preprocess", "infer", "postprocess"}
