"""rtdetr-triton: every generated config parses with Triton's own model_config.proto, the pieces fit
together, and the TensorRT / ONNX Runtime variants load in a real tritonserver up to the missing
backend (the nvidia-pytriton wheel's server has only the Python backend; they are untested on a GPU).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from rtdetr_edge.cli import triton as triton_cli
from rtdetr_edge.errors import BundleError, InputError
from rtdetr_edge.serving.environment import ServerBinary
from rtdetr_edge.serving.repository import RepositoryOptions, write_repository
from rtdetr_edge.serving.server import ServerError, ServerOptions, TritonServer, _group_alive
from tests.serving.conftest import free_port

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
text_format = pytest.importorskip("google.protobuf.text_format")


def parse(path: Path) -> object:
    """Triton's ModelConfig from a config.pbtxt; unknown fields or wrong types raise ParseError."""
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def configs(repo: Path) -> dict[str, object]:
    return {p.parent.name: parse(p) for p in sorted(repo.glob("*/config.pbtxt"))}


@pytest.fixture(scope="module")
def repos(reference_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("repos")
    return {
        kind: write_repository(reference_bundle, root / kind, RepositoryOptions(detector=kind))
        for kind in ("tensorrt", "onnxruntime", "python")
    }


def test_every_config_parses_as_a_triton_model_config(repos: dict[str, Path]) -> None:
    for kind, repo in repos.items():
        cfg = configs(repo)
        assert set(cfg) == {"rtdetr", "rtdetr_preprocess", "rtdetr_detector", "rtdetr_postprocess"}, kind


def test_the_parser_rejects_a_broken_config(repos: dict[str, Path], tmp_path: Path) -> None:
    # the check above can fail: a misspelt field and a wrong enum do not parse
    bad = tmp_path / "config.pbtxt"
    bad.write_text(
        (repos["tensorrt"] / "rtdetr_detector" / "config.pbtxt").read_text().replace("max_batch_size", "max_batch")
    )
    with pytest.raises(text_format.ParseError):
        parse(bad)
    bad.write_text((repos["tensorrt"] / "rtdetr_detector" / "config.pbtxt").read_text().replace("KIND_GPU", "KIND_TPU"))
    with pytest.raises(text_format.ParseError):
        parse(bad)


def test_tensorrt_detector_config(repos: dict[str, Path], reference_bundle: Path) -> None:
    repo = repos["tensorrt"]
    det = configs(repo)["rtdetr_detector"]
    assert det.platform == "tensorrt_plan"  # type: ignore[attr-defined]
    assert det.max_batch_size == 8  # type: ignore[attr-defined]
    assert list(det.dynamic_batching.preferred_batch_size) == [4, 8]  # type: ignore[attr-defined]
    assert det.dynamic_batching.max_queue_delay_microseconds == 2000  # type: ignore[attr-defined]
    assert det.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU  # type: ignore[attr-defined]
    assert det.optimization.cuda.graphs  # type: ignore[attr-defined]
    assert det.model_warmup[0].batch_size == 1  # type: ignore[attr-defined]
    # the bundle has no engine: the ONNX to build the plan from is there (not in a version folder)
    assert (repo / "rtdetr_detector" / "build" / "model.onnx").is_file()
    assert not (repo / "rtdetr_detector" / "1" / "model.plan").exists()
    readme = (repo / "README.md").read_text()
    assert "Untested on a GPU" in readme and "trtexec --onnx=/models/rtdetr_detector/build/model.onnx" in readme
    assert "--maxShapes=images:8x3x256x256" in readme
    ort = configs(repos["onnxruntime"])["rtdetr_detector"]
    assert ort.platform == "onnxruntime_onnx"  # type: ignore[attr-defined]
    assert ort.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU  # type: ignore[attr-defined]
    assert (repos["onnxruntime"] / "rtdetr_detector" / "1" / "model.onnx").is_file()


def _io(cfg: object) -> tuple[object, ...]:
    return tuple((t.name, t.data_type, tuple(t.dims)) for t in (*cfg.input, *cfg.output))  # type: ignore[attr-defined]


def test_every_variant_has_the_served_variants_tensors(repos: dict[str, Path]) -> None:
    # the python variant is served end to end (test_served_model.py); the TensorRT and ONNX Runtime
    # detectors differ from it only in how they run, never in the tensors the ensemble wires up
    served = configs(repos["python"])
    for kind in ("tensorrt", "onnxruntime"):
        other = configs(repos[kind])
        for name in served:
            assert _io(other[name]) == _io(served[name]), (kind, name)
            assert other[name].max_batch_size == served[name].max_batch_size  # type: ignore[attr-defined]
        assert other["rtdetr"] == served["rtdetr"]


def test_ensemble_wiring(repos: dict[str, Path]) -> None:
    cfg = configs(repos["python"])
    ens = cfg["rtdetr"]
    assert ens.platform == "ensemble" and ens.max_batch_size == 0  # type: ignore[attr-defined]
    assert [(o.name, o.data_type, list(o.dims)) for o in ens.output] == [  # type: ignore[attr-defined]
        ("boxes", model_config_pb2.TYPE_FP32, [-1, 4]),
        ("scores", model_config_pb2.TYPE_FP32, [-1]),
        ("class_ids", model_config_pb2.TYPE_INT32, [-1]),
        ("image_size", model_config_pb2.TYPE_INT32, [2]),
    ]
    assert [i.name for i in ens.input] == ["image"]  # type: ignore[attr-defined]
    produced = {"image"}
    for step in ens.ensemble_scheduling.step:  # type: ignore[attr-defined]
        model = cfg[step.model_name]
        assert set(step.input_map) == {i.name for i in model.input}, step.model_name  # type: ignore[attr-defined]
        assert set(step.output_map) <= {o.name for o in model.output}, step.model_name  # type: ignore[attr-defined]
        assert set(step.input_map.values()) <= produced, step.model_name
        produced |= set(step.output_map.values())
    assert {o.name for o in ens.output} <= produced  # type: ignore[attr-defined]
    params = {k: v.string_value for k, v in ens.parameters.items()}  # type: ignore[attr-defined]
    assert json.loads(params["class_names"]) == ["ellipse", "rectangle", "triangle", "star", "cross", "ring"]
    assert (repos["python"] / "rtdetr" / "labels.txt").read_text().split() == json.loads(params["class_names"])


@pytest.mark.serving
@pytest.mark.parametrize("kind", ["tensorrt", "onnxruntime"])
def test_tritonserver_loads_everything_but_the_missing_backend(
    kind: str, repos: dict[str, Path], serve_env: ServerBinary, tmp_path: Path
) -> None:
    """Triton's own parser and validation, with auto-completion off (the configs must be complete)."""
    options = ServerOptions(http_port=free_port(), complete_configs=True, startup_timeout=120)
    with open(tmp_path / "server.log", "w+") as log:
        server = TritonServer(repos[kind], serve_env, options, log_file=log)
        with pytest.raises(ServerError) as info:
            server.start()  # stops the server's process group when it fails
        text = (tmp_path / "server.log").read_text()
    # the load lines, not the exit status: the wheel's server sometimes segfaults on its way out (-11)
    assert re.match(
        r"tritonserver exited \(-?\d+\) before it was ready: failed to load 'rtdetr_detector' version 1: "
        rf"Invalid argument: unable to find backend library for backend '{kind}'",
        str(info.value),
    ), (str(info.value), text)
    assert "successfully loaded 'rtdetr_preprocess'" in text and "successfully loaded 'rtdetr_postprocess'" in text, (
        text
    )
    failures = [ln for ln in text.splitlines() if "failed to load '" in ln]
    assert failures and all("failed to load 'rtdetr_detector'" in ln for ln in failures), text
    assert server.pgid is not None and not _group_alive(server.pgid)


def test_bad_inputs_are_one_line(reference_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def error(*argv: str) -> str:
        assert triton_cli.main(list(argv)) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), err
        return err[0]

    (tmp_path / "not_a_bundle").mkdir()
    assert "not a bundle" in error(str(tmp_path / "not_a_bundle"), "--out", str(tmp_path / "r"))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    assert "already exists; pass --force" in error(str(reference_bundle), "--out", str(tmp_path / "busy"))
    assert "nothing was deleted" in error(str(reference_bundle), "--out", str(tmp_path / "busy"), "--force")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"
    assert "--max-batch: expected an integer in 1..4096" in error(
        str(reference_bundle), "--out", str(tmp_path / "r"), "--max-batch", "0"
    )
    # Triton's max_batch_size is an int32: a huge value would write a config Triton cannot parse
    assert "--max-batch: expected an integer in 1..4096" in error(
        str(reference_bundle), "--out", str(tmp_path / "r"), "--max-batch", "100000000000"
    )
    assert "--queue-delay-us" in error(str(reference_bundle), "--out", str(tmp_path / "r"), "--queue-delay-us", "-1")
    assert "--preferred-batch" in error(str(reference_bundle), "--out", str(tmp_path / "r"), "--preferred-batch", "16")
    assert "overlaps the bundle" in error(str(reference_bundle), "--out", str(reference_bundle / "triton"))
    assert not (tmp_path / "r").exists() and not list(tmp_path.glob(".r.*"))


def test_force_replaces_only_our_repository(reference_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "repo"
    assert triton_cli.main([str(reference_bundle), "--out", str(out), "--detector", "python", "-q"]) == 0
    with pytest.raises(InputError, match="already exists"):
        write_repository(reference_bundle, out, RepositoryOptions())
    write_repository(reference_bundle, out, RepositoryOptions(detector="onnxruntime"), force=True)
    assert configs(out)["rtdetr_detector"].platform == "onnxruntime_onnx"  # type: ignore[attr-defined]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]  # no temporary folder left


def test_not_a_bundle_raises_bundle_error(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not a bundle"):
        write_repository(tmp_path, tmp_path / "out", RepositoryOptions())
    assert os.listdir(tmp_path) == []


def _copy(bundle: Path, tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(bundle, tmp_path / "bundle")
    return tmp_path / "bundle"


def test_the_bundles_engine_becomes_the_plan(
    reference_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine rtdetr-engine made (with the builder faked: no TensorRT here) ships as model.plan."""
    from rtdetr_edge.bundle import Bundle
    from rtdetr_edge.engine import EngineBuildOptions, engine_for_bundle
    from rtdetr_edge.engine_format import BatchProfile
    from tests.engine import fake_tensorrt

    bundle = _copy(reference_bundle, tmp_path)
    fake_tensorrt.builds_without_tensorrt(monkeypatch)
    engine = engine_for_bundle(Bundle(bundle), "fp32", EngineBuildOptions(batch=BatchProfile(1, 4, 4)))
    repo = write_repository(bundle, tmp_path / "repo", RepositoryOptions(max_batch=4))
    assert (repo / "rtdetr_detector" / "1" / "model.plan").read_bytes() == engine.read_bytes()
    readme = (repo / "README.md").read_text()
    assert "built for Orin (compute capability 8.7, 16 SMs, 61 GiB) with TensorRT 10.3.0.30" in readme
    assert json.loads((repo / "rtdetr-repository.json").read_text())["engine"]["tensorrt_version"] == "10.3.0.30"
    with pytest.raises(InputError, match=r"--max-batch 8 exceeds the batch profile of .*\.engine \(max 4\)"):
        write_repository(bundle, tmp_path / "repo8", RepositoryOptions(max_batch=8))
    assert not (tmp_path / "repo8").exists()


@pytest.mark.parametrize(
    ("what", "options", "edit"),
    [
        ("a DLA engine", {"dla_core": 0, "batch": 1}, None),
        ("a static batch above 1", {"batch": 4}, None),
        # a frame-input engine, or one from an older recipe or another ONNX: its key is not today's recipe's
        ("an engine of another recipe", {"batch": (1, 4, 4)}, ("cache_key", "0123456789abcdef")),
        ("an engine whose options were edited", {"batch": (1, 4, 4)}, ("build_options", {"batch": [1, 2, 4]})),
    ],
)
def test_engines_the_recipe_did_not_make_or_triton_cannot_serve_are_not_the_plan(
    best_bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    what: str,
    options: dict[str, Any],
    edit: tuple[str, Any] | None,
) -> None:
    from rtdetr_edge.bundle import Bundle
    from rtdetr_edge.engine import EngineBuildOptions, engine_for_bundle
    from rtdetr_edge.engine_format import sidecar_path
    from tests.engine import fake_tensorrt

    bundle = _copy(best_bundle, tmp_path)
    fake_tensorrt.builds_without_tensorrt(monkeypatch)
    engine = engine_for_bundle(Bundle(bundle), "fp16", EngineBuildOptions(**options))
    if edit is not None:
        side = json.loads(sidecar_path(engine).read_text())
        side[edit[0]] = {**side[edit[0]], **edit[1]} if isinstance(edit[1], dict) else edit[1]
        sidecar_path(engine).write_text(json.dumps(side))
    repo = write_repository(bundle, tmp_path / "repo", RepositoryOptions(max_batch=4, precision="fp16"))
    assert not (repo / "rtdetr_detector" / "1" / "model.plan").exists(), what
    assert "**not included**" in (repo / "README.md").read_text()


def test_the_readme_commands_are_the_recipes_with_their_constraints(best_bundle: Path, tmp_path: Path) -> None:
    """Each TensorRT line's trtexec command is the recipe's: its source graph, typing, flags, FP32 pins, TF32."""
    from rtdetr_edge.bundle import Bundle
    from rtdetr_edge.engine.trtexec import pinned_layers, trtexec_command
    from rtdetr_edge.engine_format import BatchProfile
    from rtdetr_edge.engine_recipe import EngineBuildOptions, bundle_graphs, recipe

    repo = write_repository(best_bundle, tmp_path / "repo", RepositoryOptions(precision="int8"))
    build = repo / "rtdetr_detector" / "build"
    assert sorted(p.name for p in build.iterdir()) == ["model.int8.qdq.onnx", "model.int8.qdq.trt8.onnx"]
    assert (build / "model.int8.qdq.onnx").read_bytes() == (best_bundle / "model.int8.qdq.onnx").read_bytes()
    readme = (repo / "README.md").read_text()
    b = Bundle(best_bundle)
    assert configs(repo)["rtdetr_detector"]  # parses
    for version in ("8.6.2", "10.3.0", "11.4.1"):
        r = recipe(bundle_graphs(b), "int8", version, EngineBuildOptions(batch=BatchProfile(1, 8, 8)))
        pins = pinned_layers(best_bundle / r.source.file, r.fp32_pins)
        shape = (3, b.contract.preprocessing.height, b.contract.preprocessing.width)
        command = trtexec_command(
            r,
            f"/models/rtdetr_detector/build/{r.source.file}",
            "/models/rtdetr_detector/1/model.plan",
            "images",
            shape,
            pins,
        )
        assert command in readme, version
    eight_six = next(line for line in readme.splitlines() if "model.int8.qdq.trt8.onnx --saveEngine" in line)
    assert "--fp16 --int8 --precisionConstraints=prefer --layerPrecisions=" in eight_six
    assert "--stronglyTyped" not in eight_six and "--noTF32" not in eight_six
    pinned = pinned_layers(best_bundle / "model.int8.qdq.trt8.onnx", ("LayerNormalization", "Softmax", "post/*"))
    assert pinned.precision and all(f"{n}:fp32" in eight_six for n in pinned.precision)
    ten = next(line for line in readme.splitlines() if "build/model.int8.qdq.onnx --saveEngine" in line)
    assert "--stronglyTyped" in ten and "--int8" not in ten and "--fp16" not in ten and "--noTF32" in ten
    assert json.loads((repo / "rtdetr-repository.json").read_text())["precision"] == "int8"
    configs(repo)  # parses


def test_an_fp32_plan_is_built_without_tf32_and_fp16_on_11_needs_its_graph(tiny_bundle: Path, tmp_path: Path) -> None:
    repo = write_repository(tiny_bundle, tmp_path / "repo", RepositoryOptions(precision="fp32"))
    readme = (repo / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.lstrip().startswith("trtexec ")]
    assert len(commands) == 3 and all("--noTF32" in c and "build/model.onnx" in c for c in commands)


def test_rtdetr_serve_serves_the_bundles_default_precision(best_bundle: Path, tmp_path: Path) -> None:
    """rtdetr-serve serves what local rtdetr-detect runs (the bundle's default), not fp32 (issue 24, item 9)."""
    import argparse

    from rtdetr_edge.bundle import Bundle
    from rtdetr_edge.cli.serve import _repository_for
    from rtdetr_edge.serving.environment import ServerBinary
    from rtdetr_edge.serving.repository import MARKER

    default = Bundle(best_bundle).metadata["default_precision"]
    assert default != "fp32"
    binary = ServerBinary(Path("/usr/bin/tritonserver"), None, (), (), ("python",), "system")
    for precision, expected in (("auto", default), ("fp32", "fp32")):
        args = argparse.Namespace(detector="auto", precision=precision, max_batch=8, queue_delay_us=2000, threads=1)
        repo = _repository_for(best_bundle, binary, args, tmp_path / precision)
        info = json.loads((repo / MARKER).read_text())
        assert info["precision"] == expected and info["options"]["clip"] is True
