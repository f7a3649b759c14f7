"""Values that used to be accepted and change results, or end in a traceback (issue 24, items 4, 6, 8, 11).

Each is now a usage error (argparse's exit 2 naming the flag), a one-line ``error: ...`` (exit 1),
or does the right thing.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers import SAMPLES, Cli

SCENE = str(SAMPLES / "images" / "scene_0.jpg")


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["rtdetr-eval", "M", "--data", "a.json", "--max-images", "-3"], "--max-images"),
        (["rtdetr-eval", "M", "--data", "a.json", "--max-images", "0"], "--max-images"),
        (["rtdetr-eval", "M", "--data", "a.json", "--batch", "0"], "--batch"),
        (["rtdetr-bench", "M", "--batch", "-1"], "--batch"),
        (["rtdetr-bench", "M", "--warmup", "-1"], "--warmup"),
        (["rtdetr-bench", "M", "--image-size", "0x0"], "--image-size"),
        (["rtdetr-bench", "M", "--image-size", "big"], "--image-size"),
        (["rtdetr-detect", SCENE, "--model", "M", "--batch", "0"], "--batch"),
        (["rtdetr-detect", SCENE, "--model", "M", "--max-det", "0"], "--max-det"),
        (["rtdetr-data", "synth", "--out", "D", "--num-images", "2", "--max-objects", "0"], "--max-objects"),
        (["rtdetr-data", "synth", "--out", "D", "--num-images", "2", "--max-objects", "-1"], "--max-objects"),
        (["rtdetr-data", "synth", "--out", "D", "--num-images", "2", "--seed", "-1"], "--seed"),
        (["rtdetr-data", "synth", "--out", "D", "--num-images", "0"], "--num-images"),
    ],
)
def test_out_of_range_values_are_usage_errors(cli: Cli, argv: list[str], flag: str, tmp_path: Path) -> None:
    os.chdir(tmp_path)
    line = cli(*argv).usage_error()
    assert f"argument {flag}" in line and "expected" in line
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "command",
    [
        "rtdetr-build",
        "rtdetr-detect",
        "rtdetr-bench",
        "rtdetr-eval",
        "rtdetr-check",
        "rtdetr-data",
        "rtdetr-engine",
        "rtdetr-triton",
        "rtdetr-serve",
    ],
)
def test_every_command_has_version(cli: Cli, command: str) -> None:
    from rtdetr_edge import __version__

    run = cli(command, "--version")
    assert run.code == 0 and f"rtdetr-edge {__version__}" in run.out


@pytest.mark.parametrize("command", ["rtdetr-detect", "rtdetr-eval", "rtdetr-bench"])
def test_threads_beyond_the_cores_are_a_usage_error(cli: Cli, command: str, tmp_path: Path) -> None:
    argv = {"rtdetr-detect": [SCENE, "--model", "M"], "rtdetr-eval": ["M", "--data", "a.json"], "rtdetr-bench": ["M"]}
    line = cli(command, *argv[command], "--threads", "100000").usage_error()
    assert "argument --threads: expected an integer in 1.." in line


def test_threads_beyond_the_cores_are_refused_by_the_api(reference_bundle: Path) -> None:
    from rtdetr_edge.backends.options import OnnxRuntimeOptions, usable_cores
    from rtdetr_edge.errors import InputError

    assert OnnxRuntimeOptions(threads=usable_cores()).threads == usable_cores()
    with pytest.raises(InputError, match=r"threads: expected an integer in 1\.\."):
        OnnxRuntimeOptions(threads=100000)


def test_bench_image_size_above_the_pixel_limit_is_refused_before_work(cli: Cli) -> None:
    line = cli("rtdetr-bench", "no-such-model", "--image-size", "20000x20000").one_line_error()
    assert "20000x20000 is 400,000,000 pixels, above the limit" in line


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header says width x height (what a decompression bomb shows before it decodes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_refused_from_its_header(cli: Cli, reference_bundle: Path, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(30000, 30000))
    run = cli("rtdetr-detect", str(bomb), "--model", str(reference_bundle), "--out", str(tmp_path / "o"))
    assert run.code == 1 and "30000x30000 is 900,000,000 pixels, above the limit" in run.err


@pytest.mark.parametrize(("limit", "ok"), [(None, True), ("none", True), ("10000", False), ("lots", False)])
def test_the_pixel_limit_is_configurable(monkeypatch: pytest.MonkeyPatch, limit: str | None, ok: bool) -> None:
    from rtdetr_edge.errors import InputError
    from rtdetr_edge.images import PIXELS_ENV, decode_image

    data = cv2.imencode(".png", np.zeros((200, 300, 3), np.uint8))[1].tobytes()
    if limit is None:
        monkeypatch.delenv(PIXELS_ENV, raising=False)
    else:
        monkeypatch.setenv(PIXELS_ENV, limit)
    if ok:
        assert decode_image(data).shape == (200, 300, 3)
    else:
        with pytest.raises(InputError, match="pixels, above the limit" if limit == "10000" else PIXELS_ENV):
            decode_image(data)


def test_classes_beyond_the_model_are_refused_and_names_work(cli: Cli, reference_bundle: Path, tmp_path: Path) -> None:
    line = cli(
        "rtdetr-detect", SCENE, "--model", str(reference_bundle), "--classes", "99", "--out", str(tmp_path / "a")
    ).one_line_error()
    assert "class id 99: expected 0..5 (the model has 6 classes)" in line
    line = cli(
        "rtdetr-detect", SCENE, "--model", str(reference_bundle), "--classes", "dragon", "--out", str(tmp_path / "b")
    ).one_line_error()
    assert "'dragon' is not one of the model's classes" in line
    run = cli(
        "rtdetr-detect", SCENE, "--model", str(reference_bundle), "--classes", "star", "2", "--out", str(tmp_path / "c")
    )
    assert run.code == 0, run.err
    (record,) = [json.loads(ln) for ln in (tmp_path / "c" / "detections.jsonl").read_text().splitlines()]
    assert record["detections"] and {d["label"] for d in record["detections"]} <= {"star", "triangle"}


def test_results_never_go_into_the_model_folder(cli: Cli, reference_bundle: Path) -> None:
    before = sorted(p.name for p in reference_bundle.iterdir())
    run = cli("rtdetr-detect", SCENE, "--model", str(reference_bundle), "--out", str(reference_bundle), "--exist-ok")
    assert "--out" in run.one_line_error()
    assert sorted(p.name for p in reference_bundle.iterdir()) == before


def test_out_dot_in_a_busy_folder_gets_a_numbered_sibling(
    cli: Cli, reference_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    run = cli("rtdetr-detect", SCENE, "--model", str(reference_bundle), "--out", ".")
    assert run.code == 0, run.err
    assert (tmp_path / "work2" / "detections.jsonl").is_file()
    assert sorted(p.name for p in work.iterdir()) == ["notes.txt"]


def test_detections_jsonl_names_each_output_file(cli: Cli, reference_bundle: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "scene_0.jpg").write_bytes(Path(SCENE).read_bytes())
    run = cli(
        "rtdetr-detect",
        SCENE,
        str(other / "scene_0.jpg"),
        "--model",
        str(reference_bundle),
        "--out",
        str(tmp_path / "o"),
    )
    assert run.code == 0, run.err
    records = [json.loads(ln) for ln in (tmp_path / "o" / "detections.jsonl").read_text().splitlines()]
    assert [(r["source"], r["output"]) for r in records] == [
        (SCENE, "scene_0.jpg"),
        (str(other / "scene_0.jpg"), "scene_0_2.jpg"),
    ]
    assert all((tmp_path / "o" / r["output"]).is_file() for r in records)


def test_revision_with_a_local_folder_is_refused(cli: Cli, reference_bundle: Path, tmp_path: Path) -> None:
    line = cli(
        "rtdetr-build",
        "--model",
        str(reference_bundle),
        "--revision",
        "main",
        "--out",
        str(tmp_path / "o"),
        "--precision",
        "fp16",
    ).one_line_error()
    assert "--revision main" in line and "not a hub id" in line
    assert not (tmp_path / "o").exists()


def test_synth_interrupted_keeps_nothing_half_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rtdetr_edge.data import synth

    calls = []

    def interrupt(n: int) -> None:
        calls.append(n)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        synth.generate(tmp_path / "d", 10, 0, progress=interrupt)
    assert not (tmp_path / "d").exists()
    # over an earlier dataset: the earlier one is still whole
    ann = synth.generate(tmp_path / "e", 2, 0)
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        synth.generate(tmp_path / "e", 10, 1, progress=interrupt)
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == ["annotations.json", "images"]
    assert len(list((tmp_path / "e" / "images").iterdir())) == 2 and json.loads(ann.read_text())["info"]["seed"] == 0


def test_detector_and_detections_refuse_wrong_types() -> None:
    from rtdetr_edge import Detections, Detector
    from rtdetr_edge.errors import InputError

    with pytest.raises(InputError, match=r"model: expected a bundle folder, \.onnx or \.engine path, got int"):
        Detector(123)  # type: ignore[arg-type]
    dets = Detections(np.array([[1, 2, 5, 6]], np.float32), np.array([0.9]), np.array([1]), ("a", "b"))
    assert dets.to_coco(7, [10, 20]) == dets.to_coco(7, {0: 10, 1: 20})  # a list in class order
    assert dets.to_coco(7, [10, 20])[0]["category_id"] == 20
    with pytest.raises(InputError, match="category_ids: expected a dict"):
        dets.to_coco(7, "ab")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="image_id: expected an integer"):
        dets.to_coco("7", None)  # type: ignore[arg-type]


def test_the_served_preprocessing_refuses_a_bomb_before_decoding(reference_bundle: Path) -> None:
    """The Triton preprocess step decodes with the same guard (it decoded 2.7 GB before)."""
    from rtdetr_edge.bundle import Bundle
    from rtdetr_edge.errors import InputError
    from rtdetr_edge.preprocess import Preprocessor
    from rtdetr_edge.serving import steps

    pre = Preprocessor(Bundle(reference_bundle).contract.preprocessing)
    with pytest.raises(InputError, match=r"request\.png: 30000x30000 is 900,000,000 pixels, above the limit"):
        steps.preprocess(_png_header_only(30000, 30000), pre, "request.png")
