#!/usr/bin/env python3
"""Detector (ONNX Runtime) vs the transformers path, end to end, on this machine.

Model: r18vd-shaped RT-DETR (20 M parameters, random non-tied weights) at 640x640; input: a
1280x720 frame. Each side runs in its own fresh process so imports and memory do not mix:

* ours: ``Detector(bundle)`` (our preprocessing into the input buffer, ONNX Runtime, in-graph
  top-k, threshold + scale);
* transformers: ``RTDetrImageProcessor`` (Pillow) + eager ``RTDetrForObjectDetection`` +
  ``post_process_object_detection``.

Reported: end-to-end median latency and the speed-up, our preprocess + postprocess median,
process RSS after the first inference, and ``import rtdetr_edge`` time. Targets (issue 3):
>= 1.4x faster, pre+post <= 3 ms, RSS <= 1/3 of transformers', import < 0.5 s.

    python benchmarks/runtime_vs_transformers.py [--iterations 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys

from _common import r18_model_and_bundle, run_json, table, write_json

OURS = r"""
import json, resource, statistics, sys, time
t0 = time.perf_counter()
from rtdetr_edge import Detector
from rtdetr_edge.backends.options import OnnxRuntimeOptions
import numpy as np
from rtdetr_edge.data.synth import render_scene
bundle, iters, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
frame = render_scene(np.random.default_rng(0), 1280, 720)[0]
det = Detector(bundle, onnxruntime=OnnxRuntimeOptions(threads=threads))
det(frame)
rss = int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024
total, pre, post, infer = [], [], [], []
for _ in range(iters):
    s = time.perf_counter(); det(frame); total.append((time.perf_counter() - s) * 1e3)
    t = det.last_times; pre.append(t.preprocess); post.append(t.postprocess); infer.append(t.infer)
print(json.dumps({"e2e_ms": statistics.median(total), "pre_ms": statistics.median(pre),
                  "post_ms": statistics.median(post), "infer_ms": statistics.median(infer),
                  "pre_post_ms": statistics.median([a + b for a, b in zip(pre, post)]), "rss_mb": rss}))
"""

THEIRS = r"""
import json, statistics, sys, time
import numpy as np, torch
from transformers import RTDetrForObjectDetection
from transformers.models.rt_detr.image_processing_pil_rt_detr import RTDetrImageProcessorPil
from rtdetr_edge.data.synth import render_scene
folder, iters, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
frame = render_scene(np.random.default_rng(0), 1280, 720)[0][..., ::-1].copy()  # RGB for HF
processor = RTDetrImageProcessorPil.from_pretrained(folder)
model = RTDetrForObjectDetection.from_pretrained(folder).eval()
def run():
    t0 = time.perf_counter()
    inputs = processor(images=frame, return_tensors="pt")
    t1 = time.perf_counter()
    with torch.no_grad():
        out = model(**inputs)
    t2 = time.perf_counter()
    processor.post_process_object_detection(out, threshold=0.3, target_sizes=[(720, 1280)])
    t3 = time.perf_counter()
    return (t3 - t0) * 1e3, (t1 - t0) * 1e3, (t3 - t2) * 1e3
run()
rss = int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024
res = [run() for _ in range(iters)]
print(json.dumps({"e2e_ms": statistics.median(r[0] for r in res), "pre_ms": statistics.median(r[1] for r in res),
                  "post_ms": statistics.median(r[2] for r in res), "rss_mb": rss}))
"""

IMPORT = r"""
import json, time
t = time.perf_counter(); import rtdetr_edge; d = time.perf_counter() - t
t = time.perf_counter(); from rtdetr_edge import Detector; e = time.perf_counter() - t
print(json.dumps({"import_s": d, "import_detector_s": d + e}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    folder, bundle = r18_model_and_bundle()
    it, th = str(args.iterations), str(args.threads)
    ours = run_json(OURS, str(bundle), it, th)
    theirs = run_json(THEIRS, str(folder), it, th)
    imports = [run_json(IMPORT) for _ in range(3)]
    imp = min(i["import_s"] for i in imports)
    imp_det = min(i["import_detector_s"] for i in imports)
    speedup = theirs["e2e_ms"] / ours["e2e_ms"]
    rss_ratio = ours["rss_mb"] / theirs["rss_mb"]
    rows = [
        ["end-to-end median (ms)", ours["e2e_ms"], theirs["e2e_ms"], f"speed-up {speedup:.2f}x (target >= 1.4x)"],
        ["preprocess median (ms)", ours["pre_ms"], theirs["pre_ms"], ""],
        ["postprocess median (ms)", ours["post_ms"], theirs["post_ms"], ""],
        ["pre + post median (ms)", ours["pre_post_ms"], theirs["pre_ms"] + theirs["post_ms"], "target <= 3 ms"],
        ["RSS after 1st inference (MB)", ours["rss_mb"], theirs["rss_mb"], f"ratio {rss_ratio:.2f} (target <= 0.33)"],
        ["import rtdetr_edge (s)", imp, "", f"with Detector {imp_det:.3f} s (target < 0.5 s)"],
    ]
    print(f"r18vd-shaped RT-DETR at 640x640, 1280x720 input, {args.iterations} iterations, {args.threads} threads")
    print(table(["metric", "rtdetr-edge (ORT)", "transformers", "note"], rows))
    met = {
        "speedup_1_4x": speedup >= 1.4,
        "pre_post_3ms": ours["pre_post_ms"] <= 3.0,
        "rss_third": rss_ratio <= 1 / 3,
        "import_0_5s": imp < 0.5,
    }
    print("targets met:", met)
    path = write_json(
        "runtime_vs_transformers.json",
        {
            "iterations": args.iterations,
            "threads": args.threads,
            "ours": ours,
            "transformers": theirs,
            "import_s": imp,
            "import_detector_s": imp_det,
            "speedup": speedup,
            "rss_ratio": rss_ratio,
            "targets_met": met,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
