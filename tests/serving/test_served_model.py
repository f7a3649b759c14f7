"""Acceptance of issue 17: the real Triton server, loaded from several client threads at once.

``rtdetr-serve`` runs the reference model's bundle on the nvidia-pytriton wheel's tritonserver
(Python backend; the detector step runs in a Python-backend model through rtdetr-edge's
Detector). Several threads send requests at once: every request is answered with what
``Detector`` returns for the same image, Triton's statistics show the detector executed fewer
times than it was asked (dynamic batching), and SIGTERM ends rtdetr-serve, the server and every
process they started within seconds. The durations are printed (``-s``) and kept in TIMINGS.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rtdetr_edge import Detector, InputError
from rtdetr_edge.data.synth import render_scene
from rtdetr_edge.images import read_image
from rtdetr_edge.serving.client import ServerRequestError, TritonDetector
from tests.helpers import REPO, SAMPLES
from tests.serving.conftest import TIMINGS, Served, alive, free_port, start_serve

# a real Triton server: the serve environment (rtdetr-serve --setup-env; .ci/run makes it) or
# tritonserver on PATH; the tests that need one skip without it
pytestmark = pytest.mark.serving

THREADS = 4
PER_THREAD = 8


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(17)
    scenes = [render_scene(rng, w, h)[0] for w, h in ((320, 240), (256, 256), (640, 360), (200, 300))]
    files = [read_image(p) for p in sorted((SAMPLES / "images").glob("*.jpg"))]
    return scenes + files


def _same(got: object, want: object) -> bool:
    from rtdetr_edge.detections import Detections

    assert isinstance(got, Detections) and isinstance(want, Detections)
    return (
        len(got) == len(want)
        and got.image_size == want.image_size
        and got.class_names == want.class_names
        and np.array_equal(got.class_ids, want.class_ids)
        and np.allclose(got.scores, want.scores, atol=1e-5)
        and np.allclose(got.xyxy, want.xyxy, atol=1e-2)
    )


def _detector_stats(client: TritonDetector, model: str) -> tuple[int, int]:
    stats = client.statistics(model)["model_stats"][0]
    return int(stats["inference_count"]), int(stats["execution_count"])


def test_concurrent_clients_get_the_detectors_results_in_batches(served: Served) -> None:
    images = _images()
    with Detector(served.bundle) as det:
        expected = det(images)
    assert sum(len(d) for d in expected) > 0
    client = TritonDetector(served.url)
    inferences0, executions0 = _detector_stats(client, "rtdetr_detector")
    results: dict[tuple[int, int], object] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work(t: int) -> None:
        try:
            mine = TritonDetector(served.grpc_url if t % 2 else served.url)  # both protocols
            start.wait()
            for i in range(PER_THREAD):
                k = (t + i) % len(images)
                results[(t, i)] = mine(images[k])
            mine.close()
        except BaseException as exc:
            errors.append(exc)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=300)
    TIMINGS[f"{THREADS * PER_THREAD} requests from {THREADS} threads"] = time.perf_counter() - t0
    assert not errors, errors
    assert len(results) == THREADS * PER_THREAD  # every request answered
    exact = 0
    for (t, i), got in results.items():
        want = expected[(t + i) % len(images)]
        assert _same(got, want), f"thread {t} request {i}: {got} != {want}"
        exact += got == want
    # Triton updates a model's statistics after it answers: one request may not be counted yet
    deadline = time.monotonic() + 30
    while True:
        inferences, executions = _detector_stats(client, "rtdetr_detector")
        inferences, executions = inferences - inferences0, executions - executions0
        if inferences >= THREADS * PER_THREAD or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    client.close()
    print(
        f"\n{len(results)} requests: {exact} bit-identical to Detector, all within tolerance; detector "
        f"inference_count {inferences}, execution_count {executions}"
    )
    assert inferences == THREADS * PER_THREAD
    assert executions < inferences, "dynamic batching never put two requests into one execution"


def test_a_bad_image_is_one_line_and_the_server_keeps_serving(served: Served) -> None:
    with TritonDetector(served.url) as client:
        with pytest.raises(ServerRequestError, match="cannot decode as an image") as info:
            client.infer_bytes(b"this is not an image", "junk.jpg")
        assert "\n" not in str(info.value)
        assert len(client(str(SAMPLES / "images" / "scene_0.jpg"))) > 0


def test_client_filters_further_but_never_below_the_servers_threshold(served: Served) -> None:
    image = str(SAMPLES / "images" / "scene_0.jpg")
    with pytest.raises(InputError, match=r"conf 0.2: the server at .* already dropped scores below 0.3"):
        TritonDetector(served.url, conf=0.2)
    with TritonDetector(served.url, conf=0.6, classes=[3, 4], max_det=2) as client, Detector(served.bundle) as det:
        want = det(image, conf=0.6, classes=[3, 4], max_det=2)
        assert _same(client(image), want)
        assert _same(client(image, conf=0.7), det(image, conf=0.7, classes=[3, 4], max_det=2))


def test_a_port_in_use_is_one_line(served: Served) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rtdetr_edge.cli.serve", str(served.bundle), "--http-port", str(served.http_port)],
        capture_output=True, text=True, timeout=120, cwd=str(REPO),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: --http-port {served.http_port}: the port is in use on 127.0.0.1"
    ), proc.stderr


def test_rtdetr_detect_server_writes_what_the_local_model_writes(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rtdetr_edge.cli import detect

    images = str(SAMPLES / "images")
    assert detect.main([images, "--model", str(served.bundle), "--out", str(tmp_path / "local"), "-q"]) == 0
    assert detect.main([images, "--server", served.url, "--out", str(tmp_path / "remote"), "--batch", "2", "-q"]) == 0
    local = [json.loads(x) for x in (tmp_path / "local" / "detections.jsonl").read_text().splitlines()]
    remote = [json.loads(x) for x in (tmp_path / "remote" / "detections.jsonl").read_text().splitlines()]
    names = sorted(p.name for p in (SAMPLES / "images").glob("*.jpg"))
    assert len(remote) == len(names) and remote == local
    written = ["detections.jsonl", "index.html", "thumbnails", *names]  # with the contact sheet
    assert sorted(p.name for p in (tmp_path / "remote").iterdir()) == sorted(written)
    capsys.readouterr()
    assert (
        detect.main([images, "--server", served.url, "--model", str(served.bundle), "--out", str(tmp_path / "x")]) == 1
    )
    assert capsys.readouterr().err.strip() == "error: expected --model BUNDLE or --server URL (one of them)"
    dead = f"http://127.0.0.1:{free_port()}"
    assert detect.main([images, "--server", dead, "--out", str(tmp_path / "y")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {dead}: cannot get model 'rtdetr': "), err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_sigterm_stops_the_server_and_every_process_it_started(served: Served) -> None:
    # last in this module: it ends the module's server
    assert any("tritonserver" in _cmdline(p) for p in served.children), served.children
    assert any("triton_python_backend_stub" in _cmdline(p) for p in served.children), served.children
    t0 = time.perf_counter()
    served.process.send_signal(signal.SIGTERM)
    code = served.process.wait(timeout=60)
    deadline = time.monotonic() + 10
    while any(alive(p) for p in served.children) and time.monotonic() < deadline:
        time.sleep(0.1)
    TIMINGS["SIGTERM -> all gone"] = time.perf_counter() - t0
    left = [(p, _cmdline(p)) for p in served.children if alive(p)]
    assert not left, left
    assert code == 143, served.stderr()
    assert "Traceback" not in served.stderr()
    print("\n" + "\n".join(f"{k}: {v:.1f} s" for k, v in TIMINGS.items()))


def test_ctrl_c_stops_it_too(serve_env: object, reference_bundle: Path, tmp_path: Path) -> None:
    s = start_serve(reference_bundle, tmp_path / "stderr")
    assert s.children
    s.process.send_signal(signal.SIGINT)
    code = s.process.wait(timeout=60)
    deadline = time.monotonic() + 10
    while any(alive(p) for p in s.children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in s.children if alive(p)]
    assert code == 130, s.stderr()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_errors_before_any_server_starts(tmp_path: Path, reference_bundle: Path) -> None:
    def serve(*args: str, env: dict[str, str] | None = None) -> str:
        import os

        proc = subprocess.run(
            [sys.executable, "-m", "rtdetr_edge.cli.serve", *args],
            capture_output=True, text=True, timeout=120, cwd=str(REPO), env={**os.environ, **(env or {})},
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        return lines[0]

    port = str(free_port())
    (tmp_path / "empty").mkdir()
    assert serve(str(tmp_path / "empty"), "--http-port", port, "--env", str(tmp_path / "env")).startswith(
        f"error: {tmp_path / 'empty'}: neither a bundle"
    )
    assert (
        serve(str(tmp_path / "nothing"), "--http-port", port)
        == f"error: {tmp_path / 'nothing'}: no such bundle or model repository"
    )
    # no tritonserver on PATH and no serve environment where --env points
    line = serve(
        str(reference_bundle),
        "--http-port",
        port,
        "--env",
        str(tmp_path / "env"),
        env={"PATH": str(Path(sys.executable).parent)},
    )
    assert line.startswith(f"error: no tritonserver on PATH and no serve environment at {tmp_path / 'env'}"), line
    assert "rtdetr-serve --setup-env" in line
    assert serve(str(reference_bundle), "--http-port", "70000").startswith("error: --http-port: expected a port number")
