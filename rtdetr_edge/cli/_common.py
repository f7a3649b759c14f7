"""What every CLI shares: logging set-up and turning user errors into one-line messages."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Any

from .. import atomic
from ..errors import InputError, RtdetrEdgeError
from ..outputs import check_output_file

log = logging.getLogger("rtdetr_edge")


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    """-v/-vv, -q, and --version (every command that logs has these)."""
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    add_version(parser)


def add_version(parser: argparse.ArgumentParser) -> None:
    """``--version``: argparse's own action, printing ``PROG rtdetr-edge X.Y.Z`` and exiting 0."""
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s (rtdetr-edge {__version__})")


def int_at_least(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer in ``low..high`` (a usage error, exit 2, otherwise)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            want = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"
            raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its own messages
    return parse


def size_arg(text: str) -> tuple[int, int]:
    """An argparse ``type``: ``WxH`` with both sides >= 1 (a usage error, exit 2, otherwise)."""
    parts = text.lower().split("x")
    try:
        w, h = (int(v) for v in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH, e.g. 1280x720, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"expected WxH with both sides >= 1, got {text!r}")
    return w, h


def setup_logging(args: argparse.Namespace) -> None:
    level = logging.WARNING if args.quiet else (logging.DEBUG if args.verbose > 1 else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(message)s" if args.verbose < 2 else "%(levelname)s %(name)s: %(message)s")
    )
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


class Terminated(KeyboardInterrupt):
    """SIGTERM (``docker stop``, systemd) raised in the main thread: cleaned up like Ctrl-C."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise Terminated()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While a command runs, SIGTERM unwinds it like Ctrl-C (context managers drop temp files)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_json_out(path: str | None, what: str = "--json") -> None:
    """Before long work: ``path`` (a file to write) is not a folder and its folder is writable."""
    if path is not None:
        check_output_file(path, what)


def check_out_dir(path: str | None, what: str) -> None:
    """Before long work: ``path`` (a folder to write in) is not a file and can be written."""
    if path is not None:
        atomic.check_writable_dir(path, what)


def write_json_out(path: str, obj: Any, what: str = "--json") -> None:
    """Write a result file atomically; an OS error is one line naming ``path`` (not its temp file)."""
    try:
        atomic.write_json(path, obj)
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot write ({exc.strerror or exc})") from exc


def os_error_line(exc: OSError) -> str:
    """``<path>: <strerror>`` for an OS error (disk full, read-only, permission denied, ...)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    paths = [os.fsdecode(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else reason


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run ``main``; user and OS errors print one ``error: ...`` line and exit 1, Ctrl-C exits 130.

    Usage errors (a missing or malformed flag, an integer out of range: :func:`int_at_least`) are
    argparse's: the usage and ``PROG: error: ...``, exit 2.

    SIGTERM is handled like Ctrl-C (exit 143): what the command was writing is cleaned up or, for
    results that are complete up to that point (``detections.jsonl``), kept.
    """
    try:
        with _sigterm_as_interrupt():
            return main(argv)
    except RtdetrEdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {os_error_line(exc)}", file=sys.stderr)
        return 1
    except Terminated:
        print("terminated; nothing half-written was kept", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted; nothing half-written was kept", file=sys.stderr)
        return 130
