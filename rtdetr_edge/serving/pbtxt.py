"""Protobuf text format (``config.pbtxt``) from plain Python values.

A message is a list of ``(field, value)`` pairs, so a repeated field is the same field name
several times, in order. Values: ``str`` (quoted), :class:`Enum` (bare: ``TYPE_FP32``), ``bool``,
``int``, ``float``, a list of scalars (``dims: [ 3, 640, 640 ]``) or a nested message.
Tests parse every generated file with Triton's own ``model_config.proto`` (as shipped in
``tritonclient.grpc.model_config_pb2``), which rejects any unknown field or wrong type.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias


class Enum(str):
    """An enum value, written without quotes (``kind: KIND_GPU``)."""


Scalar: TypeAlias = str | bool | int | float
# a field's value: a Scalar, a list of them, or a nested message (mypy has no recursive check of this)
Value: TypeAlias = Any
Message: TypeAlias = list[tuple[str, Value]]


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _scalar(value: Scalar) -> str:
    if isinstance(value, Enum):
        return str(value)
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return _quote(value)


def render(message: Sequence[tuple[str, Value]], indent: int = 0) -> str:
    """``message`` as protobuf text, two spaces per level."""
    pad = "  " * indent
    lines = []
    for key, value in message:
        if isinstance(value, list) and value and isinstance(value[0], tuple):
            lines.append(f"{pad}{key} {{")
            lines.append(render(value, indent + 1))
            lines.append(f"{pad}}}")
        elif isinstance(value, list):
            lines.append(f"{pad}{key}: [ {', '.join(_scalar(v) for v in value)} ]")
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")
    return "\n".join(line for line in lines if line)


def parameter(key: str, value: str) -> tuple[str, Value]:
    """One entry of a config's ``parameters`` map (string values, as Triton's map holds them)."""
    return ("parameters", [("key", key), ("value", [("string_value", value)])])
