"""``rtdetr-triton``: a bundle -> a Triton model repository (layout in :mod:`.configs`).

::

    REPO/
      README.md                     how to run it (T4 server, Jetson, this machine)
      rtdetr-repository.json        what made it: bundle, options, rtdetr-edge version
      rtdetr/config.pbtxt           the ensemble; rtdetr/1/ (empty, as Triton wants)
      rtdetr/labels.txt
      rtdetr_preprocess/            config.pbtxt, contract.json, 1/model.py
      rtdetr_detector/              config.pbtxt and 1/model.plan (tensorrt: the bundle's engine, if any;
                                    build/model.onnx to build one), 1/model.onnx (onnxruntime), or
                                    1/model.onnx + 1/model.py (python)
      rtdetr_postprocess/           config.pbtxt, contract.json, labels.txt, 1/model.py

The repository is assembled in a temporary sibling folder and renamed into place.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, get_args

from .. import __version__
from ..atomic import is_our_bundle
from ..bundle import METADATA, Bundle
from ..contract import ModelContract
from ..errors import BundleError, InputError
from ..postprocess import PostprocessOptions
from . import configs
from .configs import DetectorIO, TensorSpec
from .pbtxt import render
from .readme import repository_readme

log = logging.getLogger("rtdetr_edge")

DetectorKind = Literal["tensorrt", "onnxruntime", "python"]
DETECTOR_KINDS: tuple[str, ...] = get_args(DetectorKind)
MARKER = "rtdetr-repository.json"
# bounds that keep a config inside Triton's int32 fields and a batch a GPU can hold
MAX_BATCH_LIMIT = 4096
MAX_INSTANCES = 64
MAX_QUEUE_DELAY_US = 10_000_000
MARKER_FORMAT = "rtdetr-edge-triton-repository"


@dataclass(frozen=True)
class RepositoryOptions:
    """How the repository serves the model.

    Attributes:
        detector: ``"tensorrt"`` (``platform: "tensorrt_plan"``, default: the production Triton
            container on a GPU), ``"onnxruntime"`` (``platform: "onnxruntime_onnx"``, CPU servers)
            or ``"python"`` (Triton's Python backend running rtdetr-edge's Detector: servers without
            those backends, such as the ``nvidia-pytriton`` wheel's).
        precision: ``"auto"`` (the bundle's default for ``tensorrt``; fp32 for the CPU detectors
            ``onnxruntime`` and ``python``), ``"fp32"``, ``"fp16"`` or ``"int8"``.
        name: the ensemble's name (``"rtdetr"``); the steps are ``NAME_preprocess`` and so on.
        max_batch: the detector's ``max_batch_size`` (8).
        preferred_batch: dynamic batching's preferred sizes (default: half of ``max_batch`` and
            ``max_batch``).
        queue_delay_us: how long the dynamic batcher waits for more requests (2000 µs).
        instances: detector instances (1; one execution context each on a GPU).
        preprocess_instances: preprocessing (decode + resize) instances on the CPU (2).
        cuda_graphs: TensorRT: ``optimization { cuda { graphs: true } }`` (True).
        threads: ONNX Runtime intra-op threads per instance (None: ONNX Runtime's choice).
        conf, max_det, clip: what the postprocess step keeps (rtdetr-edge's defaults: 0.3, 300, False).
    """

    detector: DetectorKind = "tensorrt"
    precision: str = "auto"
    name: str = "rtdetr"
    max_batch: int = 8
    preferred_batch: tuple[int, ...] = ()
    queue_delay_us: int = 2000
    instances: int = 1
    preprocess_instances: int = 2
    cuda_graphs: bool = True
    threads: int | None = None
    conf: float = 0.3
    max_det: int = 300
    clip: bool = False

    def __post_init__(self) -> None:
        if self.detector not in DETECTOR_KINDS:
            raise InputError(f"--detector: expected one of {', '.join(DETECTOR_KINDS)}, got {self.detector!r}")
        if self.precision not in ("auto", "fp32", "fp16", "int8"):
            raise InputError(f"--precision: expected auto, fp32, fp16 or int8, got {self.precision!r}")
        if not self.name or not all(c.isalnum() or c in "_-" for c in self.name):
            raise InputError(f"--name: expected letters, digits, '_' or '-', got {self.name!r}")
        for flag, value, most in (
            ("--max-batch", self.max_batch, MAX_BATCH_LIMIT),
            ("--instances", self.instances, MAX_INSTANCES),
            ("--preprocess-instances", self.preprocess_instances, MAX_INSTANCES),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
                raise InputError(f"{flag}: expected an integer in 1..{most}, got {value!r}")
        delay = self.queue_delay_us
        if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= MAX_QUEUE_DELAY_US:
            raise InputError(f"--queue-delay-us: expected an integer in 0..{MAX_QUEUE_DELAY_US}, got {delay!r}")
        preferred = tuple(self.preferred_batch) or tuple(sorted({max(1, self.max_batch // 2), self.max_batch}))
        if any(isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= self.max_batch for b in preferred):
            raise InputError(f"--preferred-batch: expected sizes in 1..{self.max_batch}, got {list(preferred)}")
        object.__setattr__(self, "preferred_batch", preferred)
        if self.threads is not None and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or not 1 <= self.threads <= 1024
        ):
            raise InputError(f"--threads: expected an integer in 1..1024, got {self.threads!r}")
        PostprocessOptions(conf=self.conf, max_det=self.max_det, clip=self.clip)  # validates them


def is_repository(path: str | os.PathLike[str]) -> bool:
    """``path`` is a repository that :func:`write_repository` made."""
    try:
        obj = json.loads((Path(path) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(obj, dict) and obj.get("format") == MARKER_FORMAT


def detector_io(onnx_path: Path) -> DetectorIO:
    """The graph's input and outputs as Triton tensors (batch dimension dropped)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)

    def spec(value: onnx.ValueInfoProto) -> TensorSpec:
        t = value.type.tensor_type
        if t.elem_type not in configs.ONNX_TO_TRITON:
            raise BundleError(
                f"{onnx_path}: tensor {value.name!r} has ONNX type {t.elem_type}, unsupported by this tool"
            )
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
        return TensorSpec(value.name, configs.ONNX_TO_TRITON[t.elem_type], dims[1:])

    inits = {i.name for i in model.graph.initializer}
    inputs = [spec(v) for v in model.graph.input if v.name not in inits]
    if len(inputs) != 1:
        raise BundleError(f"{onnx_path}: expected one graph input, got {[i.name for i in inputs]}")
    return DetectorIO(inputs[0], tuple(spec(v) for v in model.graph.output))


def _model_py(step: str, what: str) -> str:
    return (
        f'"""Triton Python-backend model: {what} (generated by rtdetr-triton {__version__}).\n\n'
        "The code is rtdetr-edge's: rtdetr-edge must be importable by the Python that runs Triton's\n"
        'Python backend stub (see ../../README.md)."""\n\n'
        f"from rtdetr_edge.serving.triton_models.{step} import TritonPythonModel\n\n"
        '__all__ = ["TritonPythonModel"]\n'
    )


def _engine_for(bundle: Bundle, precision: str) -> tuple[Path, dict[str, object]] | None:
    """The newest engine of ``precision`` in the bundle and its sidecar (None if there is none)."""
    from ..detector import engine_frame_size
    from ..engine_format import load_sidecar
    from ..errors import RtdetrEdgeError

    found = []
    for path in sorted(bundle.engines_dir.glob("*.engine")) if bundle.engines_dir.is_dir() else []:
        try:
            meta = load_sidecar(path)
        except RtdetrEdgeError:
            continue
        if meta is None or meta.precision != precision:
            continue
        # the detector config takes the preprocessed tensor at batch 1..max: a frame-input engine
        # (uint8 [N,H,W,3]), a DLA engine or a static batch above 1 would fail to load or to serve
        batch = meta.to_dict().get("batch")
        if engine_frame_size(meta.contract_json) is not None or meta.dla_core is not None:
            continue
        if not (isinstance(batch, list) and len(batch) == 3 and int(batch[0]) == 1):
            continue
        found.append((meta.created, path, meta.to_dict()))
    if not found:
        return None
    _, newest, sidecar = max(found, key=lambda f: f[0])
    return newest, sidecar


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + ("" if text.endswith("\n") else "\n"), encoding="utf-8")


def _populate(root: Path, bundle: Bundle, precision: str, options: RepositoryOptions) -> dict[str, object]:
    contract: ModelContract = bundle.contract
    if contract.max_batch and options.max_batch > contract.max_batch:
        raise InputError(f"--max-batch {options.max_batch} exceeds the model's limit {contract.max_batch}")
    onnx_path = bundle.onnx_path(precision)  # checks the artifact's hash
    io = detector_io(onnx_path)
    name = options.name
    labels = "\n".join(contract.class_names) + "\n"
    contract_json = json.dumps(contract.to_dict(), indent=2, sort_keys=True)

    ensemble = root / name
    (ensemble / "1").mkdir(parents=True)
    _write(ensemble / "config.pbtxt", render(configs.ensemble_config(name, io, contract.class_names, options.conf)))
    _write(ensemble / "labels.txt", labels)

    pre = root / f"{name}_preprocess"
    _write(pre / "config.pbtxt", render(configs.preprocess_config(pre.name, contract, options.preprocess_instances)))
    _write(pre / "contract.json", contract_json)
    _write(pre / "1" / "model.py", _model_py("preprocess", "decode + preprocess"))

    post = root / f"{name}_postprocess"
    _write(
        post / "config.pbtxt",
        render(configs.postprocess_config(post.name, io, options.conf, options.max_det, options.clip)),
    )
    _write(post / "contract.json", contract_json)
    _write(post / "labels.txt", labels)
    _write(post / "1" / "model.py", _model_py("postprocess", "threshold + boxes in pixels"))

    det = root / f"{name}_detector"
    engine_info: dict[str, object] | None = None
    if options.detector == "tensorrt":
        # the plan must come from the TensorRT version of the Triton release that serves it, on
        # that GPU: ship the ONNX to build it there (README), and the bundle's engine if it has one
        (det / "build").mkdir(parents=True)
        shutil.copy2(onnx_path, det / "build" / "model.onnx")
        trt8 = bundle.trt8_onnx_path() if precision == "int8" else None
        if trt8 is not None:  # TensorRT 8.6 (JetPack 6.0) needs the int8 graph made for it
            shutil.copy2(trt8, det / "build" / "model.trt8.onnx")
        found = _engine_for(bundle, precision)
        (det / "1").mkdir()
        if found is not None:
            shutil.copy2(found[0], det / "1" / "model.plan")
            engine_info = found[1]
            batch = engine_info.get("batch")
            if isinstance(batch, list) and len(batch) == 3 and options.max_batch > int(batch[2]):
                raise InputError(
                    f"--max-batch {options.max_batch} exceeds the batch profile of {found[0]} (max {batch[2]}); "
                    f"pass --max-batch {batch[2]} or rebuild it with rtdetr-engine --batch 1,{options.max_batch},{options.max_batch}"
                )
    else:
        (det / "1").mkdir(parents=True)
        shutil.copy2(onnx_path, det / "1" / "model.onnx")
        if options.detector == "python":
            _write(det / "1" / "model.py", _model_py("detector", "the detector through rtdetr-edge's Detector"))
    _write(
        det / "config.pbtxt",
        render(
            configs.detector_config(
                det.name,
                options.detector,
                io,
                options.max_batch,
                options.preferred_batch,
                options.queue_delay_us,
                options.instances,
                options.cuda_graphs,
                options.threads,
            )
        ),
    )
    info: dict[str, object] = {
        "format": MARKER_FORMAT,
        "format_version": 1,
        "rtdetr_edge_version": __version__,
        "bundle": str(bundle.path),
        "precision": precision,
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(options).items()},
        "engine": engine_info,
        "input": [contract.preprocessing.height, contract.preprocessing.width],
        "class_names": list(contract.class_names),
    }
    _write(root / MARKER, json.dumps(info, indent=2))
    has_trt8 = (det / "build" / "model.trt8.onnx").is_file()
    _write(root / "README.md", repository_readme(name, options, precision, io, contract, engine_info, has_trt8))
    return info


def write_repository(
    bundle: str | os.PathLike[str], out: str | os.PathLike[str], options: RepositoryOptions, force: bool = False
) -> Path:
    """Write a Triton model repository for ``bundle`` at ``out`` (see the module docstring).

    Args:
        bundle: a bundle folder (rtdetr-build).
        out: the repository folder: new or empty; with ``force`` also a repository this function
            wrote (anything else is refused, nothing deleted).
        options: see :class:`RepositoryOptions`.
    """
    src = Path(bundle)
    if not (src / METADATA).is_file() or not is_our_bundle(src):
        raise BundleError(
            f"{src}: not a bundle ({METADATA} of an rtdetr-edge bundle is missing); build one with rtdetr-build"
        )
    b = Bundle(src)
    precision = options.precision
    if precision == "auto":
        # the bundle's default was chosen for GPUs; FP16 and Q/DQ graphs are slow on ONNX Runtime's CPU kernels
        precision = str(b.metadata.get("default_precision", "fp32")) if options.detector == "tensorrt" else "fp32"
    if precision not in b.precisions:
        raise InputError(f"precision {precision}: the bundle {src} has {', '.join(b.precisions)}")
    target = Path(out)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        if not target.is_dir():
            raise InputError(f"--out {out}: exists and is not a folder")
        if not force:
            raise InputError(f"--out {out}: already exists; pass --force to replace it")
        if not is_repository(target):
            raise InputError(
                f"--out {out}: is not a repository rtdetr-triton wrote ({MARKER} missing); nothing was deleted"
            )
    if target.resolve().is_relative_to(src.resolve()) or src.resolve().is_relative_to(target.resolve()):
        raise InputError(f"--out {out}: overlaps the bundle {src}; choose another folder")
    parent = target.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=parent))
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write in {parent} ({exc.strerror or exc})") from exc
    try:
        os.chmod(tmp, 0o755)
        _populate(tmp, b, precision, options)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=parent))
            os.replace(target, old / "x")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("wrote the Triton model repository %s (%s detector, %s)", target, options.detector, precision)
    return target
