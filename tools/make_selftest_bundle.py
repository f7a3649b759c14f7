"""Regenerate the self-test bundle and its reference outputs shipped in the package.

    python tools/make_selftest_bundle.py [--out rtdetr_edge/selftest/data]

Host only (needs torch and transformers, like ``rtdetr-build``). It writes:

* ``bundle/``: a tiny random-weight RT-DETR (``rtdetr_edge.export.testing.tiny_config``, 64x64,
  fan-in-scaled weights so scores do not tie) built by ``rtdetr-build --precision best``: fp32,
  FP16 and INT8 ONNX (both Q/DQ files), calibration ranges and native caches for TensorRT 10.3.0
  (JetPack 6.1/6.2) and 8.6.2 (JetPack 6.0), calibrated on 8 generated images;
* ``reference.npz``: 4 preprocessed generated images (``images``) and ONNX Runtime's outputs for
  them from each ONNX of the bundle (``fp32/scores``, ``fp16/labels``, ``int8/boxes``, ...);
* ``reference.json``: versions, how ONNX Runtime's FP16 and INT8 outputs agree with its fp32
  ones, and the agreement each self-test parity check requires (derived from those numbers).

``rtdetr-selftest`` compares TensorRT's outputs on the device with these recordings.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from rtdetr_edge.selftest.compare import OUTPUTS, agreement

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "rtdetr_edge" / "selftest" / "data"
ARTIFACTS = {
    "fp32": "model.onnx",
    "fp16": "model.fp16.onnx",
    "int8": "model.int8.qdq.onnx",
    "int8_trt8": "model.int8.qdq.trt8.onnx",
}
# what a TensorRT engine must reach against ONNX Runtime's fp32 outputs (matched fraction of the
# top-10 detections per image with every box coordinate within box_tol): fp32 (TF32 off) as close
# as two fp32 runtimes get; FP16/INT8 no worse than ONNX Runtime's own FP16/INT8 run minus a
# margin for TensorRT's other kernels, fusions and (implicit INT8) its own choice of INT8 layers
BOX_TOL = {"fp32": 0.002, "fp16": 0.01, "int8": 0.05}
FP32_REQUIRED = {"box_tol": BOX_TOL["fp32"], "matched": 0.9, "max_score_diff": 2e-3}
MARGIN = {"fp16": (0.15, 0.03), "int8": (0.25, 0.08)}  # (matched lower by, score diff higher by)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("rtdetr-edge", "torch", "transformers", "onnx", "onnxruntime", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "?"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    args = ap.parse_args(argv)

    import onnxruntime as ort

    from rtdetr_edge.build import BuildOptions, Int8Options, build_bundle
    from rtdetr_edge.calib import CalibrationOptions
    from rtdetr_edge.data import synth
    from rtdetr_edge.export import testing
    from rtdetr_edge.export.options import ExportOptions
    from rtdetr_edge.preprocess import Preprocessor

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        model = testing.save_model_folder(
            testing.random_model(testing.tiny_config(), seed=0), tmp / "model", image_size=(64, 64)
        )
        calib = synth.generate(tmp / "calib", 12, seed=99)
        bundle = build_bundle(
            model,
            tmp / "bundle",
            BuildOptions(
                precision="best",
                check_images=0,
                export=ExportOptions(top_k=50),
                calibration=CalibrationOptions(calib=str(calib), size=8, cache_dir=None),
                int8=Int8Options(trt_cache_versions=("10.3.0", "8.6.2")),
            ),
        )
        rng = np.random.default_rng(5)
        scenes = [synth.render_scene(rng, 96, 80)[0] for _ in range(4)]
        from rtdetr_edge.bundle import Bundle

        pre = Preprocessor(Bundle(bundle).contract.preprocessing)
        images = pre.allocate(len(scenes))
        pre(scenes, out=images)
        arrays: dict[str, Any] = {"images": images}
        outputs: dict[str, dict[str, np.ndarray]] = {}
        for key, name in ARTIFACTS.items():
            session = ort.InferenceSession(str(bundle / name), providers=["CPUExecutionProvider"])
            names = [o.name for o in session.get_outputs()]
            outputs[key] = dict(zip(names, session.run(None, {"images": images})))
            for out in OUTPUTS:
                arrays[f"{key}/{out}"] = outputs[key][out]
        measured = {
            key: agreement(outputs["fp32"], outputs[key], BOX_TOL[key.split("_")[0]]).numbers()
            for key in ("fp16", "int8", "int8_trt8")
        }
        required: dict[str, dict[str, float]] = {"fp32": FP32_REQUIRED}
        for key, (drop, slack) in MARGIN.items():
            worst = min(measured[k]["matched"] for k in measured if k.startswith(key))
            diff = max(measured[k]["max_score_diff"] for k in measured if k.startswith(key))
            required[key] = {
                "box_tol": BOX_TOL[key],
                "matched": round(max(0.3, worst - drop), 3),
                "max_score_diff": round(diff + slack, 4),
            }

        out = args.out
        if (out / "bundle").exists():
            shutil.rmtree(out / "bundle")
        out.mkdir(parents=True, exist_ok=True)
        shutil.copytree(bundle, out / "bundle", ignore=shutil.ignore_patterns("engines"))
        np.savez_compressed(out / "reference.npz", **arrays)
        info = {
            "format": "rtdetr-edge-selftest-reference",
            "version": 1,
            "images": "4 generated scenes (rtdetr_edge.data.synth seed 5, 96x80), preprocessed to 64x64",
            "outputs": "ONNX Runtime (CPU) on each ONNX of bundle/",
            "onnxruntime_agreement_with_fp32": measured,
            "required_agreement_with_fp32": required,
            "made_with": _versions(),
        }
        (out / "reference.json").write_text(json.dumps(info, indent=2) + "\n")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({size / 1e6:.1f} MB): {json.dumps(required)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
