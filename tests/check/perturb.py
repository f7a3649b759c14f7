"""Deliberately broken candidates, for showing that the checks fail.

A perturbed fp32 copy (one backbone Conv's weights), Q/DQ copies with mis-scaled activations
(every activation x0.05, or one layer's x20) and a Q/DQ copy whose class head weights are perturbed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def perturbed_copy(fp32: Path, out: Path, stage: str = "stages.1", scale: float = 0.5) -> str:
    """Copy of ``fp32`` with noise added to the weights of the first backbone Conv in ``stage``."""
    import onnx

    model = onnx.load(str(fp32))
    inits = {t.name: t for t in model.graph.initializer}
    conv = next(
        n
        for n in model.graph.node
        if n.op_type == "Conv" and "/backbone/" in n.name and stage in n.name and n.input[1] in inits
    )
    _add_noise(inits[conv.input[1]], scale)
    onnx.save(model, str(out))
    return conv.name


def _add_noise(weight_init: Any, scale: float, seed: int = 0) -> None:
    """Add Gaussian noise of ``scale`` x the weights' std to an initializer, in place."""
    from onnx import numpy_helper

    weight = numpy_helper.to_array(weight_init)
    noise = np.random.default_rng(seed).normal(0, scale * float(weight.std()), weight.shape).astype(weight.dtype)
    weight_init.CopyFrom(numpy_helper.from_array(weight + noise, weight_init.name))


def perturbed_class_head_copy(model_path: Path, out: Path, scale: float = 0.5) -> str:
    """Copy of an ONNX (fp32 or Q/DQ) whose last decoder class head (``class_embed.<last>``) weights get noise.

    Returns:
        the perturbed MatMul/Gemm node's name.

    Raises:
        ValueError: no class head with its weights in an initializer.
    """
    import onnx

    model = onnx.load(str(model_path))
    inits = {t.name: t for t in model.graph.initializer}
    heads = [
        n
        for n in model.graph.node
        if n.op_type in ("MatMul", "Gemm") and "/class_embed." in n.name and n.input[1] in inits
    ]
    if not heads:
        raise ValueError(f"{model_path}: no class_embed MatMul/Gemm with its weights in an initializer")
    head = max(heads, key=lambda n: int(n.name.split("/class_embed.")[1].split("/")[0]))
    _add_noise(inits[head.input[1]], scale)
    onnx.save(model, str(out))
    return head.name


def scaled_activation_qdq_copy(qdq: Path, out: Path, factor: float = 0.05, only: str | None = None) -> int:
    """Copy of a Q/DQ ONNX with every *activation* quantization scale multiplied by ``factor``.

    ``only``: rescale only the activation QuantizeLinear nodes whose input tensor name contains
    this (e.g. one layer's output; x20 there quantizes that one tensor to a few levels).

    Activation Q/DQ pairs are the ``QuantizeLinear`` nodes whose input is computed (not an
    initializer or a ``Constant``: weights keep their scales) and the ``DequantizeLinear`` nodes
    reading them. Each pair gets its own scaled copy of its scale initializer, so a Q and its DQ
    stay consistent (both scaled) and a scale shared with anything else is left as it was. A
    ``factor`` well below 1 clips every activation to a fraction of its calibrated range: an INT8
    build that must fail any accuracy check.

    Returns:
        how many Q/DQ nodes were rescaled.

    Raises:
        ValueError: the graph has no activation QuantizeLinear (not a Q/DQ model).
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(qdq))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    constants = {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    scaled: dict[str, str] = {}  # original scale initializer -> its scaled copy

    def rescale(node: onnx.NodeProto) -> None:
        original = node.input[1]
        if original not in inits:
            raise ValueError(f"{qdq}: {node.name} reads its scale {original!r} from a node, not an initializer")
        if original not in scaled:
            array = numpy_helper.to_array(inits[original])
            copy = numpy_helper.from_array((array * factor).astype(array.dtype), f"{original}_x{factor:g}")
            graph.initializer.append(copy)
            scaled[original] = copy.name
        node.input[1] = scaled[original]

    count = 0
    for q in [n for n in graph.node if n.op_type == "QuantizeLinear"]:
        if q.input[0] in inits or q.input[0] in constants:
            continue  # a weight
        if only is not None and only not in q.input[0]:
            continue
        rescale(q)
        count += 1
        for dq in readers.get(q.output[0], []):
            if dq.op_type == "DequantizeLinear":
                rescale(dq)
                count += 1
    if not count:
        what = f" reading a tensor named *{only}*" if only is not None else ""
        raise ValueError(f"{qdq}: no activation QuantizeLinear node{what} (not a Q/DQ model?)")
    used = {name for node in graph.node for name in node.input}
    unused = [t for t in graph.initializer if t.name in scaled and t.name not in used]
    for t in unused:  # originals nothing reads any more (ONNX Runtime would warn about each)
        graph.initializer.remove(t)
    onnx.save(model, str(out))
    return count
