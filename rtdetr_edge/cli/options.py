"""The flags that turn into typed options, defined once for every command that takes them.

Each ``add_*`` function adds a group of flags whose defaults are read from the option dataclass
itself (never re-typed), and the matching function builds the dataclass from parsed arguments.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from ..backends.options import (
    BACKEND_CHOICES,
    RUNTIME_PRECISIONS,
    MemoryKind,
    OnnxRuntimeOptions,
    TensorRTOptions,
    usable_cores,
)
from ..engine_format import BatchProfile
from ..errors import InputError
from ._common import int_at_least

if TYPE_CHECKING:
    from ..detector import Detector
    from ..engine_recipe import EngineBuildOptions


def _batch_arg(text: str) -> BatchProfile:
    try:
        return BatchProfile.parse(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_engine_arguments(parser: argparse.ArgumentParser, batch_flag: str = "--batch") -> None:
    """The TensorRT engine build flags (a group titled "TensorRT engine build").

    Args:
        parser: the command's parser.
        batch_flag: name of the profile flag; rtdetr-detect/bench already use ``--batch`` for
            images per call and pass ``"--engine-batch"`` (the value lands in ``args.engine_batch``).
    """
    from ..engine_recipe import DEFAULT_BATCH, DEFAULT_FP32_LAYERS

    g = parser.add_argument_group("TensorRT engine build", "how engines are built on the device")
    g.add_argument(
        batch_flag,
        dest="engine_batch",
        type=_batch_arg,
        default=None,
        metavar="MIN,OPT,MAX",
        help=f"batch optimisation profile, or N for a static batch (default {DEFAULT_BATCH})",
    )
    g.add_argument(
        "--workspace",
        dest="workspace_mib",
        type=int,
        default=None,
        metavar="MiB",
        help="builder workspace limit in MiB (default: TensorRT's, the device memory)",
    )
    g.add_argument(
        "--timing-cache",
        default=None,
        metavar="FILE",
        help="load and save the builder timing cache here (bundles keep one in engines/)",
    )
    g.add_argument(
        "--builder-opt-level",
        dest="builder_optimization_level",
        type=int,
        default=None,
        choices=range(6),
        metavar="0-5",
        help="builder optimisation level (TensorRT default 3)",
    )
    g.add_argument(
        "--dla-core",
        type=int,
        default=None,
        metavar="N",
        help="build for DLA core N with GPU fallback (Jetson Orin; fp16 with a static --batch N; TensorRT 8.6, "
        "10.0-10.7, 11.4.x)",
    )
    g.add_argument(
        "--fp32-layers",
        default=None,
        metavar="LIST",
        help="comma list of ONNX op types or node-name globs pinned to FP32 where fp16/int8 come from "
        f"builder flags (TensorRT 8.6, DLA) (default {','.join(DEFAULT_FP32_LAYERS)}; 'none' for none)",
    )


def engine_build_options(args: argparse.Namespace) -> EngineBuildOptions:
    """:class:`EngineBuildOptions` from :func:`add_engine_arguments`' flags."""
    from ..engine_recipe import DEFAULT_FP32_LAYERS, EngineBuildOptions

    fp32: tuple[str, ...] = DEFAULT_FP32_LAYERS
    if args.fp32_layers is not None:
        text = args.fp32_layers.strip()
        fp32 = () if text.lower() in ("", "none") else tuple(p.strip() for p in text.split(",") if p.strip())
    defaults = EngineBuildOptions()
    return EngineBuildOptions(
        batch=args.engine_batch or defaults.batch,
        workspace_mib=args.workspace_mib,
        timing_cache=args.timing_cache,
        builder_optimization_level=args.builder_optimization_level,
        dla_core=args.dla_core,
        fp32_layers=fp32,
    )


def add_tensorrt_arguments(parser: argparse.ArgumentParser) -> None:
    """How a TensorRT engine runs: device, CUDA graphs, memory kind."""
    d = TensorRTOptions()
    g = parser.add_argument_group("TensorRT runtime")
    g.add_argument("--device", type=int, default=d.device, help=f"CUDA device index (default {d.device})")
    g.add_argument(
        "--cuda-graph",
        action="store_true",
        help="capture inference in CUDA graphs (static shapes; saves launch overhead)",
    )
    g.add_argument(
        "--memory",
        default=d.memory,
        choices=get_args(MemoryKind),
        help="input/output memory: mapped (zero-copy, Jetson), pinned, or auto (default)",
    )


def tensorrt_options(args: argparse.Namespace) -> TensorRTOptions:
    return TensorRTOptions(device=args.device, cuda_graph=args.cuda_graph, memory=args.memory)


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """--backend, --precision, ONNX Runtime threads, the TensorRT runtime and build flags.

    For commands that run a Detector; their ``--batch`` means images per call, so the engine
    profile is ``--engine-batch``.
    """
    parser.add_argument(
        "--backend",
        default="auto",
        choices=BACKEND_CHOICES,
        help="auto: TensorRT where it and a GPU are present, else ONNX Runtime",
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=RUNTIME_PRECISIONS,
        help="bundle artifact to run (auto: the bundle's default)",
    )
    parser.add_argument(
        "--threads",
        type=int_at_least(1, usable_cores()),
        default=None,
        help=f"ONNX Runtime (or, for a PyTorch folder, torch) intra-op threads, at most the {usable_cores()} "
        "usable cores (default: all cores)",
    )
    add_tensorrt_arguments(parser)
    add_engine_arguments(parser, batch_flag="--engine-batch")


def open_detector(
    args: argparse.Namespace,
    model: str | Path,
    conf: float = 0.3,
    classes: list[int | str] | None = None,
    max_det: int = 300,
    max_batch: int | None = None,
    clip: bool = True,
    all_labels: bool = False,
) -> Detector:
    """A Detector from :func:`add_runtime_arguments`' flags; bundle engines are built on first use."""
    from ..detector import Detector
    from ..engine import BundleEngines

    return Detector(
        model,
        conf=conf,
        classes=classes,
        max_det=max_det,
        clip=clip,
        all_labels=all_labels,
        backend=args.backend,
        precision=args.precision,
        max_batch=max_batch,
        onnxruntime=OnnxRuntimeOptions(threads=args.threads),
        tensorrt=tensorrt_options(args),
        engines=BundleEngines(engine_build_options(args)),
    )
