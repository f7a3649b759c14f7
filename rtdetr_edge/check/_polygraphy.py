"""The one place Polygraphy is imported: lazily, quietly, with its errors turned into ours.

Polygraphy logs every step to stdout through its global ``G_LOGGER``; a library call must not,
so runs are wrapped in :func:`quiet` (Polygraphy's own messages come back with ``-vv``, i.e. when
the ``rtdetr_edge`` logger is at DEBUG). ``G_LOGGER.critical`` raises ``PolygraphyException``;
:func:`polygraphy_errors` re-raises it as :class:`CheckError` so the CLI prints one line.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from .._optional import require
from ..errors import CheckError

log = logging.getLogger("rtdetr_edge")


def polygraphy(module: str = "polygraphy") -> ModuleType:
    """Import ``polygraphy`` (or a submodule such as ``polygraphy.comparator``) or name the extra."""
    require("polygraphy", "accuracy checks (rtdetr-check)")
    return require(module, "accuracy checks (rtdetr-check)")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence Polygraphy's logger unless ours is at DEBUG (``-vv``)."""
    g_logger: Any = polygraphy("polygraphy.logger").G_LOGGER
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    # above CRITICAL: even the message G_LOGGER.critical logs before raising is dropped (we
    # re-raise it as one line, see polygraphy_errors)
    with g_logger.verbosity(g_logger.CRITICAL + 10):
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
