"""Deliberately broken candidates, for showing that the checks fail: a perturbed fp32 copy, a mis-scaled Q/DQ copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def perturbed_copy(fp32: Path, out: Path, stage: str = "stages.1", scale: float = 0.5) -> str:
    """Copy of ``fp32`` with noise added to the weights of the first backbone Conv in ``stage``."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(fp32))
    inits = {t.name: t for t in model.graph.initializer}
    conv = next(
        n
        for n in model.graph.node
        if n.op_type == "Conv" and "/backbone/" in n.name and stage in n.name and n.input[1] in inits
    )
    weight = numpy_helper.to_array(inits[conv.input[1]])
    noise = np.random.default_rng(0).normal(0, scale * float(weight.std()), weight.shape).astype(weight.dtype)
    inits[conv.input[1]].CopyFrom(numpy_helper.from_array(weight + noise, conv.input[1]))
    onnx.save(model, str(out))
    return conv.name


def scaled_activation_qdq_copy(qdq: Path, out: Path, factor: float = 0.05) -> int:
    """Copy of a Q/DQ ONNX with every *activation* quantization scale multiplied by ``factor``.

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
        rescale(q)
        count += 1
        for dq in readers.get(q.output[0], []):
            if dq.op_type == "DequantizeLinear":
                rescale(dq)
                count += 1
    if not count:
        raise ValueError(f"{qdq}: no activation QuantizeLinear node (not a Q/DQ model?)")
    used = {name for node in graph.node for name in node.input}
    unused = [t for t in graph.initializer if t.name in scaled and t.name not in used]
    for t in unused:  # originals nothing reads any more (ONNX Runtime would warn about each)
        graph.initializer.remove(t)
    onnx.save(model, str(out))
    return count
