"""Bundles: the self-described directory users move from host to device.

Layout::

    BUNDLE/
      metadata.json        format + version, model contract, artifacts per precision (file,
                           sha256), source, tool versions, export and verification numbers
      model.onnx           fp32 graph (the contract is also in its metadata_props)
      model.fp16.onnx      optional (always made with int8: the fallback when INT8 fails its check)
      model.int8.qdq.onnx  optional, explicit Q/DQ, FP16-typed outside INT8 layers (opset 19:
                           TensorRT >= 10 strongly typed, ONNX Runtime)
      model.int8.qdq.trt8.onnx  the same Q/DQ FP32-typed (TensorRT 8.x, INT8+FP16 flags)
      model*.frames-WxH.onnx  optional (``--frame-size WxH``): each precision's graph with the frame
                           front prepended (uint8 BGR camera frames in; ``rtdetr_edge.export.frames``),
                           listed under ``artifacts.<precision>.frames["WxH"]``
      calib/               optional: version-neutral INT8 ranges, subset manifest, TensorRT caches,
                           plan.json (the INT8 precision plan, see calib.plan)
      report.json          what the build did, numbers and timings
      engines/             TensorRT engines built on the device (+ their metadata)

A bundle is written into a temporary sibling directory and renamed into place, so an
interrupted build never leaves a directory that looks complete.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from . import atomic
from .atomic import BUNDLE_FORMAT
from .contract import ModelContract
from .errors import BundleError

BUNDLE_VERSION = 1
METADATA = "metadata.json"
REPORT = "report.json"
ENGINES = "engines"
PRECISIONS = ("fp32", "fp16", "int8")


__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "METADATA",
    "PRECISIONS",
    "Bundle",
    "finalize_bundle",
    "sha256_file",
    "write_bundle",
]


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


HashCheck = Literal["on_use", "all", "never"]
# (resolved path, size, mtime_ns) -> sha256 of files already hashed in this process: a file opened
# again unchanged is not read again
_HASHED: dict[tuple[str, int, int], str] = {}


def _cached_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHED:
        _HASHED[key] = sha256_file(path)
    return _HASHED[key]


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


class Bundle:
    """A validated bundle directory (read side), finished or still being assembled.

    Args:
        path: the bundle directory.
        verify_hashes: ``"on_use"`` (default): an ONNX artifact's sha256 is checked against the
            metadata the first time its path is asked for (:meth:`onnx_path`; once per file and
            process); ``"all"`` (or True): every artifact now; ``"never"`` (or False). Presence,
            and that each artifact lies inside the bundle, are always checked.

    A bundle still being built has no ``metadata.json`` yet: :meth:`from_metadata` opens it from
    the metadata the build holds in memory, so checks run on it before it is published.
    """

    def __init__(self, path: str | os.PathLike[str], verify_hashes: HashCheck | bool = "on_use") -> None:
        if verify_hashes is True or verify_hashes is False:
            verify_hashes = "all" if verify_hashes else "never"
        if verify_hashes not in ("on_use", "all", "never"):
            raise BundleError(f"verify_hashes: expected 'on_use', 'all', 'never' or a bool, got {verify_hashes!r}")
        self.path = Path(path)
        self._hash_check: HashCheck = verify_hashes
        self._verified: set[str] = set()
        meta_path = self.path / METADATA
        if not self.path.is_dir():
            raise BundleError(f"{self.path}: not a bundle directory (no such directory)")
        if not meta_path.is_file():
            raise BundleError(f"{self.path}: not a bundle ({METADATA} is missing); build one with rtdetr-build")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{meta_path}: unreadable ({exc})") from exc
        if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
            found = meta.get("format") if isinstance(meta, dict) else None
            raise BundleError(f"{meta_path}: not an rtdetr-edge bundle (format {found!r})")
        version = meta.get("format_version")
        if version != BUNDLE_VERSION:
            raise BundleError(
                f"{meta_path}: unknown bundle format version {version!r}; this rtdetr-edge reads "
                f"version {BUNDLE_VERSION}. Rebuild the bundle or upgrade rtdetr-edge."
            )
        self._open(meta, str(meta_path))
        if verify_hashes == "all":
            self.verify()

    def verify(self) -> None:
        """Check every artifact's sha256 (and the int8 TensorRT 8.x graph's) against the metadata."""
        for precision, art in self.metadata["artifacts"].items():
            for entry, what in [(art, precision)] + [
                (f, f"{precision} frames {key}") for key, f in (art.get("frames") or {}).items()
            ]:
                self._check_hash(str(entry["file"]), entry.get("sha256"), what)
                if entry.get("trt8_file"):
                    self._check_hash(str(entry["trt8_file"]), entry.get("trt8_sha256"), what)

    def _check_hash(self, relative: str, expected: object, precision: str) -> None:
        if not expected or relative in self._verified:
            return
        path = self.file(relative)
        try:
            found = _cached_sha256(path)
        except OSError as exc:
            raise BundleError(f"{path}: cannot read the {precision} artifact ({exc.strerror or exc})") from exc
        if found != expected:
            raise BundleError(
                f"{path}: sha256 does not match {METADATA} ({precision}: recorded {str(expected)[:12]}..., the file "
                f"has {found[:12]}...); it was changed or replaced after the build: rebuild the bundle or restore it"
            )
        self._verified.add(relative)

    @classmethod
    def from_metadata(cls, directory: str | os.PathLike[str], metadata: dict[str, Any]) -> Bundle:
        """A bundle being assembled in ``directory`` whose ``metadata`` is not written yet."""
        bundle = cls.__new__(cls)
        bundle.path = Path(directory)
        bundle._hash_check = "never"  # the build's own files, hashed by finalize_bundle
        bundle._verified = set()
        bundle._open(metadata, f"{bundle.path / METADATA} (in memory)")
        return bundle

    def _open(self, meta: dict[str, Any], source: str) -> None:
        self.metadata: dict[str, Any] = meta
        self.contract = ModelContract.from_dict(meta.get("contract"), source)
        artifacts = meta.get("artifacts")
        if not isinstance(artifacts, dict) or "fp32" not in artifacts:
            raise BundleError(f"{source}: no fp32 artifact listed")
        for precision, art in artifacts.items():
            if not isinstance(art, dict) or not isinstance(art.get("file"), str):
                raise BundleError(f"{source}: artifact {precision!r} has no file name")
            for key in ("file", "trt8_file", "manifest", "plan"):
                if art.get(key) is not None:
                    self._inside(art[key], f"{source}: artifacts.{precision}.{key}")
            frames = art.get("frames") or {}
            if not isinstance(frames, dict):
                raise BundleError(f"{source}: artifacts.{precision}.frames is not an object")
            for size, entry in frames.items():
                if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
                    raise BundleError(f"{source}: artifacts.{precision}.frames.{size} has no file name")
                for key in ("file", "trt8_file"):
                    if entry.get(key) is not None:
                        self._inside(entry[key], f"{source}: artifacts.{precision}.frames.{size}.{key}")
        missing = [f"{p}: {a['file']}" for p, a in artifacts.items() if not (self.path / a["file"]).is_file()]
        missing += [
            f"{p} frames {k}: {f['file']}"
            for p, a in artifacts.items()
            for k, f in (a.get("frames") or {}).items()
            if not (self.path / f["file"]).is_file()
        ]
        if missing:
            raise BundleError(f"{self.path}: bundle is incomplete, missing {'; '.join(missing)}")

    @property
    def artifacts(self) -> dict[str, dict[str, Any]]:
        return dict(self.metadata["artifacts"])

    @property
    def precisions(self) -> list[str]:
        return [p for p in PRECISIONS if p in self.metadata["artifacts"]]

    @property
    def default_precision(self) -> str:
        """The precision the build chose as the bundle's default (``fp32`` for bundles without one)."""
        return str(self.metadata.get("default_precision", "fp32"))

    def precision_for(self, requested: str) -> str:
        """``requested``, or for ``"auto"`` the bundle's :attr:`default_precision`."""
        return self.default_precision if requested == "auto" else requested

    def artifact(self, precision: str = "fp32") -> dict[str, Any]:
        try:
            return dict(self.metadata["artifacts"][precision])
        except KeyError:
            raise BundleError(
                f"{self.path}: no {precision} artifact; the bundle has {', '.join(self.precisions)}"
            ) from None

    def onnx_path(self, precision: str = "fp32") -> Path:
        """The ONNX file for ``precision`` (fp32, fp16 or int8 Q/DQ), its sha256 checked on first use."""
        art = self.artifact(precision)
        if self._hash_check != "never":
            self._check_hash(str(art["file"]), art.get("sha256"), precision)
        return self.file(art["file"])

    def trt8_onnx_path(self) -> Path | None:
        """The int8 graph for TensorRT 8.x (``trt8_file``), its sha256 checked on first use; None without one."""
        art = self.artifact("int8")
        if not art.get("trt8_file"):
            return None
        if self._hash_check != "never":
            self._check_hash(str(art["trt8_file"]), art.get("trt8_sha256"), "int8 (TensorRT 8.x)")
        return self.file(art["trt8_file"])

    def frame_sizes(self, precision: str = "fp32") -> list[tuple[int, int]]:
        """(width, height) of the frame-input artifacts ``precision`` has (``--frame-size``), sorted."""
        frames = self.artifact(precision).get("frames") or {}
        return sorted((int(f["frame"]["width"]), int(f["frame"]["height"])) for f in frames.values())

    def frame_onnx_path(self, precision: str, size: tuple[int, int], trt8: bool = False) -> Path:
        """The frame-input ONNX of ``precision`` for frames of ``size`` (width, height), hash checked on first use.

        Args:
            trt8: the int8 graph for TensorRT 8.x (``trt8_file``), where the bundle has one.
        """
        key = f"{size[0]}x{size[1]}"
        frames = self.artifact(precision).get("frames") or {}
        if key not in frames:
            have = ", ".join(sorted(frames)) or "none"
            raise BundleError(
                f"{self.path}: no {precision} frame-input artifact for {key} frames (it has {have}); add one "
                f"with rtdetr-build --model {self.path} --out {self.path} --frame-size {key}"
            )
        entry = frames[key]
        name, digest = ("trt8_file", "trt8_sha256") if trt8 and entry.get("trt8_file") else ("file", "sha256")
        if self._hash_check != "never":
            self._check_hash(str(entry[name]), entry.get(digest), f"{precision} frames {key}")
        return self.file(entry[name])

    def checked_file(self, relative: str, sha256: str, what: str) -> Path:
        """``relative`` inside the bundle, its sha256 checked against ``sha256`` on first use.

        For files an engine recipe names (:mod:`rtdetr_edge.engine_recipe`); ``what`` names it in
        the error. Bundles opened with ``verify_hashes="never"`` skip the check.
        """
        if self._hash_check != "never":
            self._check_hash(relative, sha256, what)
        return self.file(relative)

    @property
    def engines_dir(self) -> Path:
        return self.path / ENGINES

    def file(self, relative: str) -> Path:
        """``relative`` inside the bundle (BundleError if it is absolute or leads outside it)."""
        return self._inside(relative, f"{self.path}: file")

    def _inside(self, relative: object, what: str) -> Path:
        if not isinstance(relative, str) or not relative:
            raise BundleError(f"{what}: expected a file name relative to the bundle, got {relative!r}")
        target = self.path / relative
        root = self.path.resolve()
        if Path(relative).is_absolute() or not target.resolve().is_relative_to(root):
            raise BundleError(f"{what}: {relative!r} is outside the bundle {self.path}; expected a path inside it")
        return target

    @functools.cached_property
    def calibration_manifest(self) -> dict[str, Any] | None:
        """The calibration subset manifest (``calib/manifest.json``), read once; None if there is none."""
        art = self.metadata["artifacts"].get("int8") or {}
        path = self.file(str(art.get("manifest") or "calib/manifest.json"))
        if not path.is_file():
            return None
        try:
            manifest: dict[str, Any] = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{path}: unreadable calibration manifest ({exc})") from exc
        return manifest

    def calibration(self) -> tuple[str | None, dict[str, Any] | None]:
        """(calibration source spec, subset manifest) as recorded by the build; either may be None."""
        manifest = self.calibration_manifest
        spec = (manifest or {}).get("source") or self._recorded_calibration("calib", "calib")
        return (str(spec) if spec else None), manifest

    @property
    def calib_images_dir(self) -> str | None:
        """Image folder of the calibration source's COCO json, as the build was told (None: next to it)."""
        found = (self.calibration_manifest or {}).get("images_dir") or self._recorded_calibration(
            "images_dir", "calib_images"
        )
        return str(found) if found else None

    def _recorded_calibration(self, field: str, flat_name: str) -> Any:
        """A calibration option as ``build_options`` recorded it: nested under ``calibration`` (the
        :class:`~rtdetr_edge.calib.CalibrationOptions` field), or flat in bundles made before that."""
        opts = self.metadata.get("build_options") or {}
        return (opts.get("calibration") or {}).get(field) or opts.get(flat_name)

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, precisions={self.precisions})"


def finalize_bundle(directory: Path, metadata: dict[str, Any], report: dict[str, Any] | None = None) -> dict[str, Any]:
    """Complete a bundle being assembled in ``directory``: artifact hashes, metadata, report.

    ``metadata`` needs ``contract`` and ``artifacts`` (precision -> {"file": ...});
    ``format``, ``format_version``, ``created`` and each artifact's sha256 and size are filled in.
    """
    meta = {"format": BUNDLE_FORMAT, "format_version": BUNDLE_VERSION, "created": now_iso(), **metadata}
    for precision_art in meta.get("artifacts", {}).values():
        for art in [precision_art, *(precision_art.get("frames") or {}).values()]:
            f = directory / art["file"]
            if not f.is_file():
                raise BundleError(f"internal: artifact {art['file']} was not written")
            art["sha256"] = sha256_file(f)
            art["bytes"] = f.stat().st_size
            if art.get("trt8_file"):  # the int8 graph for TensorRT 8.x (calib.int8)
                f8 = directory / art["trt8_file"]
                if not f8.is_file():
                    raise BundleError(f"internal: artifact {art['trt8_file']} was not written")
                art["trt8_sha256"] = sha256_file(f8)
    atomic.write_json(directory / METADATA, meta)
    if report is not None:
        atomic.write_json(directory / REPORT, report)
    return meta


def write_bundle(
    out: str | os.PathLike[str],
    metadata: dict[str, Any],
    files: dict[str, bytes | Callable[[Path], None]],
    report: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a bundle atomically from in-memory files.

    Args:
        out: final directory.
        metadata: see :func:`finalize_bundle`.
        files: relative path -> bytes, or a writer called with the absolute target path.
        report: written as ``report.json``.
        overwrite: replace an existing bundle (``--force``).
    """
    with atomic.replacing_dir(out, overwrite=overwrite) as tmp:
        for rel, content in files.items():
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                content(target)
        finalize_bundle(tmp, metadata, report)
    return Path(out)
