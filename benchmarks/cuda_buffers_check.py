"""Exercise rtdetr_edge.cuda.buffers on any CUDA machine, without TensorRT.

    python benchmarks/cuda_buffers_check.py [--device 0] [--mb 64] [--require-gpu] [--json out.json]

Checks, each printed as PASS/FAIL with what ran:
  1. device properties and the memory kind ``auto`` picks (mapped on Jetson, pinned on dGPUs)
  2. pinned buffers: host -> device -> host round trip through a second buffer, bytes equal
  3. mapped buffers (if the GPU can map host memory): a device-to-device copy from the mapped
     pointer into a pinned buffer's device memory, back to host, bytes equal (proves the GPU
     reads what the host wrote with no explicit upload)
  4. stream ordering: event recorded after a copy completes before the data is read; the
     elapsed time between events is positive; H2D bandwidth from event timing
  5. CUDA graph (cuda-python only): a captured copy replays and moves new data
  6. a plain device block (what a CUDA-graph backend's execution contexts share): written, read back

Exit status 0 when every check passed, 1 when one failed; without a GPU it prints SKIP and exits
0 (2 with --require-gpu).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

results: list[dict[str, Any]] = []


def check(name: str, fn: Callable[[], str]) -> bool:
    t0 = time.perf_counter()
    try:
        detail = fn()
        ok = True
    except Exception as exc:  # noqa: BLE001 - report every failure and go on
        detail = f"{type(exc).__name__}: {exc}"
        traceback.print_exc(file=sys.stderr)
        ok = False
    ms = (time.perf_counter() - t0) * 1e3
    results.append({"check": name, "ok": ok, "detail": detail, "ms": round(ms, 2)})
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}  ({ms:.1f} ms)", flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", type=int, default=0)
    ap.add_argument("--mb", type=int, default=64, help="buffer size for the bandwidth check (MiB)")
    ap.add_argument("--require-gpu", action="store_true", help="exit 2 instead of 0 when no GPU is found")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)

    from rtdetr_edge.cuda import buffers
    from rtdetr_edge.errors import MissingDependencyError

    try:
        drv = buffers.driver()
    except MissingDependencyError as exc:
        print(f"SKIP: {exc}")
        return 2 if args.require_gpu else 0
    status = buffers.cuda_status()  # never raises: no driver, no GPU or a broken setup is a reason
    count = status.devices
    if count <= args.device:
        why = status.reason or f"{count} found"
        print(f"SKIP: no CUDA device {args.device} ({why}; bindings: {drv.name}). Nothing was run.")
        return 2 if args.require_gpu else 0
    buffers.set_device(args.device)
    print(f"bindings: {drv.name}; CUDA devices: {count}; checking device {args.device}")
    props = buffers.device_properties(args.device)
    stream = buffers.Stream()
    rng = np.random.default_rng(0)

    check(
        "device properties",
        lambda: (
            f"{props.name}, compute capability {props.compute_capability}, integrated={props.integrated}, "
            f"canMapHostMemory={props.can_map_host_memory}, {props.total_memory / 2**30:.1f} GiB; auto memory kind: "
            f"{buffers.choose_memory_kind(props.integrated, props.can_map_host_memory)}"
        ),
    )

    def pinned_round_trip() -> str:
        data = rng.standard_normal((4, 3, 64, 64)).astype(np.float32)
        with (
            buffers.HostDeviceBuffer(data.shape, np.float32, "pinned") as a,
            buffers.HostDeviceBuffer(data.shape, np.float32, "pinned") as b,
        ):
            a.host[...] = data
            a.to_device(stream)
            buffers.copy_device(b.device_ptr, a.device_ptr, a.nbytes, stream)
            b.to_host(stream)
            stream.synchronize()
            assert np.array_equal(b.host, data), "bytes differ after H2D -> D2D -> D2H"
        return f"{data.nbytes} bytes H2D -> D2D -> D2H equal"

    check("pinned round trip", pinned_round_trip)

    def mapped_zero_copy() -> str:
        if not props.can_map_host_memory:
            return "skipped: this GPU cannot map host memory"
        data = rng.integers(0, 255, (2, 3, 32, 32)).astype(np.float32)
        with (
            buffers.HostDeviceBuffer(data.shape, np.float32, "mapped") as m,
            buffers.HostDeviceBuffer(data.shape, np.float32, "pinned") as p,
        ):
            assert m.zero_copy and m.device_ptr != 0
            m.host[...] = data  # no upload: the GPU reads the mapped memory directly
            buffers.copy_device(p.device_ptr, m.device_ptr, m.nbytes, stream)
            p.to_host(stream)
            stream.synchronize()
            assert np.array_equal(p.host, data), "GPU read of mapped memory differs from what the host wrote"
        return f"GPU copied {data.nbytes} bytes from mapped host memory without an upload; equal"

    check("mapped zero-copy", mapped_zero_copy)

    def ordering_and_timing() -> str:
        n = args.mb * (1 << 20) // 4
        start, end = buffers.Event(), buffers.Event()
        with (
            buffers.HostDeviceBuffer((n,), np.float32, "pinned") as a,
            buffers.HostDeviceBuffer((n,), np.float32, "pinned") as b,
        ):
            a.host[:] = np.arange(n, dtype=np.float32)
            b.host[:] = 0
            start.record(stream)
            a.to_device(stream)
            end.record(stream)
            buffers.copy_device(b.device_ptr, a.device_ptr, a.nbytes, stream)
            b.to_host(stream)
            end.synchronize()  # only the upload is known complete here
            stream.synchronize()
            ms = buffers.Event.elapsed_ms(start, end)
            assert ms > 0, f"elapsed {ms} ms"
            assert b.host[-1] == n - 1 and np.array_equal(b.host[:1000], a.host[:1000]), "stream order broken"
        start.close()
        end.close()
        return f"{args.mb} MiB upload {ms:.3f} ms ({args.mb / 1024 / (ms / 1e3):.1f} GiB/s); copies in order"

    check("stream ordering and event timing", ordering_and_timing)

    def graph_replay() -> str:
        if drv.name != "cuda-python":
            return f"skipped: CUDA graphs need cuda-python (running {drv.name})"
        shape = (1024,)
        with (
            buffers.HostDeviceBuffer(shape, np.float32, "pinned") as a,
            buffers.HostDeviceBuffer(shape, np.float32, "pinned") as b,
        ):
            graph = buffers.CudaGraph(stream, lambda: buffers.copy_device(b.device_ptr, a.device_ptr, a.nbytes, stream))
            for value in (1.0, 7.0):
                a.host[:] = value
                a.to_device(stream)
                graph.launch(stream)
                b.to_host(stream)
                stream.synchronize()
                assert np.all(b.host == value), f"replay did not copy {value}"
            graph.close()
        return "captured one device copy, replayed twice with new data"

    check("CUDA graph capture/replay", graph_replay)

    def device_block() -> str:
        # the kind of block a CUDA-graph backend's execution contexts share (buffers.DeviceMemory)
        data = rng.standard_normal(4096).astype(np.float32)
        block = buffers.DeviceMemory(data.nbytes)
        try:
            with buffers.HostDeviceBuffer(data.shape, np.float32, "pinned") as a:
                a.host[...] = data
                a.to_device(stream)
                buffers.copy_device(block.ptr, a.device_ptr, a.nbytes, stream)
                a.host[...] = 0
                buffers.copy_device(a.device_ptr, block.ptr, a.nbytes, stream)
                a.to_host(stream)
                stream.synchronize()
                assert np.array_equal(a.host, data), "bytes differ after a round trip through the block"
        finally:
            block.close()
        return f"{data.nbytes}-byte device block written and read back"

    check("device memory block", device_block)
    stream.close()

    failed = [r for r in results if not r["ok"]]
    print(f"{len(results) - len(failed)}/{len(results)} checks passed on {props.name}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {"device": props.name, "cc": props.compute_capability, "bindings": drv.name, "results": results},
                fh,
                indent=2,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
