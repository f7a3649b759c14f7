"""The trtexec command an :class:`~rtdetr_edge.engine_recipe.EngineRecipe` means, for people who build with trtexec.

``rtdetr-engine`` builds through Polygraphy; Triton users and others build plans with NVIDIA's
``trtexec`` (``/usr/src/tensorrt/bin/trtexec`` on a Jetson, the ``tensorrt`` containers on a
server). :func:`trtexec_command` writes the same decisions as trtexec flags (trtexec's
``samples/common/sampleOptions.cpp`` and ``sampleEngines.cpp``): the shapes of the batch profile,
``--stronglyTyped`` on TensorRT 10 (11 is always strongly typed and has no ``--fp16``/``--int8``),
the weak-typing flags, the FP32 pins as ``--precisionConstraints=prefer`` with ``--layerPrecisions``
and ``--layerOutputTypes``, ``--noTF32`` and DLA.

The pins name ONNX nodes: TensorRT's ONNX parser names a node's first layer after it, and trtexec
matches layer names exactly, so a node that becomes several layers has only its first pinned there
(``rtdetr-engine`` pins all of them, ``<node>_<k>`` too); the engines can differ in that. trtexec
applies one output type to every output of a listed layer, so, as the builder does, a node gets an
FP32 output type only when all its outputs are float and an FP32 precision only when all its inputs
are too (``--layerOutputTypes`` on a TopK would also retype its int32 indices).
"""

from __future__ import annotations

import fnmatch
import os
import shlex
from dataclasses import dataclass

from ..bundle import Bundle
from ..engine_recipe import EngineBuildOptions, EngineRecipe, bundle_graphs, recipe
from ..errors import EngineError, RtdetrEdgeError

_FLOATS = (1, 10, 16)  # onnx.TensorProto FLOAT, FLOAT16, BFLOAT16


@dataclass(frozen=True)
class PinnedLayers:
    """The nodes the recipe's FP32 pins reach in one ONNX, as trtexec can name them."""

    precision: tuple[str, ...]  # float in and out: --layerPrecisions NAME:fp32
    output_types: tuple[str, ...]  # float out: --layerOutputTypes NAME:fp32


def pinned_layers(onnx_path: str | os.PathLike[str], patterns: tuple[str, ...]) -> PinnedLayers:
    """The nodes of ``onnx_path`` that ``patterns`` (op types and node-name globs) pin, with float checks.

    Element types come from ONNX shape inference over the graph (initializers and graph inputs
    included); a node whose types cannot be inferred is left out, as the builder leaves a layer
    with non-float tensors unpinned.
    """
    import onnx

    if not patterns:
        return PinnedLayers((), ())
    try:
        model = onnx.shape_inference.infer_shapes(onnx.load(os.fspath(onnx_path), load_external_data=False))
    except Exception as exc:  # not ONNX, or shape inference failed: the bundle file is not what it says
        raise EngineError(f"{onnx_path}: cannot read its tensor types ({type(exc).__name__}: {exc})") from exc
    g = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.input, *g.output, *g.value_info]}
    types.update({t.name: t.data_type for t in g.initializer})
    ops = {p for p in patterns if not any(c in p for c in "/*?")}
    globs = [p for p in patterns if p not in ops]
    precision: list[str] = []
    output_types: list[str] = []
    for node in g.node:
        if not node.name or not (node.op_type in ops or any(fnmatch.fnmatchcase(node.name, p) for p in globs)):
            continue
        if "," in node.name or "'" in node.name:
            continue  # trtexec splits specs at ',' and reads "'" as quoting (a ':' is fine: it splits at the last)
        outs = [o for o in node.output if o]
        if not outs or not all(types.get(o) in _FLOATS for o in outs):
            continue
        output_types.append(node.name)
        if all(types.get(i) in _FLOATS for i in node.input if i):
            precision.append(node.name)
    return PinnedLayers(tuple(precision), tuple(output_types))


def trtexec_command(
    r: EngineRecipe,
    onnx: str,
    plan: str,
    input_name: str,
    sample_shape: tuple[int, ...],
    pins: PinnedLayers = PinnedLayers((), ()),
) -> str:
    """One ``trtexec`` command line (shell-quoted) that builds what ``r`` says.

    Args:
        r: the recipe.
        onnx, plan: the paths to write into the command (the recipe's source as the reader has it).
        input_name: the graph input; ``sample_shape``: its dims without the batch.
        pins: :func:`pinned_layers` of the source graph for ``r.fp32_pins`` (empty when there are none).
    """
    p = r.profile
    dims = "x".join(str(d) for d in sample_shape)
    args = [
        "trtexec",
        f"--onnx={onnx}",
        f"--saveEngine={plan}",
        f"--minShapes={input_name}:{p.min}x{dims}",
        f"--optShapes={input_name}:{p.opt}x{dims}",
        f"--maxShapes={input_name}:{p.max}x{dims}",
    ]
    flags = set(r.builder_flags)
    if r.strongly_typed and r.line == "10":
        args.append("--stronglyTyped")  # 11: always on, the flag is not needed
    if "FP16" in flags:
        args.append("--fp16")
    if "INT8" in flags:
        args.append("--int8")
    if "PREFER_PRECISION_CONSTRAINTS" in flags and (pins.precision or pins.output_types):
        # without pins the flag says nothing (trtexec sets it itself for DLA)
        args.append("--precisionConstraints=prefer")
        if pins.precision:
            args.append("--layerPrecisions=" + ",".join(f"{n}:fp32" for n in pins.precision))
        if pins.output_types:
            args.append("--layerOutputTypes=" + ",".join(f"{n}:fp32" for n in pins.output_types))
    if not r.tf32:
        args.append("--noTF32")
    if r.dla_core is not None:
        args.append(f"--useDLACore={r.dla_core}")
        if "GPU_FALLBACK" in flags:
            args.append("--allowGPUFallback")
    return " ".join(shlex.quote(a) for a in args)


@dataclass(frozen=True)
class LineCommand:
    """How one TensorRT line builds an engine of a bundle: the source graph it reads and the trtexec
    command, or (``refused``) why the recipe cannot build it on that line."""

    label: str
    where: str
    source: str | None  # the bundle's file name of the source graph
    command: str | None
    refused: str | None = None


def line_commands(
    bundle: Bundle,
    precision: str,
    options: EngineBuildOptions,
    lines: tuple[tuple[str, str, str], ...],
    source_dir: str,
    plan: str,
) -> list[LineCommand]:
    """The trtexec command of ``precision``'s recipe on each of ``lines`` ((label, a TensorRT version
    of the line, where it runs)); ``source_dir`` is where the command finds the bundle's graphs and
    ``plan`` the engine file it writes. The source graphs are checked against the bundle's hashes."""
    graphs = bundle_graphs(bundle)
    pre = bundle.contract.preprocessing
    out: list[LineCommand] = []
    for label, version, where in lines:
        try:
            r = recipe(graphs, precision, version, options)
        except RtdetrEdgeError as exc:
            out.append(LineCommand(label, where, None, None, str(exc)))
            continue
        source = bundle.checked_file(r.source.file, r.source.sha256, f"{precision} ({r.source.typing} graph)")
        command = trtexec_command(
            r,
            f"{source_dir}/{r.source.file}",
            plan,
            bundle.contract.input_name,
            (3, pre.height, pre.width),
            pinned_layers(source, r.fp32_pins),
        )
        out.append(LineCommand(label, where, r.source.file, command))
    return out
