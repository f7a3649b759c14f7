"""``TritonDetector``: images to a Triton server serving an rtdetr-triton ensemble, Detections back.

    from rtdetr_edge.serving.client import TritonDetector
    with TritonDetector("http://localhost:8000") as det:      # or "grpc://localhost:8001"
        dets = det("photo.jpg")                                 # Detections, as Detector returns
        many = det([frame1, frame2, frame3])                    # sent concurrently: the server batches

Image files are sent as their bytes (the server decodes them as :func:`rtdetr_edge.images.read_image`
does); arrays (BGR, or ``rgb=True``) and PIL images are sent as lossless PNG, so the server sees the
very pixels a local :class:`~rtdetr_edge.Detector` would. The server already dropped scores below
its ``conf`` (the ensemble's ``conf`` parameter); ``conf``, ``classes`` and ``max_det`` here filter
further. Thread-safe: each thread gets its own ``tritonclient`` connection.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .. import images as image_io
from .._optional import require
from ..detections import Detections
from ..errors import InputError, RtdetrEdgeError
from ..postprocess import PostprocessOptions, class_ids_of


class ServerRequestError(RtdetrEdgeError):
    """The server could not be reached or answered a request with an error."""


def _split_url(url: str) -> tuple[str, str]:
    """``(protocol, host:port)`` of ``http://h:p``, ``grpc://h:p`` or a bare ``h:p`` (HTTP).

    Checked here, before tritonclient sees it: its constructors fail half-way on a bad address
    and then print a traceback from their destructor.
    """
    expected = "expected http://HOST:PORT, grpc://HOST:PORT or HOST:PORT"
    if "://" not in url:
        url = f"http://{url}"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InputError(f"--server {url}: {expected} ({exc})") from None
    if parts.scheme not in ("http", "grpc") or not parts.hostname or port == 0 or parts.path.strip("/") or parts.query:
        raise InputError(f"--server {url}: {expected}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = 8000 if parts.scheme == "http" else 8001  # Triton's default ports
    return parts.scheme, f"{host}:{port if port is not None else default}"


class TritonDetector:
    """Detect with a model served by Triton (an ensemble written by ``rtdetr-triton``).

    Args:
        url: ``http://HOST:PORT`` (default ``http://localhost:8000``), ``grpc://HOST:PORT`` or ``HOST:PORT``.
        model: the ensemble's name (``"rtdetr"``).
        conf: keep scores >= conf; None: the server's threshold. Lower than the server's is an error.
        classes: keep only these class ids (None: all).
        max_det: at most this many per image (300).
        timeout: seconds per request (60).
    """

    def __init__(
        self,
        url: str = "http://localhost:8000",
        model: str = "rtdetr",
        conf: float | None = None,
        classes: Sequence[int | str] | None = None,
        max_det: int = 300,
        timeout: float = 60.0,
    ) -> None:
        self.protocol, self.address = _split_url(url)
        self.url, self.model, self.timeout = url, model, float(timeout)
        self._module = require(f"tritonclient.{self.protocol}", "rtdetr_edge.serving.client (a Triton client)")
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()
        config = self._config()
        params = config.get("parameters") or {}
        try:
            self.class_names: tuple[str, ...] = tuple(json.loads(params["class_names"]["string_value"]))
            self.server_conf = float(params["conf"]["string_value"])
        except (KeyError, TypeError, ValueError):
            raise InputError(
                f"{url}: model {model!r} is not an rtdetr-triton ensemble (no class_names/conf parameters)"
            ) from None
        self.options = self._options(conf, classes, max_det)

    def _options(self, conf: float | None, classes: Sequence[int | str] | None, max_det: int) -> PostprocessOptions:
        opts = PostprocessOptions(
            conf=self.server_conf if conf is None else conf,
            classes=class_ids_of(classes, self.class_names),
            max_det=max_det,
        )
        if opts.conf < self.server_conf:
            raise InputError(
                f"conf {opts.conf}: the server at {self.url} already dropped scores below {self.server_conf}; "
                f"use conf >= {self.server_conf} or regenerate the repository with rtdetr-triton --conf"
            )
        return opts

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            if self.protocol == "http":
                client = self._module.InferenceServerClient(
                    self.address, connection_timeout=self.timeout, network_timeout=self.timeout
                )
            else:  # gRPC: the timeout is per call (client_timeout)
                client = self._module.InferenceServerClient(self.address)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def _config(self) -> dict[str, Any]:
        try:
            if self.protocol == "grpc":
                got = self._client().get_model_config(self.model, as_json=True)
                return dict(got.get("config", got))
            return dict(self._client().get_model_config(self.model))
        except Exception as exc:  # noqa: BLE001 - tritonclient raises its own and socket errors
            raise ServerRequestError(f"{self.url}: cannot get model {self.model!r}: {_one_line(exc)}") from None

    @staticmethod
    def encode(image: Any, rgb: bool = False, index: int = 0) -> bytes:
        """What is sent for ``image``: a file's bytes, or an array/PIL image as lossless PNG."""
        if isinstance(image, (str, os.PathLike)):
            path = Path(image)
            try:
                return path.read_bytes()
            except OSError as exc:
                raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
        bgr = image_io.as_bgr(image, rgb=rgb, name=f"image[{index}]")
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise InputError(f"image[{index}]: cannot encode as PNG")
        return bytes(buf)

    def _inputs(self, data: bytes) -> list[Any]:
        inp = self._module.InferInput("image", [1], "BYTES")
        inp.set_data_from_numpy(np.array([data], dtype=np.object_))
        return [inp]

    def _outputs(self) -> list[Any]:
        return [self._module.InferRequestedOutput(n) for n in ("boxes", "scores", "class_ids", "image_size")]

    def _detections(self, result: Any, opts: PostprocessOptions) -> Detections:
        w, h = (int(v) for v in result.as_numpy("image_size").reshape(2))
        dets = Detections(
            result.as_numpy("boxes").reshape(-1, 4),
            result.as_numpy("scores").reshape(-1),
            result.as_numpy("class_ids").reshape(-1),
            self.class_names,
            (w, h),
        )
        keep = dets.scores >= opts.conf
        if opts.classes is not None:
            keep &= np.isin(dets.class_ids, opts.classes)
        return dets[np.flatnonzero(keep)[: opts.max_det]]

    def infer_bytes(self, data: bytes, name: str = "image", opts: PostprocessOptions | None = None) -> Detections:
        """One encoded image -> Detections (ServerRequestError naming ``name`` if the server refuses it)."""
        try:
            timeout = {"client_timeout": self.timeout} if self.protocol == "grpc" else {}
            result = self._client().infer(self.model, self._inputs(data), outputs=self._outputs(), **timeout)
        except Exception as exc:  # noqa: BLE001 - tritonclient.utils.InferenceServerException, socket errors
            raise ServerRequestError(f"{name}: {self.url} answered: {_one_line(exc)}") from None
        return self._detections(result, opts or self.options)

    def detect_batch(self, bgr_images: list[np.ndarray], opts: PostprocessOptions | None = None) -> list[Detections]:
        """BGR uint8 images -> Detections each; the requests are in flight together, so Triton batches them."""
        return self._many([self.encode(img, index=i) for i, img in enumerate(bgr_images)], opts)

    def _many(
        self, payloads: list[bytes], opts: PostprocessOptions | None, names: Sequence[str] = ()
    ) -> list[Detections]:
        if len(payloads) <= 1:
            return [self.infer_bytes(p, names[0] if names else "image[0]", opts) for p in payloads]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(len(payloads), 16)) as pool:
            futures = [
                pool.submit(self.infer_bytes, p, names[i] if names else f"image[{i}]", opts)
                for i, p in enumerate(payloads)
            ]
            return [f.result() for f in futures]

    def __call__(
        self,
        images: Any,
        rgb: bool = False,
        conf: float | None = None,
        classes: Sequence[int | str] | None = None,
        max_det: int | None = None,
    ) -> Any:
        """As :meth:`rtdetr_edge.Detector.__call__`: one image -> Detections, a list -> a list."""
        single = not isinstance(images, (list, tuple))
        batch = [images] if single else list(images)
        opts = self.options
        if conf is not None or classes is not None or max_det is not None:
            opts = self._options(
                opts.conf if conf is None else conf,
                opts.classes if classes is None else classes,
                opts.max_det if max_det is None else max_det,
            )
        names = [str(im) if isinstance(im, (str, os.PathLike)) else f"image[{i}]" for i, im in enumerate(batch)]
        results = self._many([self.encode(im, rgb, i) for i, im in enumerate(batch)], opts, names)
        return results[0] if single else results

    def statistics(self, model: str) -> dict[str, Any]:
        """Triton's statistics of ``model`` (``/v2/models/<model>/stats``) as a dict."""
        if self.protocol == "grpc":
            return dict(self._client().get_inference_statistics(model, as_json=True))
        return dict(self._client().get_inference_statistics(model))

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            with contextlib.suppress(Exception):  # closing a dead connection is not an error
                client.close()

    def __enter__(self) -> TritonDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TritonDetector({self.url!r}, model={self.model!r}, classes={len(self.class_names)})"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
