"""The DeepStream parser against the Detector, on real ONNX Runtime outputs of the reference model.

``nvdsparsebbox_rtdetr.cpp`` is compiled with g++ against declarations of DeepStream's parser
interface written from NVIDIA's documented API (``include/``, each type citing its page) and run
by ``harness.cpp`` as nvinfer runs it: once per frame, on that frame's slice of each output. Its
objects must be the Detector's detections in network-input pixels: same count, same labels,
boxes within 0.01 px, scores within 1e-6, on 16 images, at batch 1 and 4, with per-class
thresholds, for float32 and float16 outputs and int32 and int64 labels. A bad layer set returns
false without crashing. Deliberately broken parsers (boxes not scaled to network pixels, the
per-class threshold ignored, int64 labels read as int32) fail the same comparison.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from rtdetr_edge import Detector
from rtdetr_edge.bundle import Bundle
from rtdetr_edge.postprocess import PostprocessOptions, from_topk
from rtdetr_edge.preprocess import Preprocessor

HERE = Path(__file__).resolve().parent
PARSER = HERE.parents[1] / "rtdetr_edge" / "deepstream" / "parser" / "nvdsparsebbox_rtdetr.cpp"
SAMPLES = HERE.parents[1] / "samples" / "images"
BOX_TOL_PX = 0.01
NON_SQUARE = (320, 200)  # a network size the parser is told in the broken-parser checks
# per-class thresholds: different for every class, so a parser using one threshold is caught
THRESHOLDS = (0.3, 0.45, 0.25, 0.5, 0.35, 0.4)

# CI (.ci/run) installs g++ and sets RTDETR_REQUIRE_DEEPSTREAM_TOOLS: never skipped there
pytestmark = pytest.mark.skipif(
    shutil.which("g++") is None and not os.environ.get("RTDETR_REQUIRE_DEEPSTREAM_TOOLS"), reason="needs g++"
)


def compile_harness(source: Path, out: Path) -> Path:
    """The harness linked with ``source`` (a parser .cpp), warnings as errors."""
    cmd = ["g++", "-std=c++14", "-O1", "-Wall", "-Wextra", "-Werror", f"-I{HERE / 'include'}"]
    subprocess.run([*cmd, str(source), str(HERE / "harness.cpp"), "-o", str(out)], check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_harness(PARSER, tmp_path_factory.mktemp("harness") / "harness")


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Path]:
    """A harness built from the parser with ``old`` replaced by ``new`` (a deliberate bug)."""
    folder = tmp_path_factory.mktemp("broken")

    def make(old: str, new: str) -> Path:
        text = PARSER.read_text()
        assert old in text, old
        src = folder / f"parser_{abs(hash((old, new)))}.cpp"
        src.write_text(text.replace(old, new))
        return compile_harness(src, src.with_suffix(""))

    return make


@pytest.fixture(scope="module")
def images(shapes_data: Path) -> list[np.ndarray]:
    """4 shipped sample scenes + 12 generated ones (different sizes: boxes are rescaled per image)."""
    folder = (shapes_data.parent if shapes_data.is_file() else shapes_data) / "images"
    paths = sorted(SAMPLES.glob("*.jpg")) + sorted(folder.glob("*.jpg"))[:12]
    out = [im for p in paths if (im := cv2.imread(str(p))) is not None]
    assert len(out) == 16
    return out


@pytest.fixture(scope="module")
def raw(reference_bundle: Path, images: list[np.ndarray]) -> Callable[[int], list[dict[str, np.ndarray]]]:
    """ONNX Runtime outputs of the reference model in batches of ``n`` (the Detector's preprocessing)."""
    import onnxruntime as ort

    bundle = Bundle(reference_bundle)
    session = ort.InferenceSession(str(bundle.onnx_path("fp32")), providers=["CPUExecutionProvider"])
    pre = Preprocessor(bundle.contract.preprocessing)
    names = list(bundle.contract.output_names)

    def run(n: int) -> list[dict[str, np.ndarray]]:
        out = []
        for i in range(0, len(images), n):
            x, _ = pre.batch(images[i : i + n])
            out.append(dict(zip(names, session.run(names, {bundle.contract.input_name: x}), strict=True)))
        return out

    return run


def run_parser(
    exe: Path, tmp: Path, outputs: dict[str, np.ndarray], net: tuple[int, int], layers: list[str] | None = None
) -> list[list[tuple[int, float, float, float, float, float]] | None]:
    """Per frame: the parser's objects (class, x1, y1, x2, y2, score) or None where it returned false."""
    args = []
    for name, arr in outputs.items():
        dtype = {np.float32: "float", np.float16: "half", np.int32: "int32", np.int64: "int64", np.int8: "int8"}[
            arr.dtype.type
        ]
        f = tmp / f"{name}.bin"
        np.ascontiguousarray(arr).tofile(f)
        args.append(f"{name}:{dtype}:{'x'.join(str(d) for d in arr.shape[1:])}:{f}")
    if layers is not None:
        args = layers
    batch = next(iter(outputs.values())).shape[0]
    cmd = [str(exe), str(net[0]), str(net[1]), str(len(THRESHOLDS)), ",".join(map(str, THRESHOLDS)), str(batch)]
    res = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr  # never a crash, whatever the layers
    frames: list[list[tuple[int, float, float, float, float, float]] | None] = []
    for line in res.stdout.splitlines():
        parts = line.split()
        if parts[0] == "frame":
            frames.append([] if parts[2] == "ok" else None)
            continue
        b, c, left, top, w, h, s = int(parts[0]), int(parts[1]), *map(float, parts[2:])
        frame = frames[b]
        assert frame is not None
        frame.append((c, left, top, left + w, top + h, s))
    assert len(frames) == batch
    return frames


def expected(
    bundle: Bundle, outputs: dict[str, np.ndarray], sizes: list[tuple[int, int]], net: tuple[int, int]
) -> list[list[tuple[int, float, float, float, float, float]]]:
    """The Detector's detections in network-input pixels with per-class thresholds.

    rtdetr-edge's top-k postprocessing (the Detector's) on ``outputs`` as given (float16-rounded
    ones too), boxes from image pixels to ``net`` (width, height) pixels.
    """
    # one label per query (its best), as the Detector shows by default and the parser writes
    opts = PostprocessOptions(conf=min(THRESHOLDS), max_det=10_000, all_labels=False, clip=True)
    dets = from_topk(
        outputs["scores"].astype(np.float32),
        outputs["labels"].astype(np.int64),
        outputs["boxes"].astype(np.float32),
        sizes,
        opts,
    )
    return [to_network(d, size, net) for d, size in zip(dets, sizes, strict=True)]


def to_network(d, size: tuple[int, int], net: tuple[int, int]) -> list[tuple[int, float, float, float, float, float]]:
    """A Detector's detections of an image of ``size`` in ``net`` pixels, per-class thresholds applied."""
    scale = np.array([net[0] / size[0], net[1] / size[1]] * 2)
    keep = d.scores >= np.asarray(THRESHOLDS)[d.class_ids]
    return [
        (int(c), *(xy * scale).tolist(), float(s))
        for c, xy, s in zip(d.class_ids[keep], d.xyxy[keep], d.scores[keep], strict=True)
    ]


def assert_same(got: list, want: list) -> None:
    for frame, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g is not None, f"frame {frame}: the parser returned false"
        assert len(g) == len(w), f"frame {frame}: {len(g)} objects, the Detector has {len(w)}"
        gs, ws = sorted(g, key=lambda o: (o[0], -o[5], o[1])), sorted(w, key=lambda o: (o[0], -o[5], o[1]))
        assert [o[0] for o in gs] == [o[0] for o in ws], f"frame {frame}: labels differ"
        box = np.abs(np.array([o[1:5] for o in gs]) - np.array([o[1:5] for o in ws])) if gs else np.zeros((0, 4))
        assert box.size == 0 or box.max() <= BOX_TOL_PX, f"frame {frame}: boxes differ by {box.max():.4f} px"
        score = np.abs(np.array([o[5] for o in gs]) - np.array([o[5] for o in ws]))
        assert score.size == 0 or score.max() <= 1e-6, f"frame {frame}: scores differ"


def compare(exe: Path, tmp: Path, bundle: Bundle, raw_batches, images, batch: int, scores_t, labels_t, net=None):
    """Run the parser on every batch and compare with the Detector; returns the number of objects.

    ``net``: the network size the parser is told (default the model's input size; a non-square
    one shows width/height mix-ups on the square reference model).
    """
    pre = bundle.contract.preprocessing
    net = net or (pre.width, pre.height)
    total = 0
    with Detector(bundle.path, conf=min(THRESHOLDS), max_det=10_000) as det:
        for i, outputs in enumerate(raw_batches):
            chunk = images[i * batch : (i + 1) * batch]
            sizes = [(im.shape[1], im.shape[0]) for im in chunk]
            cast = {
                "scores": outputs["scores"].astype(scores_t),
                "labels": outputs["labels"].astype(labels_t),
                "boxes": outputs["boxes"].astype(scores_t),
            }
            want = expected(bundle, cast, sizes, net)
            if scores_t == np.float32:  # float32 outputs: the Detector's own call, end to end
                want = [to_network(d, size, net) for d, size in zip(det(chunk), sizes, strict=True)]
            got = run_parser(exe, tmp, cast, net)
            assert_same(got, want)
            total += sum(len(w) for w in want)
    return total


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize(
    ("scores_t", "labels_t"),
    [(np.float32, np.int32), (np.float16, np.int64), (np.float32, np.int64), (np.float16, np.int32)],
    ids=["f32-i32", "f16-i64", "f32-i64", "f16-i32"],
)
def test_parser_objects_are_the_detectors(
    harness: Path, raw, images, reference_bundle: Path, tmp_path: Path, batch: int, scores_t, labels_t
) -> None:
    bundle = Bundle(reference_bundle)
    total = compare(harness, tmp_path, bundle, raw(batch), images, batch, scores_t, labels_t)
    assert total >= 30, f"too few detections ({total}) for the comparison to mean anything"


@pytest.mark.parametrize(
    ("old", "new", "what"),
    [
        ("clamp(box[0] * net_w, net_w)", "clamp(box[0], net_w)", "boxes not scaled to network pixels"),
        ("clamp(box[2] * net_w, net_w)", "clamp(box[2] * net_h, net_w)", "width scaled by height"),
        ("        if (seen) {", "        if (seen && k == 0) {", "every label of a query kept"),
        ("return v < 0.0f ? 0.0f : (v > hi ? hi : v);", "return hi >= 0.0f ? v : v;", "boxes not clipped"),
        (
            "if (!(score >= thresholds[static_cast<size_t>(label)])) {",
            "if (!(score >= thresholds[0])) {",
            "one threshold",
        ),
        (
            "out = static_cast<const int64_t*>(layer.buffer)[i];",
            "out = static_cast<const int32_t*>(layer.buffer)[i];",
            "int64 read as int32",
        ),
        (
            "bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);",
            "bits = sign | ((exponent + 111u) << 23) | (mantissa << 13);",
            "bad half",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and " " in v and len(v) < 40 else "",
)
def test_a_broken_parser_fails(
    broken, raw, images, reference_bundle: Path, tmp_path: Path, old: str, new: str, what: str
) -> None:
    bundle = Bundle(reference_bundle)
    exe = broken(old, new)
    labels_t = np.int64 if "int64" in what else np.int32
    scores_t = np.float16 if "half" in what else np.float32
    with pytest.raises(AssertionError):
        compare(exe, tmp_path, bundle, raw(4), images, 4, scores_t, labels_t, NON_SQUARE)


def test_the_good_parser_passes_the_broken_parsers_check(
    harness: Path, raw, images, reference_bundle: Path, tmp_path: Path
) -> None:
    """What the broken parsers fail on, the parser passes (so they fail for their bug)."""
    for scores_t, labels_t in ((np.float32, np.int64), (np.float16, np.int32)):
        compare(harness, tmp_path, Bundle(reference_bundle), raw(4), images, 4, scores_t, labels_t, NON_SQUARE)


BAD_LAYER_SETS: dict[str, Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]] = {
    "no boxes": lambda o: {k: v for k, v in o.items() if k != "boxes"},
    "no scores": lambda o: {k: v for k, v in o.items() if k != "scores"},
    "no labels": lambda o: {k: v for k, v in o.items() if k != "labels"},
    "boxes renamed": lambda o: {("bbox" if k == "boxes" else k): v for k, v in o.items()},
    "boxes [K,5]": lambda o: {**o, "boxes": np.concatenate([o["boxes"], o["boxes"][..., :1]], axis=-1)},
    "boxes flat": lambda o: {**o, "boxes": o["boxes"].reshape(o["boxes"].shape[0], -1)},
    "scores [K/2]": lambda o: {**o, "scores": o["scores"][:, : o["scores"].shape[1] // 2]},
    "labels [K/2]": lambda o: {**o, "labels": o["labels"][:, : o["labels"].shape[1] // 2]},
    "scores int32": lambda o: {**o, "scores": o["scores"].astype(np.int32)},
    "labels float": lambda o: {**o, "labels": o["labels"].astype(np.float32)},
    "boxes int8": lambda o: {**o, "boxes": o["boxes"].astype(np.int8)},
}


@pytest.mark.parametrize("case", list(BAD_LAYER_SETS))
def test_a_bad_layer_set_returns_false(harness: Path, raw, tmp_path: Path, case: str) -> None:
    outputs = BAD_LAYER_SETS[case](raw(4)[0])
    assert run_parser(harness, tmp_path, outputs, (256, 256)) == [None] * 4


def test_the_parser_builds_as_a_shared_library(tmp_path: Path) -> None:
    """As the Makefile builds it (-shared -fPIC, no undefined symbols), exporting the configured name."""
    lib = tmp_path / "libnvdsinfer_custom_impl_rtdetr.so"
    cmd = ["g++", "-std=c++14", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-Wl,--no-undefined"]
    subprocess.run([*cmd, f"-I{HERE / 'include'}", str(PARSER), "-o", str(lib)], check=True, capture_output=True)
    nm = shutil.which("nm")
    if nm:
        symbols = subprocess.run([nm, "-D", "--defined-only", str(lib)], capture_output=True, text=True).stdout
        assert " NvDsInferParseRtdetr\n" in symbols + "\n" or "NvDsInferParseRtdetr" in symbols.split()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_the_makefile_builds_the_library(tmp_path: Path) -> None:
    """The shipped Makefile, with DeepStream's include folder laid out as an install has it (our declarations)."""
    ds_root = tmp_path / "deepstream-9.2"
    shutil.copytree(HERE / "include", ds_root / "sources" / "includes")
    work = tmp_path / "ds"
    work.mkdir()
    for name in ("nvdsparsebbox_rtdetr.cpp", "Makefile"):
        shutil.copy(PARSER.parent / name, work / name)
    res = subprocess.run(["make", "CUDA_VER=12.6", f"DS_ROOT={ds_root}"], cwd=work, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (work / "libnvdsinfer_custom_impl_rtdetr.so").is_file()
    res = subprocess.run(["make"], cwd=work, capture_output=True, text=True)  # CUDA_VER is required, as in NVIDIA's
    assert res.returncode != 0 and "CUDA_VER is not set" in res.stdout + res.stderr
