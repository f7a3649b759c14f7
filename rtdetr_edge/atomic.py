"""Atomic file and directory writes: a reader never sees a half-written artifact.

Files are written to a temporary sibling and renamed over the target (``os.replace`` is atomic
on POSIX within one filesystem). Directories are assembled in a temporary sibling and renamed
into place at the end, so an interrupted build leaves no directory that looks complete.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _tmp_sibling(target: Path, suffix: str = ".tmp") -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    # mkstemp makes 0600 files; give the final file the permissions a plain open() would
    os.chmod(name, 0o666 & ~_umask())
    return Path(name)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(target)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


@contextlib.contextmanager
def replacing_file(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` if the block succeeds.

    For writers that need a file name (ONNX savers, video writers, TensorRT serialisers).
    ``suffix`` keeps an extension that such writers look at (``".mp4"``).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(target, suffix=suffix or ".tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


BUNDLE_FORMAT = "rtdetr-edge-bundle"  # the ``format`` of a bundle's metadata.json (rtdetr_edge.bundle)


def is_our_bundle(path: str | os.PathLike[str]) -> bool:
    """``path`` is a folder with a ``metadata.json`` of rtdetr-edge's bundle format."""
    meta = Path(path) / "metadata.json"
    try:
        obj = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(obj, dict) and obj.get("format") == BUNDLE_FORMAT


def is_replaceable_dir(path: str | os.PathLike[str]) -> bool:
    """What ``--force`` may replace: nothing there, an empty folder, or one of our bundles."""
    p = Path(path)
    if not p.exists() and not p.is_symlink():
        return True
    if p.is_symlink() or not p.is_dir():
        return False
    return not any(p.iterdir()) or is_our_bundle(p)


def refuse_overlap(
    out: str | os.PathLike[str],
    inputs: Iterable[str | os.PathLike[str] | None],
    what: str = "--out",
    inside: bool = True,
) -> None:
    """Raise :class:`InputError` if ``out`` is, contains or (``inside``) lies inside one of ``inputs``.

    Inputs that do not exist on disk (hub ids, ``coco_val``) are ignored.
    """
    o = Path(out).resolve()
    for item in inputs:
        if item is None:
            continue
        raw = Path(item)
        if not raw.exists():
            continue
        i = raw.resolve()
        if o == i:
            raise InputError(f"{what} {out}: is the input {item}; choose another folder")
        if i.is_relative_to(o):
            raise InputError(f"{what} {out}: contains the input {item}; choose another folder")
        if inside and o.is_relative_to(i):
            raise InputError(f"{what} {out}: is inside the input {item}; choose another folder")


@dataclass(frozen=True)
class OutputKind:
    """What ``--force`` may replace at an ``--out`` folder: an empty folder, or one this kind recognises.

    Attributes:
        is_ours: whether an existing folder is one of ours (a bundle, a Triton repository, ...).
        refusal: the end of the one-line error for a folder that is not ("is not ...; nothing was deleted").
    """

    is_ours: Callable[[Path], bool]
    refusal: str


BUNDLES = OutputKind(
    is_our_bundle,
    "is not an rtdetr-edge bundle (no bundle metadata.json); --force only replaces bundles and empty folders, "
    "so nothing was deleted",
)


def check_replaceable(
    out: str | os.PathLike[str], force: bool, what: str = "--out", kind: OutputKind = BUNDLES
) -> None:
    """The one ``--out`` policy for folders: new or empty; with ``force`` also one of ``kind``'s."""
    p = Path(out)
    if not p.exists() and not p.is_symlink():
        return
    if p.is_symlink() or not p.is_dir():
        raise InputError(f"{what} {out}: exists and is not a folder")
    if not any(p.iterdir()):
        return
    if not force:
        raise InputError(f"{what} {out}: already exists; pass --force to replace it")
    if not kind.is_ours(p):
        raise InputError(f"{what} {out}: {kind.refusal}")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(target: str | os.PathLike[str]) -> list[Path]:
    """Remove ``.NAME.<pid>.*.partial`` siblings of ``target`` whose process is gone.

    An interrupted build (SIGKILL, power loss) cannot clean up after itself; the next build into
    the same place does. Folders of a live process, and names without a pid, are left alone.
    """
    t = Path(target)
    parent = t.parent
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    prefix = f".{t.name}."
    for entry in parent.iterdir():
        name = entry.name
        if not (name.startswith(prefix) and name.endswith((".partial", ".old"))) or not entry.is_dir():
            continue
        pid_text = name[len(prefix) :].split(".", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _pid_alive(int(pid_text)):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


@contextlib.contextmanager
def replacing_dir(
    path: str | os.PathLike[str], overwrite: bool = False, kind: OutputKind = BUNDLES, what: str = "--out"
) -> Iterator[Path]:
    """Yield an empty temporary directory that becomes ``path`` when the block succeeds.

    Args:
        path: the final directory.
        overwrite: replace an existing ``path``, which must be empty or one of ``kind``'s
            (:func:`check_replaceable`); otherwise an existing non-empty directory raises
            :class:`InputError`, before anything is written and again at the final rename (a
            ``path`` that appeared while the block ran is never replaced).
        kind: what may be replaced (default: rtdetr-edge bundles).
        what: the flag named in errors.
    """
    target = Path(path)
    check_replaceable(target, overwrite, what, kind)
    existed = target.exists()
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".partial", dir=parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700 directories
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot write in {parent} ({exc.strerror or exc})") from exc
    try:
        yield tmp
        # again at the end: another process may have written ``path`` while this one built
        try:
            check_replaceable(target, overwrite, what, kind)
        except InputError as exc:
            if existed:
                raise
            raise InputError(f"{exc} (it appeared while this ran; nothing was replaced)") from None
        if target.exists():
            if target.is_dir() and not any(target.iterdir()):
                target.rmdir()
                os.replace(tmp, target)
            else:
                old = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".old", dir=parent))
                os.replace(target, old / "x")
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
        else:
            try:  # rename(2) never replaces a non-empty folder: another process that got there first wins
                os.replace(tmp, target)
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                    raise
                raise InputError(f"{target}: appeared while this ran; nothing was replaced (pass --force)") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def check_writable_dir(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """Fail early with a clear message if ``path``'s nearest existing parent is not writable."""
    p = Path(path).absolute()
    probe = p
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"{what} {path}: {probe} exists and is not a directory")
    # try it: permission bits say nothing for root, read-only mounts or full quotas
    try:
        fd, name = tempfile.mkstemp(prefix=".rtdetr-edge-probe.", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot write in {probe} ({exc.strerror or exc})") from exc
    return p
