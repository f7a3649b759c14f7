"""Fixtures of the serving tests: the serve environment, free ports, a running ``rtdetr-serve``.

``serve_env`` is the nvidia-pytriton serve environment in its stable, version-keyed location
(``~/.cache/rtdetr-edge/serve-env/<key>``, or ``$RTDETR_SERVE_ENV``), or ``tritonserver`` on
PATH. The tests never make it (that needs pip to reach PyPI, ~60 MB): ``rtdetr-serve --setup-env``
does, as ``.ci/run`` does before it runs the tests marked ``serving``; without one they skip.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rtdetr_edge.serving.environment import ServerBinary, default_environment_dir, load_environment, system_server
from tests.helpers import REPO

TIMINGS: dict[str, float] = {}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def serve_env() -> ServerBinary:
    t0 = time.perf_counter()
    binary = load_environment() or system_server()
    if binary is None:
        pytest.skip(
            f"no Triton server: no serve environment at {default_environment_dir()} and no tritonserver on PATH; "
            "`rtdetr-serve --setup-env` makes one (needs PyPI; .ci/run does it before `pytest -m serving`)"
        )
    TIMINGS["serve environment (reuse)"] = time.perf_counter() - t0
    return binary


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Served:
    """A running ``rtdetr-serve`` (a process of its own, as a user starts it)."""

    process: subprocess.Popen[str]
    url: str
    grpc_url: str
    http_port: int
    log: Path
    bundle: Path
    started_s: float
    children: set[int] = field(default_factory=set)

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


def start_serve(bundle: Path, log: Path, extra: tuple[str, ...] = (), timeout: float = 300) -> Served:
    http, grpc, metrics = free_port(), free_port(), free_port()
    t0 = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rtdetr_edge.cli.serve", str(bundle), "--http-port", str(http), "--grpc-port",
             str(grpc), "--metrics-port", str(metrics), "--threads", "1", *extra],
            stdout=subprocess.DEVNULL, stderr=err, text=True, cwd=str(REPO),
        )  # fmt: skip
    served = Served(proc, f"http://127.0.0.1:{http}", f"grpc://127.0.0.1:{grpc}", http, log, bundle, 0.0)
    deadline = time.monotonic() + timeout
    while "ready:" not in served.stderr():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"rtdetr-serve did not get ready (exit {proc.poll()}):\n{served.stderr()}")
        time.sleep(0.2)
    served.started_s = time.perf_counter() - t0
    served.children = descendants(proc.pid)
    return served


@pytest.fixture(scope="module")
def served(
    serve_env: ServerBinary, reference_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    log = tmp_path_factory.mktemp("serve") / "rtdetr-serve.stderr"
    s = start_serve(reference_bundle, log)
    TIMINGS["rtdetr-serve start (repository + server ready)"] = s.started_s
    yield s
    if s.process.poll() is None:  # the SIGTERM test did not run: stop it anyway
        s.process.send_signal(signal.SIGTERM)
        try:
            s.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            s.process.kill()
    for pid in s.children:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
