"""The exporter's tests need the host tools (torch, transformers, ONNX Runtime); on a device with only
the runtime installed (``python -m pytest -m gpu`` on a Jetson) this folder is not collected."""

from __future__ import annotations

import importlib.util

HOST_TOOLS = ("torch", "transformers", "onnxruntime")


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


collect_ignore_glob = [] if all(_importable(m) for m in HOST_TOOLS) else ["test_*.py"]
