"""The layering in docs/architecture.md, held by an AST walk over every source file.

Each module of ``rtdetr_edge`` (``export/`` and ``calib/`` under their installed names) belongs to
one layer; a module may import its own layer and the layers below, never one above. Imports
inside functions count (a lazy import is still a dependency). On top of the layers, two rules:
nothing outside ``rtdetr_edge.export`` imports torch or the exporter's libraries, and nothing in
the device layers or in evaluate/check/data imports ``rtdetr_edge.export`` or ``rtdetr_edge.calib``.
Each rule is shown to fail on a planted violation.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "rtdetr_edge"

# bottom up; a module's layer is that of its longest matching prefix
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "core",
        (
            "rtdetr_edge.errors",
            "rtdetr_edge._optional",
            "rtdetr_edge.atomic",
            "rtdetr_edge.contract",
            "rtdetr_edge.bundle",
            "rtdetr_edge.detections",
            "rtdetr_edge.matching",
            "rtdetr_edge.ranges",
            "rtdetr_edge.trt_cache",
            "rtdetr_edge.engine_format",
            # what every engine is built from and how: pure, so that the runtime's engine lookup follows it too
            "rtdetr_edge.engine_recipe",
            "rtdetr_edge.onnx_facts",
        ),
    ),
    # the package root is the public API: Detector, Detections, errors, __version__
    (
        "runtime",
        (
            "rtdetr_edge",
            "rtdetr_edge.images",
            "rtdetr_edge.preprocess",
            "rtdetr_edge.postprocess",
            "rtdetr_edge.outputs",
            # HTML pages from the package's templates (the contact sheet; the build's report reads it too)
            "rtdetr_edge.html_pages",
            "rtdetr_edge.contact_sheet",
            "rtdetr_edge.cuda",
            "rtdetr_edge.backends",
            "rtdetr_edge.detector",
        ),
    ),
    ("engine", ("rtdetr_edge.engine",)),
    # rtdetr-selftest: what a bare device runs (runtime + engine only, never host tooling)
    ("selftest", ("rtdetr_edge.selftest",)),
    # Triton serving (rtdetr-triton, rtdetr-serve, the client, the Python-backend models): runtime only
    ("serving", ("rtdetr_edge.serving",)),
    ("data", ("rtdetr_edge.data",)),
    ("evaluate", ("rtdetr_edge.evaluate", "rtdetr_edge.bench")),
    ("check", ("rtdetr_edge.check",)),
    ("calib", ("rtdetr_edge.calib",)),
    ("export", ("rtdetr_edge.export",)),
    # rtdetr-deepstream: host tooling above export (its scaling graph is the frame front's, export.frames),
    # reading the engine recipe and the engine layer's trtexec rendering as serving does; torch-free
    ("deepstream", ("rtdetr_edge.deepstream",)),
    # the HTML report (rtdetr-check --report, BUNDLE/report.html): reads checks and the precision plan
    ("report", ("rtdetr_edge.report",)),
    ("build", ("rtdetr_edge.build",)),
    ("cli", ("rtdetr_edge.cli",)),
]
RANK = {name: i for i, (name, _) in enumerate(LAYERS)}
# third-party modules only the exporter may import (torch-free everywhere else)
EXPORT_ONLY = ("torch", "transformers", "onnxsim", "onnx_graphsurgeon", "safetensors", "torchvision")
# host tooling the device side (and evaluate/check/data) must never import
HOST_ONLY = ("rtdetr_edge.export", "rtdetr_edge.calib")
NO_HOST_LAYERS = ("core", "runtime", "engine", "selftest", "serving", "data", "evaluate", "check")


def layer_of(module: str) -> str:
    best, found = -1, ""
    for name, prefixes in LAYERS:
        for p in prefixes:
            # the root names only itself; every other prefix names its subpackage too
            if (module == p or (p != "rtdetr_edge" and module.startswith(p + "."))) and len(p) > best:
                best, found = len(p), name
    if not found:
        raise AssertionError(f"{module}: not in any layer of tests/test_architecture.py; add it")
    return found


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[0] in ("export", "calib"):  # installed as rtdetr_edge.export / rtdetr_edge.calib
        parts.insert(0, "rtdetr_edge")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> list[Path]:
    """Every module, walking the real folders (export/ and calib/, not the symlinks to them)."""
    links = {PACKAGE / "export", PACKAGE / "calib"}
    files = [p for p in PACKAGE.rglob("*.py") if not any(p.is_relative_to(link) for link in links)]
    files += [p for d in ("export", "calib") for p in (REPO / d).rglob("*.py")]
    return sorted(p for p in files if "__pycache__" not in p.parts)


def imports_of(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, relative ones resolved."""
    out: list[tuple[int, str]] = []
    base = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = base[: len(base) - node.level + 1]
                target = ".".join(parent + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # "from pkg import sub" names submodules; anything else is an import of pkg itself
            subs = [
                f"{target}.{a.name}"
                for a in node.names
                if target.startswith("rtdetr_edge") and _is_submodule(f"{target}.{a.name}")
            ]
            if len(subs) < len(node.names):
                out.append((node.lineno, target))
            out += [(node.lineno, sub) for sub in subs]
    return out


def _is_submodule(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported}: {self.rule}"


def violations(module: str, source: str, is_package: bool) -> list[Violation]:
    found: list[Violation] = []
    mine = layer_of(module)
    for line, target in imports_of(source, module, is_package):
        top = target.split(".")[0]
        if top in EXPORT_ONLY and mine != "export":
            found.append(Violation(module, line, target, f"only rtdetr_edge.export may import {top}"))
        if not target.startswith("rtdetr_edge"):
            continue
        theirs = layer_of(target)
        if RANK[theirs] > RANK[mine]:
            found.append(Violation(module, line, target, f"layer {mine} may not import layer {theirs} (above it)"))
        if mine in NO_HOST_LAYERS and any(target == h or target.startswith(h + ".") for h in HOST_ONLY):
            found.append(Violation(module, line, target, f"layer {mine} may not import host tooling"))
    return found


def project_violations() -> list[Violation]:
    out: list[Violation] = []
    for path in source_files():
        module = module_name(path)
        out += violations(module, path.read_text(), path.name == "__init__.py")
    return out


def test_the_layers_hold() -> None:
    found = project_violations()
    assert not found, "\n".join(map(str, found))


def test_every_module_has_a_layer() -> None:
    for path in source_files():
        layer_of(module_name(path))  # raises naming the module


def _file(rel: str) -> tuple[str, str, bool]:
    path = REPO / rel
    return module_name(path), path.read_text(), path.name == "__init__.py"


@pytest.mark.parametrize(
    ("rel", "planted", "rule"),
    [
        ("rtdetr_edge/detector.py", "from rtdetr_edge.calib import subset", "host tooling"),
        ("rtdetr_edge/detector.py", "from .calib import subset", "host tooling"),
        ("rtdetr_edge/preprocess.py", "import torch", "only rtdetr_edge.export may import torch"),
        (
            "rtdetr_edge/evaluate/runner.py",
            "def f():\n    from rtdetr_edge.export.torch_predictor import TorchPredictor",
            "host tooling",
        ),
        ("rtdetr_edge/check/data.py", "from ..calib.subset import select_subset", "host tooling"),
        ("rtdetr_edge/detector.py", "from .engine import BundleEngines", "layer runtime may not import layer engine"),
        (
            "rtdetr_edge/backends/tensorrt.py",
            "from ..engine.builder import NetworkHints",
            "layer runtime may not import",
        ),
        ("rtdetr_edge/bundle.py", "from .images import read_image", "layer core may not import layer runtime"),
        ("calib/collect.py", "import transformers", "only rtdetr_edge.export may import transformers"),
        ("rtdetr_edge/engine/cache.py", "from ..build import BuildOptions", "layer engine may not import layer build"),
        # the recipe stays pure: the builder (TensorRT, Polygraphy) is above it
        ("rtdetr_edge/engine_recipe.py", "from .engine.builder import NetworkHints", "layer core may not import"),
        # the frame front is host tooling now: the runtime only copies frames
        ("rtdetr_edge/detector.py", "from .export.frames import parse_frame_size", "host tooling"),
        # the DeepStream writer sits below the build pipeline and imports no torch
        (
            "rtdetr_edge/deepstream/graphs.py",
            "from ..build import BuildOptions",
            "layer deepstream may not import layer build",
        ),
        ("rtdetr_edge/deepstream/routes.py", "import torch", "only rtdetr_edge.export may import torch"),
        # and nothing on the device side reaches up into it
        ("rtdetr_edge/serving/plan.py", "from ..deepstream import write_deepstream", "layer serving may not import"),
    ],
)
def test_a_planted_violation_fails(rel: str, planted: str, rule: str) -> None:
    module, source, is_package = _file(rel)
    assert not violations(module, source, is_package), "the file itself must be clean for this test"
    found = violations(module, source + "\n" + planted + "\n", is_package)
    assert found and any(rule in v.rule for v in found), found


def test_export_and_calib_install_only_under_rtdetr_edge(tmp_path: Path) -> None:
    import subprocess
    import sys

    import rtdetr_edge.calib
    import rtdetr_edge.export

    assert Path(rtdetr_edge.calib.__file__).parent.name == "calib"
    assert Path(rtdetr_edge.export.__file__).parent.name == "export"
    code = "import importlib.util as u; print([m for m in ('export', 'calib') if u.find_spec(m)])"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"top-level modules importable outside the checkout: {out.stdout}"


# The implicit INT8 route is gone from the device side (the engine recipe builds INT8 from Q/DQ graphs
# on every TensorRT line): no calibrator, no dynamic ranges, no INT8-route switch may come back.
IMPLICIT_INT8 = (
    "IInt8EntropyCalibrator",
    "IInt8Calibrator",
    "int8_calibrator",
    "set_calibration_profile",
    "set_dynamic_range",
    ".dynamic_range",
    "--int8-mode",
    "--int8-dynamic-range",
    "Calibrator(",
)


def implicit_int8_uses(source: str) -> list[str]:
    """The implicit-INT8 constructs in ``source``'s code (docstrings and comments aside)."""
    import io
    import tokenize

    code = [
        tok.string
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type not in (tokenize.COMMENT,) and not (tok.type == tokenize.STRING and tok.string.startswith('"""'))
    ]
    text = " ".join(code).replace(" . ", ".").replace(" (", "(")
    return [c for c in IMPLICIT_INT8 if c in text]


def test_no_implicit_int8_route_is_left_on_the_device_side() -> None:
    found = {
        module_name(p): uses
        for p in source_files()
        if layer_of(module_name(p)) in ("core", "runtime", "engine", "selftest", "serving", "cli")
        and (uses := implicit_int8_uses(p.read_text()))
    }
    assert not found, found


def test_the_implicit_int8_scan_finds_a_planted_calibrator() -> None:
    planted = "import tensorrt as trt\nclass C(trt.IInt8EntropyCalibrator2):\n    pass\nt.set_dynamic_range(-1, 1)\n"
    assert implicit_int8_uses(planted) == ["IInt8EntropyCalibrator", "set_dynamic_range"]
    assert implicit_int8_uses('"""IInt8EntropyCalibrator2 in a docstring"""\n# set_dynamic_range\n') == []
