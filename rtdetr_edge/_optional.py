"""Lazy imports of heavy optional dependencies with an actionable error.

Nothing here installs anything: a missing package raises :class:`MissingDependencyError`
naming the extra (or the system route, for TensorRT on Jetson) that provides it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError

# module -> how to get it. TensorRT is special: PyPI wheels do not exist for Jetson, where
# JetPack's system TensorRT must be used (see docs/deploy-jetson.md).
_ROUTES: dict[str, str] = {
    "torch": 'pip install "rtdetr-edge[export]" (torch==2.13.0 CPU wheel is enough on a host)',
    "transformers": 'pip install "rtdetr-edge[export]"',
    "onnxsim": 'pip install "rtdetr-edge[export]"',
    "onnx_graphsurgeon": 'pip install "rtdetr-edge[export]"',
    "onnxruntime": "pip install onnxruntime (or onnxruntime-gpu)",
    "polygraphy": 'pip install polygraphy (part of "rtdetr-edge[trt]" and "rtdetr-edge[check]")',
    "faster_coco_eval": 'pip install "rtdetr-edge[eval]"',
    "onnxconverter_common": 'pip install "rtdetr-edge[quant]"',
    "tensorrt": (
        "on Jetson use JetPack's system TensorRT (apt install python3-libnvinfer, or the "
        "l4t-tensorrt container); on x86 pip install tensorrt"
    ),
    "cuda": 'pip install "rtdetr-edge[trt]" (CUDA 12: JetPack 6) or "rtdetr-edge[trt-cu13]" (CUDA 13: JetPack 7.2)',
    "pycuda": "pip install pycuda (alternative to cuda-python)",
    "PIL": "pip install pillow",
    "jinja2": "pip install jinja2 (a dependency of rtdetr-edge)",
    "matplotlib": 'pip install "rtdetr-edge[check]" (the HTML report)',
    "tritonclient": 'pip install "rtdetr-edge[serve]" (tritonclient[http,grpc])',
}


# The oldest version rtdetr-edge works with, where it matters; pyproject's extras name the same floor
# (tests/tooling/test_support_matrix.py holds them together). Polygraphy: `strongly_typed` network
# loaders came in 0.48.0 and the Python-logging switch (`G_LOGGER.use_python_logging_system`) in
# 0.49.13 (tools/Polygraphy/CHANGELOG.md in NVIDIA/TensorRT); 0.47.x failed with a TypeError.
MIN_VERSIONS: dict[str, str] = {"polygraphy": "0.49.13"}


def _release(version: str) -> tuple[int, ...]:
    """``"0.49.13"`` -> (0, 49, 13); stops at the first part that is not a number (``"0.53.6.dev1"``)."""
    parts: list[int] = []
    for part in version.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def route_for(name: str) -> str:
    """How a user gets the top-level package ``name`` (used in error messages)."""
    return _ROUTES.get(name.split(".", maxsplit=1)[0], f"pip install {name.split('.', maxsplit=1)[0]}")


def require(module: str, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` saying how to install it.

    Args:
        module: dotted module name, e.g. ``"tensorrt"`` or ``"cuda.bindings.runtime"``.
        purpose: what it is needed for, shown in the message (e.g. ``"exporting to ONNX"``).
    """
    why = f" for {purpose}" if purpose else ""
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"'{module}' is needed{why} but cannot be imported ({exc}). Install it: {route_for(module)}"
        ) from exc
    floor = MIN_VERSIONS.get(module)
    if floor is not None:
        found = str(getattr(mod, "__version__", "?"))
        if _release(found) < _release(floor):
            raise MissingDependencyError(
                f"'{module}' {found} is too old{why}: rtdetr-edge needs {module} >= {floor}. "
                f'Upgrade it: pip install "{module}>={floor}"'
            )
    return mod


def available(module: str) -> bool:
    """True if ``module`` can be imported (it is imported to find out)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def tensorrt_available() -> bool:
    """True if a real TensorRT runtime imports (``tensorrt-stubs`` alone installs a ``tensorrt``
    package of type stubs, which must not count)."""
    try:
        module = importlib.import_module("tensorrt")
    except ImportError:
        return False
    return hasattr(module, "Builder") and hasattr(module, "__version__")
