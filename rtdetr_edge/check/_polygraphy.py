"""The one place Polygraphy is imported: lazily, quietly, with its errors turned into ours.

Polygraphy logs every step to stdout through its global ``G_LOGGER``; a library call must not,
so runs are wrapped in :func:`quiet`, the engine builder's adapter
(:mod:`rtdetr_edge.engine.polygraphy_log`) with Polygraphy's warnings at DEBUG too: its messages
come back with ``-vv``. ``G_LOGGER.critical`` raises ``PolygraphyException``;
:func:`polygraphy_errors` re-raises it as :class:`CheckError` so the CLI prints one line.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from .._optional import require
from ..engine.polygraphy_log import polygraphy_log
from ..errors import CheckError

log = logging.getLogger("rtdetr_edge")


def polygraphy(module: str = "polygraphy") -> ModuleType:
    """Import ``polygraphy`` (or a submodule such as ``polygraphy.comparator``) or name the extra."""
    require("polygraphy", "accuracy checks (rtdetr-check)")
    return require(module, "accuracy checks (rtdetr-check)")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Polygraphy's log into ours at DEBUG (``-vv``), never on stdout."""
    polygraphy("polygraphy.logger")  # names the extra to install if Polygraphy is missing
    with polygraphy_log(warnings=logging.DEBUG):
        yield


@contextlib.contextmanager
def polygraphy_errors(what: str) -> Iterator[None]:
    """Turn a ``PolygraphyException`` raised while doing ``what`` into :class:`CheckError`."""
    exc_type: Any = polygraphy("polygraphy.exception").PolygraphyException
    try:
        yield
    except exc_type as exc:
        text = " ".join(str(exc).split())
        raise CheckError(f"{what}: {text[:600]}") from exc
