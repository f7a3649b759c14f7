"""The DeepStream folder's configs, read with GLib's own key-file parser (GKeyFile, as nvinfer and
deepstream-app read them): every key is one DeepStream's own parsers accept (``keys.py`` cites each),
and the values agree with the bundle (classes, input size, precision, batch, files) and with the
engine recipe. A planted undocumented key, or a value that disagrees, fails the same checks."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import onnx
import pytest

from rtdetr_edge.bundle import Bundle
from rtdetr_edge.deepstream import DeepStreamOptions, write_deepstream
from rtdetr_edge.engine_format import BatchProfile
from rtdetr_edge.engine_recipe import EngineBuildOptions, bundle_graphs, recipe

from .keys import DEEPSTREAM_APP, NVINFER_CLASS_ATTRS, NVINFER_PROPERTY

if os.environ.get("RTDETR_REQUIRE_DEEPSTREAM_TOOLS"):  # CI (.ci/run) installs PyGObject: never skip there
    import gi
else:
    gi = pytest.importorskip("gi", reason="needs PyGObject (GLib's GKeyFile); .ci/run installs it")
gi.require_version("GLib", "2.0")
from gi.repository import GLib  # noqa: E402

NETWORK_MODE = {"fp32": 0, "int8": 1, "fp16": 2}


def load(path: Path) -> GLib.KeyFile:
    kf = GLib.KeyFile.new()
    kf.load_from_file(str(path), GLib.KeyFileFlags.NONE)  # raises GLib.Error on a malformed file
    return kf


def keys(kf: GLib.KeyFile) -> dict[str, dict[str, str]]:
    groups, _ = kf.get_groups()
    return {g: {k: kf.get_value(g, k) for k in kf.get_keys(g)[0]} for g in groups}


def undocumented_nvinfer(cfg: dict[str, dict[str, str]]) -> list[str]:
    bad = []
    for group, entries in cfg.items():
        allowed = NVINFER_PROPERTY if group == "property" else NVINFER_CLASS_ATTRS
        if group != "property" and not re.fullmatch(r"class-attrs-(all|\d+)", group):
            bad.append(f"[{group}]")
            continue
        bad += [f"[{group}] {k}" for k in entries if k not in allowed]
    return bad


def undocumented_app(cfg: dict[str, dict[str, str]]) -> list[str]:
    bad = []
    for group, entries in cfg.items():
        base = re.sub(r"\d+$", "", group) if re.fullmatch(r"(source|sink)\d+", group) else group
        allowed = DEEPSTREAM_APP.get(base)
        if allowed is None:
            bad.append(f"[{group}]")
            continue
        bad += [f"[{group}] {k}" for k in entries if k not in allowed]
    return bad


def disagreements(folder: Path, bundle: Bundle, precision: str, streams: int, conf: float) -> list[str]:
    """What in the folder's configs disagrees with the bundle, the options and the engine recipe."""
    c = bundle.contract
    pre = c.preprocessing
    infer = keys(load(folder / "config_infer_primary_rtdetr.txt"))
    app = keys(load(folder / "deepstream_app_config.txt"))
    p = infer["property"]
    want = {
        "num-detected-classes": str(c.num_classes),
        "infer-dims": f"3;{pre.height};{pre.width}",
        "batch-size": str(streams),
        "network-mode": str(NETWORK_MODE[precision]),
        "net-scale-factor": "1.0",
        "offsets": "0.0;0.0;0.0",
        "model-color-format": "0" if pre.channel_order == "RGB" else "1",
        "cluster-mode": "4",
        "maintain-aspect-ratio": "0",
        "output-blob-names": ";".join(c.output_names),
        "parse-bbox-func-name": "NvDsInferParseRtdetr",
        "custom-lib-path": "libnvdsinfer_custom_impl_rtdetr.so",
        "labelfile-path": "labels.txt",
    }
    bad = [f"{k}={p.get(k)!r}, expected {v!r}" for k, v in want.items() if p.get(k) != v]
    labels = (folder / p.get("labelfile-path", "labels.txt")).read_text().splitlines()
    if labels != list(c.class_names):
        bad.append(f"labels.txt {labels} != {list(c.class_names)}")
    for i in range(c.num_classes):
        got = infer.get(f"class-attrs-{i}", {}).get("pre-cluster-threshold")
        if got is None or float(got) != conf:
            bad.append(f"[class-attrs-{i}] pre-cluster-threshold={got}, expected {conf}")
    # the parser's exported name is the configured one
    if f'extern "C" bool {p.get("parse-bbox-func-name")}(' not in (folder / "nvdsparsebbox_rtdetr.cpp").read_text():
        bad.append("parse-bbox-func-name is not the parser's extern C function")
    # the onnx-file route: the DeepStream model's fp32 graph, input = the 0-255 image; pins are its nodes
    onnx_path = folder / p["onnx-file"]
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    if [i.name for i in graph.input] != ["image"] or [o.name for o in graph.output] != list(c.output_names):
        bad.append(f"onnx-file {p['onnx-file']}: inputs {[i.name for i in graph.input]}")
    nodes = {n.name for n in graph.node}
    for item in filter(None, p.get("layer-device-precision", "").split(";")):
        name, prec, device = item.rsplit(":", 2)
        if name not in nodes or (prec, device) != ("fp32", "gpu"):
            bad.append(f"layer-device-precision {item}: not an fp32-on-GPU pin of a node of onnx-file")
    calib = p.get("int8-calib-file")
    if precision == "int8":
        if calib is None or not (folder / calib).read_text().startswith("TRT-100300-EntropyCalibration2"):
            bad.append(f"int8-calib-file={calib}: expected the TensorRT 10.3.0 native cache")
    elif calib is not None:
        bad.append(f"int8-calib-file set for {precision}")
    # the engine: the recipe's for the DeepStream model folder, its batch profile covering the streams
    ds = Bundle(folder / "model")
    r = recipe(bundle_graphs(ds), precision, "10.3.0", EngineBuildOptions(batch=BatchProfile(1, streams, streams)))
    marker = json.loads((folder / "rtdetr-deepstream.json").read_text())
    if marker["engine"]["recipe"] != r.decision() or r.profile.max < streams:
        bad.append("model-engine-file's recipe is not today's recipe for the DeepStream model")
    if p.get("model-engine-file") != marker["engine"]["file"]:
        bad.append("model-engine-file is not the engine the README builds")
    if app["streammux"].get("batch-size") != str(streams) or app["primary-gie"].get("batch-size") != str(streams):
        bad.append("nvstreammux / primary-gie batch-size != streams")
    if app["source0"].get("num-sources") != str(streams) or app["primary-gie"].get("config-file") != (
        "config_infer_primary_rtdetr.txt"
    ):
        bad.append("source0 num-sources / primary-gie config-file")
    if app["tracker"].get("enable") != "1":
        bad.append("no tracker")
    return bad


@pytest.fixture(scope="module")
def folders(best_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], Path]:
    root = tmp_path_factory.mktemp("ds")
    out = {}
    for precision, streams in (("int8", 4), ("fp16", 1), ("fp32", 2)):
        out[(precision, streams)] = write_deepstream(
            best_bundle,
            root / f"{precision}{streams}",
            DeepStreamOptions(precision=precision, streams=streams, conf=0.4),
        )
    return out


@pytest.mark.parametrize(("precision", "streams"), [("int8", 4), ("fp16", 1), ("fp32", 2)])
def test_configs_are_documented_and_agree(folders, best_bundle: Path, precision: str, streams: int) -> None:
    folder = folders[(precision, streams)]
    infer = keys(load(folder / "config_infer_primary_rtdetr.txt"))
    app = keys(load(folder / "deepstream_app_config.txt"))
    assert not undocumented_nvinfer(infer)
    assert not undocumented_app(app)
    assert not disagreements(folder, Bundle(best_bundle), precision, streams, 0.4)
    if precision != "fp32":  # the recipe's FP32 pins reach nvinfer's own weakly typed build
        assert infer["property"]["layer-device-precision"].count(":fp32:gpu") >= 3


def _edit(src: Path, dst: Path, old: str, new: str) -> Path:
    shutil.copytree(src, dst)
    cfg = dst / "config_infer_primary_rtdetr.txt"
    text = cfg.read_text()
    assert old in text
    cfg.write_text(text.replace(old, new, 1))
    return dst


@pytest.mark.parametrize(
    ("old", "new", "found"),
    [
        ("cluster-mode=4", "cluster-mode=4\nnet-scale=1.0", "undocumented"),  # a key DeepStream does not have
        ("[class-attrs-all]", "[class-attributes-all]", "undocumented"),
        ("batch-size=4", "batch-size=2", "batch-size"),
        ("num-detected-classes=", "num-detected-classes=9\n#", "num-detected-classes"),
        ("infer-dims=3;", "infer-dims=3;1", "infer-dims"),
        ("network-mode=1", "network-mode=2", "network-mode"),
        ("net-scale-factor=1.0", "net-scale-factor=0.00392156862745098", "net-scale-factor"),
        ("model-engine-file=model/", "model-engine-file=model/x", "model-engine-file"),
        ("int8-calib-file=model/calib/trt-10.3.0.cache", "int8-calib-file=model/calib/trt-8.6.2.cache", "int8-calib"),
        ("layer-device-precision=", "layer-device-precision=not/a/node:fp32:gpu;", "layer-device-precision"),
        ("pre-cluster-threshold=0.4\n\n[class-attrs-1]", "pre-cluster-threshold=0.5\n\n[class-attrs-1]", "class-attrs"),
    ],
)
def test_a_wrong_config_fails(folders, best_bundle: Path, tmp_path: Path, old: str, new: str, found: str) -> None:
    folder = _edit(folders[("int8", 4)], tmp_path / "edited", old, new)
    infer = keys(load(folder / "config_infer_primary_rtdetr.txt"))
    problems = undocumented_nvinfer(infer) + disagreements(folder, Bundle(best_bundle), "int8", 4, 0.4)
    assert problems
    if found != "undocumented":
        assert any(found in p for p in problems), problems


def test_a_malformed_key_file_is_a_glib_error(folders, tmp_path: Path) -> None:
    folder = _edit(folders[("fp16", 1)], tmp_path / "bad", "[property]", "[property")
    with pytest.raises(GLib.Error):
        load(folder / "config_infer_primary_rtdetr.txt")


def test_the_model_folder_is_a_bundle_the_recipe_builds(folders) -> None:
    """rtdetr-engine builds model/ on every TensorRT line of the README (the trtexec rows are the recipe's)."""
    readme = (folders[("int8", 4)] / "README.md").read_text()
    assert "rtdetr-engine model --precision int8 --batch 1,4,4" in readme
    assert readme.count("trtexec --onnx=model/") == 3
    assert "--stronglyTyped" in readme and "--int8" in readme  # 10.x strongly typed Q/DQ; 8.6 with flags


@pytest.mark.parametrize(
    ("tensorrt", "header", "line"),
    [("8.6.2", "TRT-8602-EntropyCalibration2", "8.6"), ("10.16.1", None, "10")],
)
def test_the_tensorrt_line_picks_the_cache_and_the_recipe_row(
    best_bundle: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, tensorrt: str, header: str | None, line: str
) -> None:
    """The INT8 cache must name nvinfer's exact TensorRT (else TensorRT ignores it): none is written rather than a wrong one."""
    folder = write_deepstream(best_bundle, tmp_path / "ds", DeepStreamOptions(precision="int8", tensorrt=tensorrt))
    p = keys(load(folder / "config_infer_primary_rtdetr.txt"))["property"]
    marker = json.loads((folder / "rtdetr-deepstream.json").read_text())
    assert marker["engine"]["recipe"]["tensorrt_line"] == line
    if header is None:
        assert "int8-calib-file" not in p
        assert "no calibration cache for TensorRT 10.16.1" in caplog.text
    else:
        assert (folder / p["int8-calib-file"]).read_text().startswith(header)


def test_keys_deepstream_8_does_not_parse_are_undocumented() -> None:
    """[streammux] takes config-file-path, not config-file; parse_osd never reads border-color (keys.py)."""
    cfg = {"streammux": {"config-file": "x", "config-file-path": "x"}, "osd": {"border-color": "x"}}
    assert undocumented_app(cfg) == ["[streammux] config-file", "[osd] border-color"]
