"""What the tools need to know about an ONNX file, read once with ``onnx`` (no weights kept).

One reader for the engine builder (inputs, batch bounds, Q/DQ and float16 use, the embedded
contract, node names for FP32 pinning and parser messages) and the checks (precision, nodes in
topological order, outputs), so both judge a graph's precision by the same rule.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from .bundle import sha256_file
from .contract import METADATA_KEY
from .engine_format import batch_bounds_of
from .errors import InputError

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
_FLOAT16 = 10  # onnx.TensorProto.FLOAT16


@dataclass(frozen=True)
class NodeFacts:
    """One graph node: name, op type, input and output value names."""

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class OnnxFacts:
    """An ONNX graph's interface and make-up.

    Attributes:
        path: the file.
        inputs: graph input name -> dims (-1 for dynamic axes), initializers excluded.
        outputs: graph output names in order.
        nodes: every node, in the graph's (topological) order.
        has_qdq: the graph holds QuantizeLinear/DequantizeLinear nodes (explicit INT8).
        has_fp16: the graph computes in float16 (float16 initializers or casts to float16).
        contract_json: the rtdetr-edge contract in ``metadata_props`` (None for foreign graphs).
    """

    path: Path
    inputs: dict[str, tuple[int, ...]]
    outputs: tuple[str, ...]
    nodes: tuple[NodeFacts, ...]
    has_qdq: bool
    has_fp16: bool
    contract_json: str | None

    @property
    def precision(self) -> str:
        """int8 (Q/DQ nodes), fp16 (float16 compute) or fp32, as the graph itself shows it."""
        return "int8" if self.has_qdq else "fp16" if self.has_fp16 else "fp32"

    @property
    def batch_bounds(self) -> tuple[int, int]:
        """(min, max) batch of the first input: dynamic -> (1, 0), static N -> (N, N)."""
        return batch_bounds_of(next(iter(self.inputs.values())))

    def sha256(self) -> str:
        return sha256_file(self.path)


@functools.lru_cache(maxsize=16)
def _read(path: str, mtime_ns: int, size: int) -> OnnxFacts:
    import onnx

    model = onnx.load(path, load_external_data=False)
    g = model.graph
    init_names = {t.name for t in g.initializer}
    inputs = {
        vi.name: tuple(
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in vi.type.tensor_type.shape.dim
        )
        for vi in g.input
        if vi.name not in init_names
    }
    nodes = tuple(NodeFacts(n.name, n.op_type, tuple(n.input), tuple(n.output)) for n in g.node)
    has_fp16 = any(t.data_type == _FLOAT16 for t in g.initializer) or any(
        n.op_type == "Cast" and any(a.name == "to" and a.i == _FLOAT16 for a in n.attribute) for n in g.node
    )
    props = {m.key: m.value for m in model.metadata_props}
    return OnnxFacts(
        Path(path),
        inputs,
        tuple(o.name for o in g.output),
        nodes,
        any(n.op_type in QDQ_OPS for n in nodes),
        has_fp16,
        props.get(METADATA_KEY),
    )


def read_onnx_facts(path: str | os.PathLike[str]) -> OnnxFacts:
    """:class:`OnnxFacts` of an ONNX file (cached while the file is unchanged).

    Raises:
        InputError: the file is missing, unreadable, not ONNX, or has no inputs.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise InputError(f"{p}: no such ONNX file ({exc.strerror or exc})") from exc
    try:
        facts = _read(str(p.resolve()), st.st_mtime_ns, st.st_size)
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    except Exception as exc:
        raise InputError(f"{p}: not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
    if not facts.inputs:
        raise InputError(f"{p}: the graph has no inputs")
    return facts
