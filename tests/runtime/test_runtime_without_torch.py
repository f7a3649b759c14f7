"""The runtime imports and detects in a process where torch (and transformers) cannot be imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BLOCKED_RUN = r"""
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers", "torchvision"):
            raise ImportError(f"blocked for this test: {name}")
        return None
sys.meta_path.insert(0, Block())

import rtdetr_edge, rtdetr_edge.calib
modules = []
for pkg in (rtdetr_edge, rtdetr_edge.calib):
    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        if info.name.startswith("rtdetr_edge.export"):
            continue  # the host-side exporter is the one place torch is allowed
        importlib.import_module(info.name)
        modules.append(info.name)
import numpy as np
from rtdetr_edge import Detector
from rtdetr_edge.data.synth import render_scene
det = Detector(sys.argv[1], conf=0.0, max_det=5)
dets = det(render_scene(np.random.default_rng(0), 320, 240)[0])
assert len(dets) == 5, dets
assert "torch" not in sys.modules and "transformers" not in sys.modules
print(len(modules), "modules imported;", dets)
"""


def test_runtime_needs_no_torch(tiny_bundle: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN, str(tiny_bundle)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "modules imported" in proc.stdout


def test_exporter_without_torch_names_the_extra(tmp_path: Path) -> None:
    code = (
        BLOCKED_RUN.split("import rtdetr_edge, rtdetr_edge.calib")[0]
        + r"""
from rtdetr_edge.build import build_bundle
from rtdetr_edge.errors import MissingDependencyError
try:
    build_bundle("PekingU/rtdetr_r18vd", sys.argv[1])
except MissingDependencyError as exc:
    print(exc)
"""
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "o")], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "rtdetr-edge[export]" in proc.stdout


def test_package_import_stays_light() -> None:
    """`import rtdetr_edge` loads no backend, OpenCV or torch (speed is measured in benchmarks/)."""
    code = (
        "import sys, rtdetr_edge; heavy = [m for m in ('torch', 'onnxruntime', 'cv2', 'onnx') if m in sys.modules];"
        "print(heavy)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr
