"""DeepStream's config files are GLib key files (``GKeyFile``): ``[group]`` headers, ``key=value``
lines, ``#`` comments, lists joined by ``;``. This writes them from ordered groups."""

from __future__ import annotations

from collections.abc import Sequence

Value = str | int | float | bool | Sequence[str | int | float]
Group = tuple[str, list[tuple[str, Value]]]


def _value(v: Value) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return repr(v)  # shortest text that reads back as the same double
    if isinstance(v, (str, int)):
        return str(v)
    return ";".join(_value(x) for x in v)


def render(groups: Sequence[Group], header: str = "") -> str:
    """The key file text: ``header`` as ``#`` comment lines, then each group in order."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for name, entries in groups:
        if lines:
            lines.append("")
        lines.append(f"[{name}]")
        for key, value in entries:
            text = _value(value)
            if "\n" in text or "\n" in key:
                raise ValueError(f"[{name}] {key}: a key file value is one line")  # internal: a bug, not input
            lines.append(f"{key}={text}")
    return "\n".join(lines) + "\n"
