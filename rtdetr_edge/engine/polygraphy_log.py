"""Polygraphy's log, routed into ours: the one adapter the engine builder and ``rtdetr-check`` share.

Polygraphy logs every step to stdout through its process-wide ``G_LOGGER``; a library call must
not. Inside :func:`polygraphy_log` it writes to Python logging instead (Polygraphy's own switch,
``use_python_logging_system``), and its records reach the ``rtdetr_edge`` logger: errors and
informational lines at DEBUG (visible with ``-vv``), warnings at the level the caller chooses. Its
error lines are kept (:attr:`PolygraphyLines.errors`) so that a failure can be worded with them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

from .._optional import require

log = logging.getLogger("rtdetr_edge")

# G_LOGGER is process-wide: one switch at a time (re-entrant: rtdetr-check builds engines inside its own block)
_LOCK = threading.RLock()


class PolygraphyLines(logging.Handler):
    """Polygraphy's log records -> the rtdetr_edge logger; its error lines are kept for messages."""

    def __init__(self, warnings: int = logging.WARNING) -> None:
        super().__init__(logging.DEBUG)
        self.errors: list[str] = []
        self.warnings = warnings

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.levelno >= logging.ERROR:
            self.errors.append(text)
            log.debug("Polygraphy: %s", text)
        elif record.levelno >= logging.WARNING:
            log.log(self.warnings, "Polygraphy: %s", text)
        else:
            log.debug("Polygraphy: %s", text)


@contextlib.contextmanager
def polygraphy_log(warnings: int = logging.WARNING) -> Iterator[PolygraphyLines]:
    """Route Polygraphy's logger to Python logging (not stdout) inside the block; collect its errors.

    Args:
        warnings: the level Polygraphy's warnings are logged at (``logging.DEBUG`` hides them
            unless ``-vv``).
    """
    require("polygraphy", "routing Polygraphy's log")  # present and new enough (MIN_VERSIONS)
    from polygraphy.logger import G_LOGGER

    handler = PolygraphyLines(warnings)
    with _LOCK:
        saved = (G_LOGGER.use_python_logging_system, G_LOGGER.colors, G_LOGGER.letter)
        G_LOGGER.use_python_logging_system = True
        G_LOGGER.colors = G_LOGGER.letter = False
        pylog = logging.getLogger("Polygraphy")
        level, propagate = pylog.level, pylog.propagate
        pylog.setLevel(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.INFO)
        pylog.propagate = False
        pylog.addHandler(handler)
        try:
            yield handler
        finally:
            pylog.removeHandler(handler)
            pylog.setLevel(level)
            pylog.propagate = propagate
            G_LOGGER.use_python_logging_system, G_LOGGER.colors, G_LOGGER.letter = saved
