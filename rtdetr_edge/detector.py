"""``Detector``: images in, :class:`Detections` out. image -> preprocess -> backend -> postprocess.

    from rtdetr_edge import Detector
    det = Detector("build/r18")            # a bundle, an .onnx or an .engine
    print(det("cat.jpg"))                   # Detections for one image
    for d in det([img1, img2]): ...         # a list runs as batches

Which artifact runs: a bundle gives a TensorRT engine where TensorRT and a GPU are present and
``BUNDLE/engines`` holds the engine the recipe makes for this GPU (``rtdetr-engine BUNDLE`` builds
it; ``engines=BundleEngines()`` builds it on first use instead), else its ONNX on ONNX Runtime
with the best provider available (with a warning where TensorRT was there but no engine was).
``backend=`` and ``precision=`` override.

Camera frames: a bundle built with ``--frame-size WxH`` has graphs that take uint8 BGR frames of
that size and resize and scale them themselves (``rtdetr_edge.export.frames``, docs/frames.md); the
Detector copies such frames into that graph's input buffer untouched, and preprocesses images of
other sizes on the host (one log line per size).

Threads: one Detector serialises calls with a lock (its input buffer and, on TensorRT, its
execution context are per Detector). For parallel inference make one Detector per thread.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, overload

import numpy as np

from . import images as image_io
from ._optional import tensorrt_available
from .backends import Backend, backend_for, open_backend
from .backends.options import (
    BACKEND_CHOICES,
    RUNTIME_PRECISIONS,
    OnnxRuntimeOptions,
    TensorRTOptions,
    check_choice,
)
from .bundle import METADATA, Bundle
from .contract import METADATA_KEY, OUTPUT_RAW, FrameInput, ModelContract, check_same_contract
from .detections import Detections
from .errors import BundleError, EngineError, InputError, RtdetrEdgeError
from .postprocess import PostprocessOptions, class_ids_of, from_raw, from_topk
from .preprocess import Preprocessor

log = logging.getLogger("rtdetr_edge")


__all__ = ["Detector", "EngineSource", "StageTimes", "prebuilt_engine"]


@dataclass
class StageTimes:
    """Milliseconds spent in each stage of the last call."""

    preprocess: float = 0.0
    infer: float = 0.0
    postprocess: float = 0.0
    images: int = 0

    @property
    def total(self) -> float:
        return self.preprocess + self.infer + self.postprocess


class EngineSource(Protocol):
    """Where a Detector gets a TensorRT engine for a bundle (e.g. builds and caches one).

    :class:`rtdetr_edge.engine.BundleEngines` is the one rtdetr-edge ships: it builds the engine
    from the bundle's ONNX on first use and caches it in ``BUNDLE/engines``.
    """

    def engine_for(self, bundle: Bundle, precision: str, device: int) -> Path: ...


def _tensorrt_usable(device: int) -> bool:
    if not tensorrt_available():  # cheap check first: no import of the TensorRT modules
        return False
    from .backends.trt_logging import tensorrt_usable

    return tensorrt_usable(device)


def prebuilt_engine(
    bundle: Bundle, precision: str, device: int = 0, frame_size: tuple[int, int] | None = None
) -> Path | None:
    """The newest engine in ``BUNDLE/engines`` that the recipe makes for ``precision`` here (None if none).

    An engine qualifies when its sidecar names this TensorRT version and this GPU
    (:func:`rtdetr_edge.engine_format.incompatibility`) and its cache key is the one
    :func:`rtdetr_edge.engine_recipe.recipe` gives today for this bundle, with the options the
    engine was built with: an engine from an older recipe, from a replaced ONNX or for other frames
    is passed over (``rtdetr-engine`` rebuilds it). ``frame_size`` (width, height) asks for an engine
    of the frame-input graphs of that size (``--frame-size``); None (default) for the preprocessed tensor.
    """
    from .backends.trt_logging import tensorrt_version
    from .cuda import buffers
    from .engine_format import DeviceIdentity, incompatibility
    from .engine_recipe import bundle_graphs, recipe_engines

    if not bundle.engines_dir.is_dir():
        return None
    version = tensorrt_version()
    here = DeviceIdentity.of(buffers.device_properties(device))
    found = recipe_engines(
        bundle.engines_dir,
        bundle_graphs(bundle, frame_size),
        precision,
        accept=lambda meta: incompatibility(meta, version, here) is None,
        tensorrt_version=version,
        device=here,
    )
    return found[0][0] if found else None


def device_precision(bundle: Bundle, device: int = 0) -> str | None:
    """The precision ``rtdetr-engine --precision best`` chose for this TensorRT and GPU (None if none).

    Read from the ``best`` entry of the engines' sidecars in ``BUNDLE/engines``; only sidecars that
    name this TensorRT version and this GPU count (:func:`rtdetr_edge.engine_format.incompatibility`).
    """
    from .backends.trt_logging import tensorrt_version
    from .cuda import buffers
    from .engine_format import DeviceIdentity, incompatibility, load_sidecar

    if not bundle.engines_dir.is_dir():
        return None
    chosen: list[tuple[str, str]] = []
    here: DeviceIdentity | None = None
    for path in bundle.engines_dir.glob("*.engine"):
        try:
            meta = load_sidecar(path)
            if meta is None or meta.best.get("chosen") not in ("fp16", "int8"):
                continue
            if here is None:  # TensorRT and the GPU are asked only when a choice was recorded
                version, here = tensorrt_version(), DeviceIdentity.of(buffers.device_properties(device))
            if incompatibility(meta, version, here) is None:
                chosen.append((meta.created, str(meta.best["chosen"])))
        except RtdetrEdgeError as exc:
            log.debug("%s: passed over (%s)", path.name, exc)
    return max(chosen)[1] if chosen else None


def _bundle_backend(
    bundle: Bundle,
    backend: str,
    precision: str,
    onnxruntime: OnnxRuntimeOptions | None,
    tensorrt: TensorRTOptions,
    engines: EngineSource | None,
) -> Backend:
    if backend == "auto" and not _tensorrt_usable(tensorrt.device):
        backend = "onnxruntime"
    if backend != "onnxruntime":  # tensorrt, or auto on a TensorRT machine
        if engines is not None:
            engine_path: Path | None = engines.engine_for(bundle, precision, tensorrt.device)
        else:
            engine_path = prebuilt_engine(bundle, precision, tensorrt.device)
        if engine_path is not None:
            return open_backend("tensorrt", engine_path, tensorrt=tensorrt)
        if backend == "tensorrt":
            raise EngineError(
                f"{bundle.path}: no {precision} TensorRT engine for this GPU and TensorRT version in "
                f"{bundle.engines_dir}; build one with `rtdetr-engine {bundle.path} --precision "
                f"{precision}` or pass engines=BundleEngines() to build it on first use"
            )
        log.warning(
            "%s has no %s TensorRT engine for this GPU and TensorRT version: running ONNX Runtime. Build "
            "one with `rtdetr-engine %s --precision %s` (or pass engines=BundleEngines())",
            bundle.path,
            precision,
            bundle.path,
            precision,
        )
    return open_backend("onnxruntime", bundle.onnx_path(precision), onnxruntime=onnxruntime)


def _resolve(
    model: str | os.PathLike[str],
    backend: str,
    precision: str,
    onnxruntime: OnnxRuntimeOptions | None,
    tensorrt: TensorRTOptions,
    engines: EngineSource | None,
) -> tuple[Backend, ModelContract, Bundle | None, str]:
    """The opened backend, its contract, the bundle (None for a file) and the precision (``auto`` resolved
    for a bundle: this device's ``--precision best`` choice on TensorRT, else the bundle's default)."""
    check_choice(backend, BACKEND_CHOICES, "backend")
    check_choice(precision, RUNTIME_PRECISIONS, "precision")
    if not isinstance(model, (str, os.PathLike)):
        raise InputError(f"model: expected a bundle folder, .onnx or .engine path, got {type(model).__name__}")
    path = Path(model)
    if not path.exists():
        raise InputError(f"{path}: no such bundle, .onnx or .engine file")
    bundle: Bundle | None = None
    if path.is_dir():
        if not (path / METADATA).is_file():
            raise BundleError(f"{path}: not a bundle ({METADATA} is missing); build one with rtdetr-build")
        bundle = Bundle(path)
        if backend == "auto" and not _tensorrt_usable(tensorrt.device):
            backend = "onnxruntime"
        if precision == "auto":
            on_device = device_precision(bundle, tensorrt.device) if backend != "onnxruntime" else None
            precision = on_device or bundle.default_precision
        be = _bundle_backend(bundle, backend, precision, onnxruntime, tensorrt, engines)
    else:
        name = backend_for(path) if backend == "auto" else backend
        be = open_backend(name, path, onnxruntime=onnxruntime, tensorrt=tensorrt)
    try:
        if bundle is not None:
            _check_embedded_contract(be, bundle)
        return be, _checked_io(be, bundle.contract if bundle is not None else _contract_of(be, path)), bundle, precision
    except RtdetrEdgeError:
        be.close()
        raise


def _check_embedded_contract(be: Backend, bundle: Bundle) -> None:
    """The bundle's ``metadata.json`` contract matches the one the opened artifact carries: ONNX
    Runtime's ``metadata_props``, or a TensorRT engine's sidecar (its ONNX's contract)."""
    meta_fn = getattr(be, "metadata", None)
    text = (meta_fn() if callable(meta_fn) else {}).get(METADATA_KEY)
    where = str(be.describe().get("file", be.name))
    if not text and be.name == "tensorrt" and Path(where).is_file():
        from .engine_format import load_sidecar

        sidecar = load_sidecar(where)
        text = sidecar.contract_json if sidecar is not None else None
    if text:
        check_same_contract(bundle.contract, text, str(bundle.path / METADATA), where)


def _checked_io(be: Backend, contract: ModelContract) -> ModelContract:
    """``contract``, once the opened model has its input and outputs (BundleError naming the file if not)."""
    inputs = [t.name for t in be.inputs]
    outputs = {t.name for t in be.outputs}
    missing = [n for n in contract.output_names if n not in outputs]
    if contract.graph_input not in inputs or missing:
        raise BundleError(
            f"{be.describe().get('file', be.name)}: does not match the model contract: expected input "
            f"{contract.graph_input!r} and outputs {', '.join(map(repr, contract.output_names))}; the model has "
            f"inputs {', '.join(map(repr, inputs)) or 'none'} and outputs {', '.join(map(repr, sorted(outputs))) or 'none'}"
        )
    return contract


def _contract_of(be: Backend, path: Path) -> ModelContract:
    meta_fn = getattr(be, "metadata", None)
    meta = meta_fn() if callable(meta_fn) else {}
    text = meta.get(METADATA_KEY)
    if text is None:
        raise BundleError(
            f"{path}: carries no rtdetr-edge model contract (metadata key {METADATA_KEY!r}); "
            "export it with rtdetr-build or load the bundle directory"
        )
    return ModelContract.from_json(text, str(path))


class Detector:
    """Detect objects with an exported RT-DETR.

    Args:
        model: bundle directory, ``.onnx`` (exported by rtdetr-edge) or ``.engine`` file.
        conf: default score threshold (0.3).
        classes: default class filter: class ids or names (None = all; one the model does not
            have is an InputError).
        max_det: default max detections per image (300).
        clip: clip boxes to the image (default True; False: boxes as the model predicts them,
            which may reach slightly outside).
        all_labels: keep every label the model's top-k gives one query (default False: each
            query's best label only, one detection per object; True: what transformers'
            post-processing and COCO AP use, as ``rtdetr-eval`` does).
        backend: ``"auto"``, ``"onnxruntime"`` or ``"tensorrt"``.
        precision: ``"auto"`` (the bundle's default), ``"fp32"``, ``"fp16"`` or ``"int8"``.
        max_batch: largest batch sent to the backend (default: the model's limit, else 8).
        onnxruntime: :class:`~rtdetr_edge.backends.options.OnnxRuntimeOptions` (providers, threads).
        tensorrt: :class:`~rtdetr_edge.backends.options.TensorRTOptions` (device, CUDA graphs,
            memory kind).
        engines: where a bundle's TensorRT engine comes from. None: an engine already built for
            this GPU in ``BUNDLE/engines`` (``rtdetr-engine BUNDLE`` builds one; without one,
            ``backend="auto"`` runs ONNX Runtime with a warning). ``BundleEngines(options)`` from
            :mod:`rtdetr_edge.engine` builds and caches it on first use.
        frames: use the bundle's frame-input artifacts (``rtdetr-build --frame-size WxH``) for
            images of their size (default True): the uint8 frame is copied into the backend's
            input buffer as it is and the graph resizes and scales it; images of other sizes are
            preprocessed on the host (one log line per size). On TensorRT a frame engine must be
            in ``BUNDLE/engines`` (or come from ``engines``), else the host path runs.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        conf: float = 0.3,
        classes: Sequence[int | str] | None = None,
        max_det: int = 300,
        clip: bool = True,
        all_labels: bool = False,
        backend: str = "auto",
        precision: str = "auto",
        max_batch: int | None = None,
        onnxruntime: OnnxRuntimeOptions | None = None,
        tensorrt: TensorRTOptions | None = None,
        engines: EngineSource | None = None,
        frames: bool = True,
    ) -> None:
        # options first: a bad value fails before any model is loaded
        # classes (ids or names): their form now, against the model's classes once it is open
        class_ids_of(classes, None)
        self.options = PostprocessOptions(conf=conf, max_det=max_det, clip=clip, all_labels=all_labels)
        if max_batch is not None and (
            isinstance(max_batch, bool) or not isinstance(max_batch, (int, np.integer)) or max_batch < 1
        ):
            raise InputError(f"max_batch: expected an integer >= 1 or None, got {max_batch!r}")
        if tensorrt is not None and not isinstance(tensorrt, TensorRTOptions):
            raise InputError(f"tensorrt: expected TensorRTOptions, got {tensorrt!r}")
        if onnxruntime is not None and not isinstance(onnxruntime, OnnxRuntimeOptions):
            raise InputError(f"onnxruntime: expected OnnxRuntimeOptions, got {onnxruntime!r}")
        if tensorrt is not None and backend != "onnxruntime" and tensorrt.device > 0:
            from .cuda import buffers

            count = buffers.device_count()
            if tensorrt.device >= count:
                raise InputError(
                    f"tensorrt: device {tensorrt.device}: expected a CUDA device index below {count} "
                    f"(this machine has {count} CUDA device{'s' if count != 1 else ''})"
                )
        self._closed = False
        self.backend, self.contract, self.bundle, resolved = _resolve(
            model, backend, precision, onnxruntime, tensorrt or TensorRTOptions(), engines
        )
        self.model_path = Path(model)
        try:
            self.options = dataclasses.replace(self.options, classes=class_ids_of(classes, self.class_names))
        except RtdetrEdgeError:
            self.backend.close()
            raise
        self.preprocessor = Preprocessor(self.contract.preprocessing)
        lo, hi = self.backend.batch_range
        self.min_batch = lo
        self.max_batch = int(max_batch) if max_batch is not None else (hi if hi else 8)
        if hi and self.max_batch > hi:
            self.backend.close()
            raise InputError(f"max_batch {self.max_batch} exceeds the model's limit {hi}")
        self.last_times = StageTimes()
        self._lock = threading.Lock()
        self._engines = engines
        self._onnxruntime = onnxruntime
        self._tensorrt = tensorrt or TensorRTOptions()
        self.precision = resolved
        # frame size -> the backend running that frame-input graph (None: the host path, logged once)
        self._frame_backends: dict[tuple[int, int], Backend | None] = {}
        self.frame_sizes: tuple[tuple[int, int], ...] = ()
        if self.contract.frame is not None:  # an .onnx/.engine frame artifact opened on its own
            self.frame_sizes = ((self.contract.frame.width, self.contract.frame.height),)
            self._frame_backends[self.frame_sizes[0]] = self.backend
        elif frames and self.bundle is not None and self.precision in self.bundle.precisions:
            self.frame_sizes = tuple(self.bundle.frame_sizes(self.precision))

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.contract.class_names

    def _frame_backend(self, size: tuple[int, int]) -> Backend | None:
        """The backend for frames of ``size`` (opened on first use), or None for the host path."""
        if size in self._frame_backends:
            return self._frame_backends[size]
        be: Backend | None = None
        why = ""
        if size not in self.frame_sizes:
            have = ", ".join(f"{w}x{h}" for w, h in self.frame_sizes)
            why = f"the bundle's frame-input artifacts are for {have}"
        elif self.bundle is not None and self.backend.name == "tensorrt":
            engine = self._frame_engine(size)
            if engine is None:
                why = f"no {self.precision} TensorRT engine built from its {size[0]}x{size[1]} frame artifact here"
            else:
                be = open_backend("tensorrt", engine, tensorrt=self._tensorrt)
        elif self.bundle is not None:
            path = self.bundle.frame_onnx_path(self.precision, size)
            be = open_backend("onnxruntime", path, onnxruntime=self._onnxruntime)
        if be is not None:
            frame = FrameInput(width=size[0], height=size[1])
            try:
                _checked_io(be, dataclasses.replace(self.contract, frame=frame))
            except RtdetrEdgeError:
                be.close()
                raise
        elif self.frame_sizes:  # only bundles that have frame artifacts say why one is not used
            log.warning("%dx%d images: preprocessing on the host (%s)", size[0], size[1], why)
        self._frame_backends[size] = be
        return be

    def _frame_engine(self, size: tuple[int, int]) -> Path | None:
        assert self.bundle is not None
        build = getattr(self._engines, "engine_for_frames", None)
        if callable(build):
            found: Path | None = build(self.bundle, self.precision, self._tensorrt.device, size)
            return found
        return prebuilt_engine(self.bundle, self.precision, self._tensorrt.device, size)

    def describe(self) -> dict[str, Any]:
        info = self.backend.describe()
        info.update(
            {
                "model": str(self.model_path),
                "input": [self.contract.preprocessing.height, self.contract.preprocessing.width],
                "batch_range": [self.min_batch, self.max_batch],
                "outputs": self.contract.output_kind,
                "frame_inputs": [f"{w}x{h}" for w, h in self.frame_sizes],
            }
        )
        return info

    @overload
    def __call__(  # type: ignore[overload-overlap]  # a list is also an object: the first match wins, as in typeshed
        self,
        images: list[Any] | tuple[Any, ...],
        rgb: bool = False,
        conf: float | None = None,
        classes: Sequence[int | str] | None = None,
        max_det: int | None = None,
    ) -> list[Detections]: ...

    @overload
    def __call__(
        self,
        images: str | os.PathLike[str] | np.ndarray | object,
        rgb: bool = False,
        conf: float | None = None,
        classes: Sequence[int | str] | None = None,
        max_det: int | None = None,
    ) -> Detections: ...

    def __call__(
        self,
        images: Any,
        rgb: bool = False,
        conf: float | None = None,
        classes: Sequence[int | str] | None = None,
        max_det: int | None = None,
    ) -> Detections | list[Detections]:
        """Detect on one image (returns :class:`Detections`) or a list (returns a list).

        Args:
            images: a path, an HxWx3 BGR uint8 array (``rgb=True`` for RGB), HxW grayscale,
                HxWx4, a PIL image, or a list of those (a 4-D array is a batch too: it returns a list,
                though typed as one image; pass a list to have it typed as a batch).
            conf, classes, max_det: override the Detector's defaults for this call.
        """
        single = not isinstance(images, (list, tuple)) and not (isinstance(images, np.ndarray) and images.ndim == 4)
        batch = [images] if single else list(images)
        if not batch:
            return []
        self._check_open()
        opts = PostprocessOptions(
            conf=self.options.conf if conf is None else conf,
            classes=self.options.classes if classes is None else class_ids_of(classes, self.class_names),
            max_det=self.options.max_det if max_det is None else max_det,
            clip=self.options.clip,
            all_labels=self.options.all_labels,
        )
        results = self.detect_batch([self._load(img, rgb, i) for i, img in enumerate(batch)], opts)
        return results[0] if single else results

    def _load(self, source: Any, rgb: bool, index: int) -> np.ndarray:
        name = str(source) if isinstance(source, (str, os.PathLike)) else f"image[{index}]"
        if isinstance(source, (str, os.PathLike)):
            return image_io.read_image(source)
        return image_io.as_bgr(source, rgb=rgb, name=name)

    def detect_batch(self, bgr_images: list[np.ndarray], opts: PostprocessOptions | None = None) -> list[Detections]:
        """Detect on validated BGR uint8 images, split into backend-sized batches."""
        self._check_open()
        opts = opts or self.options
        out: list[Detections] = []
        times = StageTimes(images=len(bgr_images))
        with self._lock:
            if not self._frame_backends and not self.frame_sizes:
                groups: list[tuple[Backend | None, list[int]]] = [(None, list(range(len(bgr_images))))]
            else:
                by_size: dict[tuple[int, int], list[int]] = {}
                for i, img in enumerate(bgr_images):
                    by_size.setdefault((img.shape[1], img.shape[0]), []).append(i)
                routed: dict[int, tuple[Backend | None, list[int]]] = {}
                for size, idx in by_size.items():
                    fb = self._frame_backend(size)
                    if fb is None and self.contract.frame is not None:
                        raise InputError(
                            f"{self.model_path} takes {self.contract.frame.key} frames (a frame-input graph); "
                            f"got a {size[0]}x{size[1]} image: open the bundle for other sizes"
                        )
                    routed.setdefault(id(fb), (fb, []))[1].extend(idx)
                groups = list(routed.values())
            results: dict[int, Detections] = {}
            for fb, idx in groups:
                for start in range(0, len(idx), self.max_batch):
                    part = idx[start : start + self.max_batch]
                    dets = self._run_chunk([bgr_images[i] for i in part], opts, times, fb)
                    results.update(zip(part, dets))
            out = [results[i] for i in range(len(bgr_images))]
        self.last_times = times
        return out

    def _run_chunk(
        self, chunk: list[np.ndarray], opts: PostprocessOptions, times: StageTimes, frames: Backend | None = None
    ) -> list[Detections]:
        """One backend batch: preprocessed on the host into ``self.backend``'s buffer, or, with a
        ``frames`` backend (a frame-input graph), the uint8 frames copied into its buffer as they are."""
        n = len(chunk)
        backend = frames or self.backend
        run_n = max(n, backend.batch_range[0])  # static-batch engines: pad with copies of the last image
        t0 = time.perf_counter()
        buf = backend.input_buffer(run_n)
        if frames is not None:
            for i, img in enumerate(chunk):
                np.copyto(buf[i], img)
            sizes = [(img.shape[1], img.shape[0]) for img in chunk]
        else:
            sizes = self.preprocessor(chunk, out=buf)
        for i in range(n, run_n):
            buf[i] = buf[n - 1]
        t1 = time.perf_counter()
        outputs = backend.infer(run_n)
        t2 = time.perf_counter()
        c = self.contract
        if c.output_kind == OUTPUT_RAW:
            dets = from_raw(outputs[c.output_names[0]], outputs[c.output_names[1]], sizes, c.top_k, opts, c.class_names)
        else:
            dets = from_topk(
                outputs[c.output_names[0]],
                outputs[c.output_names[1]],
                outputs[c.output_names[2]],
                sizes,
                opts,
                c.class_names,
            )
        t3 = time.perf_counter()
        times.preprocess += (t1 - t0) * 1e3
        times.infer += (t2 - t1) * 1e3
        times.postprocess += (t3 - t2) * 1e3
        return dets

    def _check_open(self) -> None:
        if self._closed:
            raise InputError(f"Detector({str(self.model_path)!r}) is closed; make a new Detector to detect again")

    def close(self) -> None:
        """Release the backend; calling the Detector afterwards raises InputError. Idempotent."""
        if not self._closed:
            self._closed = True
            for be in self._frame_backends.values():
                if be is not None and be is not self.backend:
                    be.close()
            self.backend.close()

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Detector({str(self.model_path)!r}, backend={self.backend.name}, classes={len(self.class_names)})"
