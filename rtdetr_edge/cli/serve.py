"""rtdetr-serve: serve a bundle or a Triton model repository on a real Triton Inference Server."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..backends.options import usable_cores
from ..bundle import METADATA
from ..errors import InputError
from ..serving import environment
from ..serving.environment import ServerBinary
from ..serving.repository import RepositoryOptions, is_repository, write_repository
from ..serving.server import ServerOptions, TritonServer
from ._common import add_verbosity, int_at_least, run, setup_logging

EXAMPLES = """\
examples:
  rtdetr-serve --setup-env                             # once: the nvidia-pytriton server's environment
  rtdetr-serve build/shapes --http-port 8000           # a bundle: a repository is generated for this server
  rtdetr-serve triton/models --http-port 8000 --grpc-port 8001 --metrics-port 8002 --host 0.0.0.0
  curl -s localhost:8000/v2/health/ready && rtdetr-detect photo.jpg --server http://localhost:8000

which server: --tritonserver PATH, else `tritonserver` on PATH (NVIDIA's Triton container), else
the one in the nvidia-pytriton wheel, in the serve environment (numpy<2) that --setup-env makes
(at $RTDETR_SERVE_ENV or ~/.cache/rtdetr-edge/serve-env/<python>-<pytriton>-<prefix>; --env DIR
names another). That server has only the Python backend: a bundle is then served with the
detector in a Python-backend model running rtdetr-edge's Detector. Ctrl-C or SIGTERM stops the
server and every process it started.
"""


def parser() -> argparse.ArgumentParser:
    d = ServerOptions(http_port=8000)
    p = argparse.ArgumentParser(
        prog="rtdetr-serve", description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("model", nargs="?", help="bundle directory or Triton model repository")
    p.add_argument("--http-port", type=int, default=None, help="HTTP port (required to serve)")
    p.add_argument("--grpc-port", type=int, default=None, help="gRPC port (default: gRPC off)")
    p.add_argument("--metrics-port", type=int, default=None, help="Prometheus metrics port (default: metrics off)")
    p.add_argument(
        "--host", default=d.host, help=f"address to listen on (default {d.host}; 0.0.0.0 for every interface)"
    )
    p.add_argument(
        "--detector",
        default="auto",
        choices=["auto", "python", "onnxruntime"],
        help="a bundle's detector step (default auto: onnxruntime where the server has that backend, else python)",
    )
    p.add_argument(
        "--max-batch", type=int, default=RepositoryOptions().max_batch, help="a bundle's max batch (default 8)"
    )
    p.add_argument(
        "--queue-delay-us",
        type=int,
        default=RepositoryOptions().queue_delay_us,
        help="a bundle's dynamic batching queue delay (default 2000)",
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "fp16", "int8"],
        help="a bundle's artifact to serve (default auto: the bundle's default precision, as rtdetr-detect runs)",
    )
    p.add_argument(
        "--threads",
        type=int_at_least(1, usable_cores()),
        default=None,
        help=f"ONNX Runtime threads per detector instance (at most the {usable_cores()} usable cores)",
    )
    p.add_argument("--tritonserver", default=None, help="the tritonserver binary to run (default: see below)")
    p.add_argument("--env", default=None, help="the serve environment's folder (default: see below)")
    p.add_argument(
        "--setup-env", action="store_true", help="create the serve environment (numpy<2, nvidia-pytriton) and exit"
    )
    p.add_argument("--startup-timeout", type=float, default=d.startup_timeout, help="seconds to wait for ready (300)")
    add_verbosity(p)
    return p


def choose_server(args: argparse.Namespace) -> ServerBinary:
    if args.tritonserver:
        exe = Path(args.tritonserver)
        if not exe.is_file():
            raise InputError(f"--tritonserver {exe}: no such file")
        backends = exe.resolve().parent.parent / "backends"
        names = tuple(sorted(p.name for p in backends.iterdir() if p.is_dir())) if backends.is_dir() else ()
        return ServerBinary(exe, None, (), (), names, "system")
    found = environment.system_server()
    if found is not None:
        return found
    env_dir = Path(args.env) if args.env else environment.default_environment_dir()
    binary = environment.load_environment(env_dir)
    if binary is None:
        raise InputError(
            f"no tritonserver on PATH and no serve environment at {env_dir}; create it once with "
            f"`rtdetr-serve --setup-env{' --env ' + args.env if args.env else ''}` (numpy<2 + nvidia-pytriton "
            f"{environment.PYTRITON_VERSION}, ~60 MB), or run this in NVIDIA's Triton container"
        )
    return binary


def is_model_repository(model: Path) -> bool:
    """``model`` is a Triton model repository (ours, or any folder of models with config.pbtxt)."""
    return is_repository(model) or (model.is_dir() and any(model.glob("*/config.pbtxt")))


def check_model(model: Path) -> None:
    if not model.exists():
        raise InputError(f"{model}: no such bundle or model repository")
    if not is_model_repository(model) and not (model / METADATA).is_file():
        raise InputError(
            f"{model}: neither a bundle ({METADATA}) nor a Triton model repository (folders with config.pbtxt)"
        )


def _repository_for(model: Path, binary: ServerBinary, args: argparse.Namespace, scratch: Path) -> Path:
    if is_model_repository(model):
        return model
    kind = args.detector
    if kind == "auto":
        kind = "onnxruntime" if "onnxruntime" in binary.backends else "python"
    return write_repository(
        model,
        scratch / "repository",
        RepositoryOptions(
            detector=kind,
            precision=serve_precision(model, args.precision),
            max_batch=args.max_batch,
            queue_delay_us=args.queue_delay_us,
            threads=args.threads,
            clip=True,  # the local Detector's default: served and local results agree
        ),
    )


def serve_precision(bundle: Path, precision: str) -> str:
    """The bundle artifact to serve: ``precision``, or for ``auto`` the bundle's default precision
    (what ``rtdetr-detect`` runs locally, so that ``rtdetr-detect --server`` gives the same results)."""
    from ..bundle import Bundle

    b = Bundle(bundle)
    chosen = b.precision_for(precision)
    if chosen not in b.precisions:
        have = ", ".join(b.precisions)
        raise InputError(f"--precision {chosen}: {bundle} has no {chosen} artifact (it has {have})")
    return chosen


def _main(argv: Sequence[str] | None) -> int:
    p = parser()
    args = p.parse_args(argv)
    setup_logging(args)
    if args.setup_env:
        binary = environment.setup_environment(args.env)
        print(f"serve environment ready: {binary.executable}", file=sys.stderr)
        return 0
    if args.model is None or args.http_port is None:
        raise InputError("expected a bundle or model repository and --http-port (or --setup-env)")
    options = ServerOptions(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        host=args.host,
        startup_timeout=args.startup_timeout,
        log_verbose=1 if args.verbose > 1 else 0,
    )
    model = Path(args.model)
    check_model(model)
    binary = choose_server(args)
    with tempfile.TemporaryDirectory(prefix="rtdetr-serve.") as scratch:
        repository = _repository_for(model, binary, args, Path(scratch))
        server = TritonServer(repository, binary, options, log_file=sys.stderr if args.verbose else None)
        try:
            server.start()
            print(
                f"ready: {options.url} (Triton {binary.origin}, repository {repository})", file=sys.stderr, flush=True
            )
            server.wait()
        finally:
            server.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
