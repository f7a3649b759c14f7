"""The serve environment: the ``nvidia-pytriton`` wheel's ``tritonserver`` with a ``numpy<2`` Python.

The wheel ships a real Triton server (2.51, only the Python backend) whose Python-backend models
need ``numpy<2`` (with numpy 2 their outputs fail "output tensor shape does not match size of
output"), so it gets an environment of its own, made once by ``rtdetr-serve --setup-env``
(:func:`setup_environment`):

* a venv of this Python with ``numpy<2`` and ``nvidia-pytriton`` installed in it;
* a ``.pth`` file adding this Python's site-packages *after* the venv's own, so the models import
  the installed rtdetr-edge (an editable install too) and its dependencies, while numpy resolves
  to the venv's 1.x (the Python backend stub does not inherit ``PYTHONPATH``; it finds the venv's
  ``python3`` on ``PATH``, as pytriton runs it);
* ``triton-backends/python/``: the wheel's Python backend with the stub built for this Python;
* ``rtdetr-serve.json``: where everything is, written last (an environment without it is
  incomplete and is made again).

Default location: ``$RTDETR_SERVE_ENV``, else ``~/.cache/rtdetr-edge/serve-env/<key>`` where the
key names the Python version, the pytriton version and this Python's prefix, so a new version
gets a new environment.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, MissingDependencyError, RtdetrEdgeError

log = logging.getLogger("rtdetr_edge")

PYTRITON_VERSION = "0.7.0"
NUMPY_PIN = "numpy<2"
ENV_VARIABLE = "RTDETR_SERVE_ENV"
INFO_FILE = "rtdetr-serve.json"
SETUP_MARKER = ".rtdetr-serve-setup"  # written first: a folder with it may be removed and made again


@dataclass(frozen=True)
class ServerBinary:
    """A ``tritonserver`` to run, and the environment it needs.

    Attributes:
        executable: the ``tritonserver`` binary.
        backend_directory: ``--backend-directory`` (None: the server's own default).
        library_path: prepended to ``LD_LIBRARY_PATH``.
        bin_path: prepended to ``PATH`` (the Python the backend stub embeds is found there).
        backends: names of the backends it has (``python``, ``onnxruntime``, ``tensorrt``, ...).
        origin: ``"system"`` or ``"nvidia-pytriton"``.
    """

    executable: Path
    backend_directory: Path | None
    library_path: tuple[str, ...]
    bin_path: tuple[str, ...]
    backends: tuple[str, ...]
    origin: str

    def environ(self) -> dict[str, str]:
        env = dict(os.environ)
        for key, extra in (("LD_LIBRARY_PATH", self.library_path), ("PATH", self.bin_path)):
            if extra:
                env[key] = os.pathsep.join([*extra, *([env[key]] if env.get(key) else [])])
        return env


def environment_key() -> str:
    prefix = hashlib.sha256(os.path.realpath(sys.prefix).encode()).hexdigest()[:8]
    return f"py{sys.version_info[0]}.{sys.version_info[1]}-pytriton{PYTRITON_VERSION}-{prefix}"


def default_environment_dir() -> Path:
    if os.environ.get(ENV_VARIABLE):
        return Path(os.environ[ENV_VARIABLE])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "rtdetr-edge" / "serve-env" / environment_key()


def load_environment(path: str | os.PathLike[str] | None = None) -> ServerBinary | None:
    """The serve environment at ``path`` (default :func:`default_environment_dir`), None if not made."""
    root = Path(path) if path is not None else default_environment_dir()
    try:
        info = json.loads((root / INFO_FILE).read_text(encoding="utf-8"))
        binary = ServerBinary(
            executable=Path(info["tritonserver"]),
            backend_directory=Path(info["backend_directory"]),
            library_path=tuple(info["library_path"]),
            bin_path=tuple(info["bin_path"]),
            backends=("python",),
            origin="nvidia-pytriton",
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return binary if binary.executable.is_file() else None


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second setup waits for the first, then reuses it
        yield


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip() and "WARNING" not in ln]
        raise RtdetrEdgeError(f"{what} failed: {lines[-1] if lines else f'exit {proc.returncode}'}")


def _libpython_dirs() -> list[str]:
    """Where this Python's shared libpython is (the stub links it), so the stub loads this one."""
    libdir = str(sysconfig.get_config_var("LIBDIR") or "")
    name = str(sysconfig.get_config_var("INSTSONAME") or "")
    multiarch = str(sysconfig.get_config_var("MULTIARCH") or "")
    return [d for d in (libdir, os.path.join(libdir, multiarch)) if name and (Path(d) / name).is_file()][:1]


def setup_environment(path: str | os.PathLike[str] | None = None) -> ServerBinary:
    """Make (or reuse) the serve environment at ``path`` (default :func:`default_environment_dir`).

    Installs ``numpy<2`` and ``nvidia-pytriton=={PYTRITON_VERSION}`` with pip (about 60 MB, once).
    """
    root = Path(path) if path is not None else default_environment_dir()
    ready = load_environment(root)
    if ready is not None:
        return ready
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    with _locked(root):
        ready = load_environment(root)  # made by another process while this one waited
        if ready is not None:
            return ready
        if root.exists():
            if not root.is_dir() or (any(root.iterdir()) and not (root / SETUP_MARKER).is_file()):
                # never delete what a user keeps there: only an empty folder or our own half-made one
                raise InputError(
                    f"{root}: exists and is not an rtdetr-serve environment; pass --env a new or empty folder"
                )
            shutil.rmtree(root)  # an incomplete earlier attempt (it carries the marker) or empty
        log.info("creating the serve environment %s (numpy<2, nvidia-pytriton %s; once)", root, PYTRITON_VERSION)
        root.mkdir(parents=True)
        (root / SETUP_MARKER).write_text("made by rtdetr-serve --setup-env\n", encoding="utf-8")
        venv.create(root, with_pip=True, symlinks=True)
        python = root / "bin" / "python"
        _run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", NUMPY_PIN,
             f"nvidia-pytriton=={PYTRITON_VERSION}"],
            f"pip install {NUMPY_PIN} nvidia-pytriton=={PYTRITON_VERSION} into {root}",
        )  # fmt: skip
        purelib = Path(
            subprocess.run(
                [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                capture_output=True, text=True, check=True,
            ).stdout.strip()
        )  # fmt: skip
        dist = purelib / "pytriton" / "tritonserver"
        stub = dist / "python_backend_stubs" / version / "triton_python_backend_stub"
        if not stub.is_file():
            raise MissingDependencyError(
                f"nvidia-pytriton {PYTRITON_VERSION} has no Python backend stub for Python {version}"
            )
        backends = root / "triton-backends"
        shutil.copytree(dist / "backends", backends)
        shutil.copy2(stub, backends / "python" / "triton_python_backend_stub")
        # this Python's packages (rtdetr-edge and its dependencies), after the venv's own numpy<2
        ours = [p for p in [*site.getsitepackages(), site.getusersitepackages()] if Path(p).is_dir()]
        (purelib / "zz_rtdetr_edge_host.pth").write_text(
            "".join(f"import site; site.addsitedir({p!r})\n" for p in ours), encoding="utf-8"
        )
        _run(
            [str(python), "-c", "import numpy, rtdetr_edge; assert numpy.__version__ < '2', numpy.__version__"],
            f"checking numpy<2 and rtdetr_edge in {root}",
        )
        info = {
            "tritonserver": str(dist / "bin" / "tritonserver"),
            "backend_directory": str(backends),
            "library_path": [*_libpython_dirs(), str(purelib / "nvidia_pytriton.libs")],
            "bin_path": [str(root / "bin")],
            "python": version,
            "pytriton": PYTRITON_VERSION,
        }
        (root / INFO_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
    binary = load_environment(root)
    if binary is None:
        raise RtdetrEdgeError(f"{root}: the serve environment is incomplete after setup")
    return binary


def system_server() -> ServerBinary | None:
    """``tritonserver`` on ``PATH`` (e.g. in NVIDIA's Triton container), with the backends it has."""
    found = shutil.which("tritonserver")
    if found is None:
        return None
    exe = Path(found).resolve()
    backend_dir = exe.parent.parent / "backends"  # /opt/tritonserver/{bin,backends}
    backends = tuple(sorted(p.name for p in backend_dir.iterdir() if p.is_dir())) if backend_dir.is_dir() else ()
    return ServerBinary(exe, None, (), (), backends, "system")
