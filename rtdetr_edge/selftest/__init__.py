"""rtdetr-selftest: check this machine's TensorRT runtime with a tiny bundle shipped in the package.

    rtdetr-selftest [--json report.json] [--work DIR] [--device N] [--only NAME,...] [-v]

What a user runs on a bare Jetson or T4 with only the runtime installed (``pip install
"rtdetr-edge[trt]"`` and the system TensorRT; no torch, transformers or export tools). The
bundle (``rtdetr_edge/selftest/data``, made by ``tools/make_selftest_bundle.py``) is a 64x64
random-weight RT-DETR with fp32, FP16 and INT8 artifacts, and ONNX Runtime's outputs for four
images recorded on the host. The checks (``rtdetr_edge.selftest.checks.CHECKS``):

* CPU: the bundle and recordings are intact; ONNX Runtime reproduces the recordings (when
  installed); INT8 caches are written for the TensorRT versions; every precision and INT8 route
  has a build plan;
* CUDA: pinned and mapped buffer round trips; the pycuda fallback from two threads, and the fp32
  engine run on pycuda's buffers, stream and events (when pycuda is installed);
* TensorRT: fp32, FP16 and INT8 (the Q/DQ graph) engines, each compared with the recordings; mapped
  vs pinned memory; CUDA graphs over batches 1,2,1,2,1,2 (2 captures, 4 launches: graphs replayed
  after batch switches); clones in parallel threads; timing-cache reuse (on TensorRT >= 10 the
  rebuild fails on any timing-cache miss); FP16 on DLA, and the recipe's refusal of INT8 on DLA
  (DLA takes INT8 only by implicit quantization).

A check that cannot run here is skipped with the reason (no GPU, no TensorRT, no DLA); without a
GPU the CPU checks run and the command exits 0. ``--json`` writes one entry per check (name,
status, reason, numbers, versions) to attach to a bug report. Exit status: 0 when no check
failed, 1 otherwise (or for a usage error). ``python -m pytest -m gpu`` runs the same checks.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, atomic
from ..bundle import Bundle
from ..cuda import buffers
from ..errors import InputError, MissingDependencyError, RtdetrEdgeError
from ..outputs import check_output_file
from .checks import CHECKS, Check, Session, Skipped, describe_error

log = logging.getLogger("rtdetr_edge")

DATA = Path(__file__).resolve().parent / "data"
STATUSES = ("passed", "failed", "skipped")

__all__ = ["CHECKS", "DATA", "CheckResult", "SelftestOptions", "SelftestReport", "main", "run_selftest"]


@dataclass(frozen=True)
class SelftestOptions:
    """What to run.

    Attributes:
        device: CUDA device index (0).
        work: folder for the bundle copy and the engines, kept afterwards (None: a temporary one).
        data: folder with ``bundle/``, ``reference.npz`` and ``reference.json`` (None: the shipped one).
        only: run just these checks (names from ``CHECKS``); () runs all.
    """

    device: int = 0
    work: str | None = None
    data: str | None = None
    only: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.device, bool) or not isinstance(self.device, int) or self.device < 0:
            raise InputError(f"--device: expected a CUDA device index >= 0, got {self.device!r}")
        names = {c.name for c in CHECKS}
        unknown = [n for n in self.only if n not in names]
        if unknown:
            raise InputError(
                f"--only {','.join(unknown)}: expected check names from {', '.join(c.name for c in CHECKS)}"
            )
        object.__setattr__(self, "only", tuple(self.only))


@dataclass
class CheckResult:
    """One check's outcome, as the JSON report has it."""

    name: str
    needs: str
    what: str
    status: str  # passed, failed or skipped
    reason: str
    numbers: dict[str, Any]
    seconds: float
    versions: dict[str, Any]
    traceback: str | None = None


@dataclass
class SelftestReport:
    environment: dict[str, Any]
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return {s: sum(1 for c in self.checks if c.status == s) for s in STATUSES}

    @property
    def ok(self) -> bool:
        return self.counts["failed"] == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "rtdetr-edge-selftest",
            "version": 1,
            "environment": self.environment,
            "summary": self.counts,
            "checks": [asdict(c) for c in self.checks],
        }


def _package_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _environment(device: int) -> tuple[dict[str, Any], str | None, buffers.CudaStatus, buffers.DeviceProperties | None]:
    from ..backends.trt_logging import load_tensorrt

    trt_version, trt_reason = None, ""
    try:
        trt_version = str(load_tensorrt("the TensorRT self-test").__version__)
    except MissingDependencyError as exc:
        trt_reason = str(exc)
    cuda = buffers.cuda_status()
    gpu = None
    if cuda.devices > device:
        try:
            gpu = buffers.device_properties(device)
        except RtdetrEdgeError as exc:
            cuda = buffers.CudaStatus(cuda.versions, 0, str(exc))
    tegra = Path("/etc/nv_tegra_release")
    env: dict[str, Any] = {
        "rtdetr_edge": __version__,
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "jetson_release": tegra.read_text().splitlines()[0].strip() if tegra.is_file() else None,
        "tensorrt": trt_version,
        "tensorrt_missing": trt_reason or None,
        "polygraphy": _package_version("polygraphy"),
        "onnxruntime": _package_version("onnxruntime") or _package_version("onnxruntime-gpu"),
        "numpy": np.__version__,
        "cuda": {**cuda.versions, "devices": cuda.devices, "reason": cuda.reason or None},
        "gpu": None
        if gpu is None
        else {
            "index": gpu.index,
            "name": gpu.name,
            "compute_capability": gpu.compute_capability,
            "integrated": gpu.integrated,
            "can_map_host_memory": gpu.can_map_host_memory,
            "memory_gib": round(gpu.total_memory / 2**30, 1),
            "sm_count": gpu.sm_count,
        },
    }
    return env, trt_version, cuda, gpu


def _load_data(folder: Path, work: Path) -> tuple[Bundle, dict[str, np.ndarray], dict[str, dict[str, float]]]:
    for name in ("bundle", "reference.npz", "reference.json"):
        if not (folder / name).exists():
            raise InputError(f"{folder}: not a self-test data folder ({name} is missing)")
    target = work / "bundle"
    if target.exists() or target.is_symlink():
        # only a copy the self-test made itself is replaced (same metadata.json as the shipped bundle):
        # --work may be any folder of the user's, and its "bundle" is not ours to delete
        ours = (target / "metadata.json").is_file() and not target.is_symlink()
        if not ours or (target / "metadata.json").read_bytes() != (folder / "bundle" / "metadata.json").read_bytes():
            raise InputError(
                f"--work {work}: {target} exists and is not the self-test's bundle copy; choose another "
                "--work folder (nothing was deleted)"
            )
        shutil.rmtree(target)
    # a copy: the package folder may be read-only, and engines are written next to the bundle
    shutil.copytree(folder / "bundle", target, ignore=shutil.ignore_patterns("engines"))
    with np.load(folder / "reference.npz") as npz:
        reference = {k: npz[k] for k in npz.files}
    info = json.loads((folder / "reference.json").read_text())
    return Bundle(target), reference, dict(info["required_agreement_with_fp32"])


NO_TENSORRT = "TensorRT is not installed (Jetson: JetPack's python3-libnvinfer; x86: pip install tensorrt)"


def _skip_reason(check: Check, session: Session) -> str | None:
    if check.needs == "cpu":
        return None
    missing = []
    if session.cuda.devices <= session.device or session.gpu is None:
        missing.append(session.cuda.reason or f"no CUDA device {session.device}")
    if check.needs == "tensorrt" and session.trt_version is None:
        missing.append(NO_TENSORRT)
    return "; ".join(missing) or None


def _versions(session: Session) -> dict[str, Any]:
    return {
        "tensorrt": session.trt_version,
        "cuda_driver": session.cuda.versions.get("driver"),
        "cuda_runtime": session.cuda.versions.get("runtime"),
        "cuda_bindings": session.cuda.versions.get("bindings"),
        "gpu": None
        if session.gpu is None
        else f"{session.gpu.name} (sm {session.gpu.compute_capability}, {session.gpu.sm_count} SMs)",
    }


def _run_check(check: Check, session: Session) -> CheckResult:
    t0 = time.perf_counter()
    numbers: dict[str, Any] = {}
    trace = None
    skip = _skip_reason(check, session)
    if skip is not None:
        status, reason = "skipped", skip
    else:
        try:
            numbers = check.run(session)
            status, reason = "passed", ""
        except Skipped as exc:
            status, reason = "skipped", describe_error(exc)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, then the next check runs
            status, reason = "failed", describe_error(exc)
            if not isinstance(exc, RtdetrEdgeError):
                trace = traceback.format_exc()
    return CheckResult(
        check.name,
        check.needs,
        check.what,
        status,
        reason,
        numbers,
        round(time.perf_counter() - t0, 3),
        _versions(session),
        trace,
    )


def run_selftest(options: SelftestOptions | None = None) -> SelftestReport:
    """Run the checks (all, or ``options.only``) and return the report; never raises for a failed check.

    Raises:
        InputError: the data folder is not a self-test data folder.
    """
    options = options or SelftestOptions()
    env, trt_version, cuda, gpu = _environment(options.device)
    report = SelftestReport(env)
    with tempfile.TemporaryDirectory(prefix="rtdetr-selftest-") as tmp:
        work = Path(options.work) if options.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        bundle, reference, required = _load_data(Path(options.data) if options.data else DATA, work)
        session = Session(bundle, reference, required, options.device, trt_version, cuda, gpu)
        for check in CHECKS:
            if options.only and check.name not in options.only:
                continue
            result = _run_check(check, session)
            report.checks.append(result)
            log.info("%s %s (%.1f s) %s", result.status, result.name, result.seconds, result.reason)
    return report


def _summary_line(numbers: dict[str, Any]) -> str:
    keep = {k: v for k, v in numbers.items() if not isinstance(v, (dict, list))}
    return ", ".join(f"{k} {v}" for k, v in list(keep.items())[:5])


def format_report(report: SelftestReport) -> str:
    env = report.environment
    cuda = env["cuda"]
    gpu = env["gpu"]
    lines = [
        f"rtdetr-selftest {env['rtdetr_edge']} (python {env['python']}, {env['platform']})",
        f"  TensorRT: {env['tensorrt'] or 'not installed'}; CUDA: "
        + (f"{gpu['name']} sm {gpu['compute_capability']}" if gpu else str(cuda.get("reason") or "no device"))
        + f"; driver {cuda.get('driver', '?')}, {cuda.get('bindings', 'no CUDA bindings')}",
    ]
    labels = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}
    width = max(len(c.name) for c in report.checks) if report.checks else 10
    for c in report.checks:
        detail = c.reason if c.status != "passed" else _summary_line(c.numbers) or c.what
        lines.append(f"{labels[c.status]}  {c.name:<{width}}  {c.seconds:6.1f} s  {detail}")
    n = report.counts
    lines.append(f"{n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rtdetr-selftest",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="checks: " + ", ".join(c.name for c in CHECKS),
    )
    p.add_argument("--json", metavar="FILE", help="write the report (one entry per check) to FILE")
    p.add_argument(
        "--work", metavar="DIR", help="keep the bundle copy and the engines in DIR (default: a temporary folder)"
    )
    p.add_argument("--device", type=int, default=SelftestOptions().device, help="CUDA device index (default 0)")
    p.add_argument("--only", metavar="NAMES", default="", help="comma-separated check names to run (default: all)")
    p.add_argument("--data", metavar="DIR", help="self-test data folder (default: the one shipped in the package)")
    p.add_argument("-v", "--verbose", action="store_true", help="log what each check does (INFO) to stderr")
    p.add_argument("--version", action="version", version=f"%(prog)s (rtdetr-edge {__version__})")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    log.addHandler(handler)
    level, log.level = log.level, logging.INFO if args.verbose else logging.WARNING
    try:
        if args.json:  # before the checks run: a report that cannot be written is known at once
            check_output_file(args.json, "--json")
        options = SelftestOptions(args.device, args.work, args.data, tuple(n for n in args.only.split(",") if n))
        report = run_selftest(options)
    except RtdetrEdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    print(format_report(report))
    if args.json:
        try:
            atomic.write_text(args.json, json.dumps(report.to_dict(), indent=2, default=str) + "\n")
        except OSError as exc:
            print(f"error: --json {args.json}: cannot write the report ({exc.strerror or exc})", file=sys.stderr)
            return 1
        print(f"report written to {args.json}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
