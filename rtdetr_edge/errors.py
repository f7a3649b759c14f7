"""One exception family for everything a user can get wrong.

``RtdetrEdgeError`` and its subclasses carry a message meant for a person: the CLI prints it and
exits 1 without a traceback. Anything else that escapes is a bug in rtdetr-edge.
"""

from __future__ import annotations


class RtdetrEdgeError(Exception):
    """Base class for user-facing errors (bad input, missing files, missing extras)."""


class InputError(RtdetrEdgeError, ValueError):
    """An image, array, path or argument is not what was expected."""


class BundleError(RtdetrEdgeError):
    """A bundle directory or its metadata is missing, incomplete or of an unknown version."""


class ModelSourceError(RtdetrEdgeError):
    """A model source (hub id, folder, object) cannot be loaded as RT-DETR."""


class ExportError(RtdetrEdgeError):
    """Export, simplification or verification of the ONNX graph failed."""


class VerificationError(ExportError):
    """The exported graph disagrees with the reference beyond tolerance."""


class CalibrationError(RtdetrEdgeError):
    """INT8 calibration could not run (data missing, too few images, bad ranges)."""


class CheckError(RtdetrEdgeError):
    """An accuracy check (rtdetr-check) could not run: missing artifacts, data or runner failures."""


class EngineError(RtdetrEdgeError):
    """A TensorRT engine cannot be built, loaded or used on this machine."""


class MissingDependencyError(RtdetrEdgeError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""
