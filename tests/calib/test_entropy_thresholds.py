"""INT8 calibration: thresholds, caches, subsets, batch stream, bundles, bad input (issue 5)."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import onnx
import pytest

from rtdetr_edge.bundle import Bundle
from rtdetr_edge.calib import trt_cache
from rtdetr_edge.calib.entropy import FINE_BINS, StreamingHistogram, entropy_amax, kl_threshold_bin, percentile_amax
from rtdetr_edge.calib.ranges import CalibrationRanges
from rtdetr_edge.calib.stream import CalibrationBatches
from rtdetr_edge.calib.subset import resolve_source, select_subset
from rtdetr_edge.errors import CalibrationError, InputError


def _brute_kl_bin(h: np.ndarray, nq: int = 128) -> int:
    """The GTC-2017 / pytorch-quantization loop, written plainly, as the reference."""
    h = h.astype(np.float64)
    h[0] = h[1]
    best = (np.inf, len(h))
    for i in range(nq, len(h) + 1):
        p = h[:i].copy()
        p[i - 1] += h[i:].sum()
        level = np.digitize(np.arange(i), np.linspace(0, i, nq + 1)) - 1  # pytorch-quantization's levels
        q = np.zeros(i)
        for lv in range(nq):
            idx = (level == lv) & (h[:i] > 0)
            if idx.any():
                q[idx] = h[:i][level == lv].sum() / idx.sum()
        p, q = p / p.sum(), q / q.sum()
        with np.errstate(divide="ignore"):
            kl = float((p[p > 0] * np.log(p[p > 0] / q[p > 0])).sum())
        if kl <= best[0] + 1e-12:
            best = (min(kl, best[0]), i)
    return best[1]


@pytest.mark.parametrize("seed", range(4))
def test_vectorised_kl_search_equals_the_plain_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = [np.abs(rng.standard_t(3, 30000)), np.abs(rng.normal(size=30000)) ** 1.5, rng.exponential(size=4000),
         np.abs(rng.laplace(size=30000))][seed]
    hist, _ = np.histogram(x, bins=2048, range=(0, x.max()))
    assert kl_threshold_bin(hist) == _brute_kl_bin(hist)


def test_known_tensorrt_result_for_a_softmax_output() -> None:
    """A confident classifier's softmax (max exactly 1.0): TensorRT's caches hold 3c010a14."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4000, 20)).astype(np.float32)
    logits[np.arange(4000), rng.integers(0, 20, 4000)] += rng.uniform(4, 30, 4000).astype(np.float32)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    assert probs.max() == np.float32(1.0)
    h = StreamingHistogram()
    for chunk in np.array_split(probs, 7):
        h.update(chunk)
    amax = entropy_amax(h)
    assert amax == pytest.approx(2048.5 / 2048)
    assert trt_cache.scale_hex(amax) == "3c010a14"


def test_streaming_histogram_matches_numpy_and_grows_exactly() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=100_000).astype(np.float32)
    one = StreamingHistogram()
    one.update(x)
    bins, width = one.tensorrt_bins()
    ref, _ = np.histogram(np.abs(x), bins=2048, range=(0, np.abs(x).max()))
    assert width == pytest.approx(np.abs(x).max() / 2048)
    assert np.abs(bins - ref).sum() <= 2  # float edge rounding only
    grown = StreamingHistogram()
    grown.update(x[:100] * 0.01)  # tiny first batch: the range doubles many times later
    grown.update(x)
    assert grown.counts.sum() == 100_100 and grown.range >= np.abs(x).max()
    assert entropy_amax(grown) == pytest.approx(entropy_amax(one), rel=0.02)
    zeros = StreamingHistogram()
    zeros.update(np.zeros(10))
    assert entropy_amax(zeros) == 0.0 and zeros.counts[0] == 10 and FINE_BINS == zeros.counts.size


def test_sampled_histogram_keeps_max_and_thresholds() -> None:
    """Histogramming a strided sample (the default) moves the range little; the max sees all."""
    rng = np.random.default_rng(2)
    x = (rng.standard_t(4, size=(8, 32, 64, 64)) * rng.uniform(0.5, 2, (1, 32, 1, 1))).astype(np.float32)
    full, sampled = StreamingHistogram(), StreamingHistogram()
    for batch in np.array_split(x, 4):
        full.update(batch)
        sampled.update(batch, sample_cap=65536)
    assert sampled.max == full.max == np.abs(x).max()
    assert sampled.seen == x.size and 4 * 65536 >= sampled.histogrammed > 0.5 * 4 * 65536  # prime stride
    assert entropy_amax(sampled) == pytest.approx(entropy_amax(full), rel=0.05)
    assert percentile_amax(sampled) == pytest.approx(percentile_amax(full), rel=0.1)


def test_int8_scope_is_what_int8_layers_read(int8_bundle: Path) -> None:
    from rtdetr_edge.calib.collect import ActivationCollector, calibration_tensors
    from rtdetr_edge.calib.qdq import quantizable_nodes

    b = Bundle(int8_bundle)
    model = onnx.load(str(b.onnx_path("fp32")))
    consts = {i.name for i in model.graph.initializer}
    wanted = {"images"} | {i for n in quantizable_nodes(model) for i in n.input if i and i not in consts}
    col = ActivationCollector(b.onnx_path("fp32"))
    assert col.tensors[0] == "images" and set(col.tensors) == wanted & set(calibration_tensors(model))
    assert set(CalibrationRanges.load(b.file(b.artifact("int8")["ranges"])).ranges) == set(col.tensors)


def test_percentile_range() -> None:
    x = np.linspace(-10, 10, 2_000_001, dtype=np.float32)
    h = StreamingHistogram()
    h.update(x)
    assert percentile_amax(h, 99.0) == pytest.approx(9.9, abs=0.01)
    assert percentile_amax(h, 100.0) == pytest.approx(10.0, abs=1e-6)


def test_rearranged_tensors_take_their_source_range(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    from rtdetr_edge.calib.collect import ActivationCollector

    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Reshape", ["r", "shape"], ["flat"]),
             helper.make_node("Transpose", ["flat"], ["t"], perm=[1, 0]),
             helper.make_node("Mul", ["t", "two"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [12, 2])],
                              [helper.make_tensor("shape", TensorProto.INT64, [2], [2, 12]),
                               helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    col = ActivationCollector(path, scope="all")
    assert col.aliases == {"flat": "r", "t": "r"} and set(col.histograms) == {"x", "r", "y"}
    col.collect([{"x": np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 5}])
    ranges = col.ranges("max")
    assert list(ranges) == col.tensors and ranges["t"] == ranges["flat"] == ranges["r"] == 18.0
    assert ranges["y"] == 36.0 and ranges["x"] == 18.0


@pytest.mark.parametrize("version, code", [("8.6.1", 8601), ("8.5.2", 8502), ("10.3.0", 100300),
                                           ("10.13.0.35", 101300)])
def test_cache_header_version_codes(version: str, code: int) -> None:
    text = trt_cache.write_cache({"images": 1.0, "x": 0.5}, version)
    assert text.splitlines()[0] == f"TRT-{code}-EntropyCalibration2"
    parsed_code, algorithm, ranges = trt_cache.read_cache(text)
    assert (parsed_code, algorithm) == (code, "EntropyCalibration2")
    assert ranges["x"] == pytest.approx(0.5, rel=1e-6)


def test_cache_encoding_details() -> None:
    line = trt_cache.write_cache({"t": 127.0}, "10.3.0").splitlines()[1]
    assert line == "t: " + struct.pack(">f", 1.0).hex() == "t: 3f800000"
    zero = trt_cache.read_cache(trt_cache.write_cache({"z": 0.0}, "10.3.0"))[2]["z"]
    assert zero > 0  # floored: zero scales break TensorRT builds
    with pytest.raises(CalibrationError, match="removed in 11"):
        trt_cache.write_cache({"t": 1.0}, "11.4.1")
    with pytest.raises(CalibrationError, match="not a TensorRT calibration cache"):
        trt_cache.read_cache("hello\n")


def test_subset_is_stratified_deterministic_and_excludable(shapes_data: Path) -> None:
    src = resolve_source(str(shapes_data))
    a, b = select_subset(src, 6, seed=3), select_subset(src, 6, seed=3)
    assert a.ids == b.ids and a.manifest()["sha256"] == b.manifest()["sha256"]
    assert select_subset(src, 6, seed=4).manifest()["sha256"] != a.manifest()["sha256"]
    cov = a.coverage
    assert cov["categories_covered"] == cov["categories_in_source"] and cov["stratified"]
    rest = select_subset(src, 6, seed=3, exclude_ids=set(a.ids))
    assert not set(rest.ids) & set(a.ids)
    with pytest.raises(CalibrationError, match="fewer than --calib-size 100"):
        select_subset(src, 100)


@pytest.mark.parametrize("spec, message", [
    ("nothing/here", "not coco_val/coco_train, an existing folder"),
    ("coco_test", "not coco_val/coco_train"),
])
def test_calib_spec_naming_nothing(spec: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        resolve_source(spec)


def test_folder_source_and_empty_folder(shapes_data: Path, tmp_path: Path) -> None:
    src = resolve_source(str(shapes_data.parent / "images"))
    assert len(src) == 12 and src.dataset is None
    assert not select_subset(src, 5).coverage["stratified"]
    with pytest.raises(InputError, match="the folder has no images"):
        resolve_source(str(tmp_path))


def test_batch_stream_uses_runtime_preprocessing_and_caches(tiny_bundle: Path, shapes_data: Path,
                                                            tmp_path: Path) -> None:
    from rtdetr_edge.images import read_image
    from rtdetr_edge.preprocess import Preprocessor

    contract = Bundle(tiny_bundle).contract
    images = sorted((shapes_data.parent / "images").iterdir())[:5]
    first = CalibrationBatches(images, contract, batch_size=2, cache_dir=tmp_path, manifest_sha256="m")
    batches = [b["images"] for b in first]
    assert [b.shape[0] for b in batches] == [2, 2, 1] and not first.skipped
    expected, _ = Preprocessor(contract.preprocessing).batch([read_image(p) for p in images[:2]])
    assert np.array_equal(batches[0], expected)
    again = CalibrationBatches(images, contract, batch_size=2, cache_dir=tmp_path, manifest_sha256="m")
    assert again.cached
    assert all(np.array_equal(x["images"], y) for x, y in zip(again, batches))
    other = CalibrationBatches(images, contract, batch_size=3, cache_dir=tmp_path, manifest_sha256="m")
    assert not other.cached  # batch size is part of the key


@pytest.fixture(scope="module")
def int8_bundle(tiny_model_dir: Path, shapes_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rtdetr_edge.build import BuildOptions, build

    out = tmp_path_factory.mktemp("int8") / "bundle"
    return build(tiny_model_dir, out, BuildOptions(precision="best", top_k=50, calib=str(shapes_data),
                                                   calib_size=8, no_calib_cache=True, check_images=4,
                                                   trt_cache_versions=("10.3.0", "8.6.1")))


def test_int8_bundle_holds_native_caches_for_onnx_names(int8_bundle: Path) -> None:
    b = Bundle(int8_bundle, verify_hashes=True)
    assert b.precisions == ["fp32", "fp16", "int8"] and b.metadata["default_precision"] == "int8"
    art = b.artifact("int8")
    ranges = CalibrationRanges.load(b.file(art["ranges"]))
    text = b.file(art["tensorrt_caches"]["10.3.0"]).read_text()
    lines = text.splitlines()
    assert lines[0] == "TRT-100300-EntropyCalibration2"
    assert len(lines) - 1 == len(ranges.ranges)
    names = [ln.rsplit(": ", 1)[0] for ln in lines[1:]]
    assert names[0] == "images"
    model = onnx.load(str(b.onnx_path("fp32")))
    values = {o for n in model.graph.node for o in n.output} | {i.name for i in model.graph.input}
    assert set(names) <= values
    assert b.file(art["tensorrt_caches"]["8.6.1"]).read_text().startswith("TRT-8601-EntropyCalibration2\n")
    manifest = json.loads(b.file(art["manifest"]).read_text())
    assert manifest["size"] == 8 and manifest["sha256"] == ranges.manifest_sha256
    # --calib-algorithm auto: the tiny model's classes are not the set's, so nothing can score it
    choice = json.loads((int8_bundle / "report.json").read_text())["calibration"]["algorithm_choice"]
    assert choice["chosen"] == ranges.algorithm == "entropy2" and "match the model" in choice["reason"]


def test_qdq_model_is_tensorrt_shaped(int8_bundle: Path) -> None:
    b = Bundle(int8_bundle)
    q = onnx.load(str(b.onnx_path("int8")))
    zps = [onnx.numpy_helper.to_array(t) for t in q.graph.initializer if t.name.endswith("zero_point")]
    assert zps and all(z.dtype == np.int8 and not z.any() for z in zps)
    consumers = {}
    for n in q.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n.op_type)
    dq_targets = {op for n in q.graph.node if n.op_type == "DequantizeLinear" for op in consumers.get(n.output[0], [])}
    assert dq_targets <= {"Conv", "MatMul", "Gemm"}
    excluded = b.artifact("int8")["excluded_nodes"]
    assert any("class_embed" in n for n in excluded) and any("sampling_offsets" in n for n in excluded)
    assert b.metadata["accuracy"].get("skipped")  # the tiny model's classes are not the data's


def test_every_precision_detects(int8_bundle: Path, scene: np.ndarray) -> None:
    from rtdetr_edge import Detector

    for precision in ("fp32", "fp16", "int8"):
        with Detector(int8_bundle, precision=precision, conf=0.0, max_det=5) as det:
            assert len(det(scene)) == 5


def test_missing_and_corrupt_calibration_images(tiny_bundle: Path, shapes_data: Path, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    from rtdetr_edge.build import BuildOptions, build

    data = tmp_path / "data"
    shutil.copytree(shapes_data.parent, data)
    images = sorted((data / "images").iterdir())
    images[0].unlink()  # missing: warned and skipped
    images[1].write_bytes(images[2].read_bytes()[:300])  # corrupt: warned and skipped
    out = build(tiny_bundle, tmp_path / "b", BuildOptions(precision="int8", calib=str(data / "annotations.json"),
                                                         calib_size=10, no_calib_cache=True, check_images=0))
    assert "1 of 12 listed images are missing" in caplog.text
    report = json.loads((out / "report.json").read_text())
    assert report["calibration"]["images"] + report["calibration"]["skipped"] == 10
    for img in images[2:9]:
        img.unlink()
    with pytest.raises(CalibrationError, match="only 4 images available, fewer than --calib-size 10"):
        build(tiny_bundle, tmp_path / "c", BuildOptions(precision="int8", calib=str(data / "annotations.json"),
                                                       calib_size=10, no_calib_cache=True))
    assert not (tmp_path / "c").exists()


def test_ctrl_c_during_calibration_leaves_nothing(tiny_bundle: Path, shapes_data: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from rtdetr_edge.build import BuildOptions, build
    from rtdetr_edge.calib import collect

    def interrupted(self, batch):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(collect.ActivationCollector, "_infer", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build(tiny_bundle, tmp_path / "out", BuildOptions(precision="int8", calib=str(shapes_data), calib_size=4,
                                                         calib_cache_dir=str(tmp_path / "cache")))
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] in (["cache"], [])
    assert not list((tmp_path / "cache").rglob("complete.json")) if (tmp_path / "cache").exists() else True


def test_adding_int8_to_an_existing_bundle_needs_no_torch(tiny_bundle: Path, shapes_data: Path,
                                                          tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'transformers'): raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from rtdetr_edge.build import BuildOptions, build\n"
        "build(sys.argv[1], sys.argv[2], BuildOptions(precision='int8', calib=sys.argv[3], calib_size=6,"
        " no_calib_cache=True, check_images=0))\n"
        "assert 'torch' not in sys.modules\n")
    out = tmp_path / "with_int8"
    proc = subprocess.run([sys.executable, "-c", code, str(tiny_bundle), str(out), str(shapes_data)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert Bundle(out).precisions == ["fp32", "int8"]
