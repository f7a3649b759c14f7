"""Run a real ``tritonserver`` in the foreground: ports checked, ready on ``/v2/health/ready``,
stopped with every process it started.

The server runs in a process group of its own (``start_new_session``), so the Python backend
stubs it forks share that group; :meth:`TritonServer.stop` sends SIGTERM to the whole group,
waits ``exit_timeout`` seconds (the server's own ``--exit-timeout-secs`` is set just below that)
and then SIGKILLs whatever is left. On Linux the server also gets SIGTERM if the process that
started it dies (``PR_SET_PDEATHSIG``), so a killed ``rtdetr-serve`` leaves no server running.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import InputError, RtdetrEdgeError
from .environment import ServerBinary

log = logging.getLogger("rtdetr_edge")


# Triton's log line prefix: E1202 04:51:27.677977 14317 model_lifecycle.cc:642] "message"
_LOG_PREFIX = re.compile(r'^[EWI]\d{4} [\d:.]+ +\d+ [^\]]+\] "?(.*?)"?$')


class ServerError(RtdetrEdgeError):
    """The Triton server did not start, or stopped on its own."""


@dataclass(frozen=True)
class ServerOptions:
    """Where the server listens and how long it may take.

    Attributes:
        http_port: HTTP/REST port (required).
        grpc_port: gRPC port (None: gRPC off).
        metrics_port: Prometheus metrics port (None: metrics off).
        host: address every endpoint binds (``"127.0.0.1"``: this machine only; ``"0.0.0.0"``: all).
        startup_timeout: seconds to wait for ``/v2/health/ready`` (300).
        exit_timeout: seconds the server gets to finish in-flight requests on stop (5).
        log_verbose: Triton's ``--log-verbose`` level (0).
        complete_configs: the configs must be complete (``--disable-auto-complete-config``: Triton
            fills in nothing from the model files; False).
    """

    http_port: int
    grpc_port: int | None = None
    metrics_port: int | None = None
    host: str = "127.0.0.1"
    startup_timeout: float = 300.0
    exit_timeout: float = 5.0
    log_verbose: int = 0
    complete_configs: bool = False

    def __post_init__(self) -> None:
        ports = [
            ("--http-port", self.http_port),
            ("--grpc-port", self.grpc_port),
            ("--metrics-port", self.metrics_port),
        ]
        seen: dict[int, str] = {}
        for what, port in ports:
            if port is None:
                continue
            if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                raise InputError(f"{what}: expected a port number 1..65535, got {port!r}")
            if port in seen:
                raise InputError(f"{what} {port}: the same port as {seen[port]}")
            seen[port] = what
        for flag, seconds in (("--startup-timeout", self.startup_timeout), ("exit_timeout", self.exit_timeout)):
            if not seconds > 0:
                raise InputError(f"{flag}: expected a number of seconds > 0, got {seconds!r}")

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.http_port}"


def check_ports_free(options: ServerOptions) -> None:
    """InputError naming the flag if a port is already taken on ``options.host``."""
    for what, port in (
        ("--http-port", options.http_port),
        ("--grpc-port", options.grpc_port),
        ("--metrics-port", options.metrics_port),
    ):
        if port is None:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds it
            try:
                s.bind((options.host, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise InputError(f"{what} {port}: the port is in use on {options.host}") from None
                raise InputError(f"{what} {port}: cannot listen on {options.host} ({exc.strerror or exc})") from None


def _parent_death_signal() -> Callable[[], None] | None:
    """A function for ``preexec_fn`` that asks Linux to SIGTERM the child when this process dies.

    libc is loaded here, before the fork: the child only calls ``prctl``, taking no locks.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_signal() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return set_signal


class TritonServer:
    """A ``tritonserver`` process serving ``repository`` (use as a context manager).

    Args:
        repository: a Triton model repository folder.
        binary: which server (:func:`~.environment.system_server` or the serve environment).
        options: ports and timeouts, see :class:`ServerOptions`.
        log_file: where the server's output goes (None: a temporary file, removed on stop unless
            the server failed; ``sys.stderr`` to show it).
    """

    def __init__(
        self,
        repository: str | os.PathLike[str],
        binary: ServerBinary,
        options: ServerOptions,
        log_file: IO[str] | None = None,
    ) -> None:
        self.repository = Path(repository)
        self.binary = binary
        self.options = options
        self._own_log = log_file is None
        self._keep_log = False  # a failed server's log stays for the user to read
        self._log: IO[str] = log_file or tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            "w+", prefix="tritonserver.", suffix=".log", delete=False
        )
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        o = self.options
        cmd = [
            str(self.binary.executable),
            f"--model-repository={self.repository}",
            f"--http-address={o.host}",
            f"--http-port={o.http_port}",
            f"--exit-timeout-secs={max(1, int(o.exit_timeout) - 1)}",
            f"--log-verbose={o.log_verbose}",
            "--strict-readiness=true",
        ]
        if o.grpc_port is None:
            cmd.append("--allow-grpc=false")
        else:
            cmd += [f"--grpc-address={o.host}", f"--grpc-port={o.grpc_port}"]
        if o.metrics_port is None:
            cmd.append("--allow-metrics=false")
        else:
            cmd += [f"--metrics-address={o.host}", f"--metrics-port={o.metrics_port}"]
        if o.complete_configs:
            cmd.append("--disable-auto-complete-config")
        if self.binary.backend_directory is not None:
            cmd.append(f"--backend-directory={self.binary.backend_directory}")
        return cmd

    def start(self) -> TritonServer:
        """Start the server and wait until it is ready (ServerError with its first error line if not)."""
        if not (self.repository.is_dir()):
            raise InputError(f"{self.repository}: no such model repository folder")
        check_ports_free(self.options)
        log.info("starting %s (%s)", self.binary.executable, self.binary.origin)
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.binary.environ(),
            start_new_session=True,  # its own process group: stop() signals the server and its stubs
            preexec_fn=_parent_death_signal(),  # noqa: PLW1509 - only prctl, no locks taken
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def pgid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.options.url}/v2/health/ready", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.options.startup_timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                self._keep_log = True
                raise ServerError(f"tritonserver exited ({code}) before it was ready: {self.first_error()}")
            if self.ready():
                return
            time.sleep(0.25)
        self._keep_log = True
        raise ServerError(
            f"tritonserver was not ready after {self.options.startup_timeout:.0f} s: {self.first_error() or 'no error logged'}"
        )

    def log_text(self) -> str:
        try:
            self._log.flush()
            return Path(self._log.name).read_text(errors="replace") if hasattr(self._log, "name") else ""
        except (OSError, ValueError):
            return ""

    def first_error(self) -> str:
        """The server's first real error: a model that failed to load, else its first ``E`` log line."""
        lines = self.log_text().splitlines()
        noise = ("CUDA", "Cuda", "NVML", "DCGM")  # a machine without a GPU logs these at every start
        picks = (
            [ln for ln in lines if "failed to load '" in ln]
            or [ln for ln in lines if ln[:1] == "E" and _LOG_PREFIX.match(ln) and not any(n in ln for n in noise)]
            or [ln for ln in lines if "error:" in ln.lower()]
            or lines[-1:]
            or [""]
        )
        match = _LOG_PREFIX.match(picks[0])
        line = match.group(1) if match else picks[0].strip()
        if not self._own_log:
            return line or "see the server's log above"
        return line + f" (full log: {self._log.name})"

    def wait(self) -> int:
        """Block until the server exits by itself; ServerError naming its first error."""
        assert self.process is not None
        code = self.process.wait()
        self._keep_log = True
        raise ServerError(f"tritonserver exited ({code}): {self.first_error()}")

    def stop(self) -> None:
        """SIGTERM the server's process group, SIGKILL what is left after ``exit_timeout``. Idempotent."""
        proc = self.process
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=self.options.exit_timeout)
            except subprocess.TimeoutExpired:
                log.warning("tritonserver did not stop in %.0f s: killing it", self.options.exit_timeout)
            # the stubs can outlive the server by a moment: nothing of the group may remain
            deadline = time.monotonic() + 2.0
            while _group_alive(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        if self._own_log and not self._log.closed:
            self._log.close()
            if not self._keep_log:
                with contextlib.suppress(OSError):
                    os.unlink(self._log.name)

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
