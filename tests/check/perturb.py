"""A copy of an fp32 ONNX with one backbone Conv's weights perturbed: a candidate that must fail."""

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
