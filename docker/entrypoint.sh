#!/usr/bin/env bash
# Entrypoint of the Dockerfile.jetson image: build the TensorRT engine on first start, then run
# the camera app on the mounted bundle.
#
#   IMAGE                                      camera app on $RTDETR_SOURCE (default csi://0)
#   IMAGE SOURCE [camera_app options]          camera app, e.g. v4l2:///dev/video0 --output /out/run.mp4
#   IMAGE track SOURCE [options]               the tracking sample (image built with WITH_TRACKING=1)
#   IMAGE build [rtdetr-build options]         only build the engine (e.g. build --force)
#   IMAGE check                                print what the runtime sees: TensorRT, CUDA, OpenCV, GStreamer
#   IMAGE COMMAND ...                          any other command (bash, rtdetr-bench, rtdetr-detect ...)
#
# Environment: RTDETR_BUNDLE (default /bundle, must be writable: engines are cached in it),
# RTDETR_PRECISION (default fp16), RTDETR_SOURCE (default csi://0), RTDETR_SAMPLES (where the
# sample scripts are; default /opt/rtdetr-edge/samples).
set -euo pipefail

BUNDLE="${RTDETR_BUNDLE:-/bundle}"
PRECISION="${RTDETR_PRECISION:-fp16}"
SAMPLES="${RTDETR_SAMPLES:-/opt/rtdetr-edge/samples}"

need_bundle() {
  if [[ ! -f "$BUNDLE/metadata.json" ]]; then
    echo "error: no bundle at $BUNDLE. Mount the bundle exported on the host: -v /path/to/bundle:$BUNDLE" >&2
    exit 1
  fi
}

has_engine() {
  # engines are named PRECISION_b..._trtX.Y.Z_smNN_KEY.engine (rtdetr_edge/engine_format.py); the
  # Detector still checks that the one it picks fits this GPU and TensorRT, and rebuilds if not
  compgen -G "$BUNDLE/engines/${PRECISION}_*.engine" >/dev/null
}

build_engine() {
  need_bundle
  echo "building the TensorRT $PRECISION engine in $BUNDLE/engines (takes minutes, once per device)" >&2
  rtdetr-engine "$BUNDLE" --precision "$PRECISION" "$@"
}

run_sample() {
  local script=$1
  shift
  need_bundle
  has_engine || build_engine
  # python3 replaces this shell (exec): it is PID 1 and gets docker stop's SIGTERM itself,
  # which the samples handle by closing their output files
  exec python3 "$SAMPLES/$script" --model "$BUNDLE" --precision "$PRECISION" "$@"
}

check() {
  python3 - <<'EOF'
import re
import cv2
gst = re.search(r"GStreamer:\s*YES", cv2.getBuildInformation()) is not None
print(f"OpenCV {cv2.__version__} ({cv2.__file__}), GStreamer: {'YES' if gst else 'NO (csi:// will not work)'}")
try:
    import tensorrt
    print(f"TensorRT {tensorrt.__version__}")
except Exception as exc:  # report, don't fail: this is a diagnostic
    print(f"TensorRT: cannot import ({exc}); run with --runtime nvidia")
try:
    from cuda.bindings import runtime as cudart
    err, count = cudart.cudaGetDeviceCount()
    print(f"CUDA devices: {count} ({err})")
except Exception as exc:
    print(f"cuda-python: {exc}")
EOF
  if gst-inspect-1.0 nvarguscamerasrc >/dev/null 2>&1; then
    echo "nvarguscamerasrc: available"
  else
    echo "nvarguscamerasrc: missing (csi:// needs --runtime nvidia and -v /tmp/argus_socket:/tmp/argus_socket)"
  fi
}

case "${1:-}" in
  build)
    shift
    build_engine "$@"
    ;;
  check)
    check
    ;;
  track)
    shift
    run_sample track.py "$@"
    ;;
  "" | -*)
    run_sample camera_app.py "${RTDETR_SOURCE:-csi://0}" "$@"
    ;;
  *)
    # a command on PATH runs as is; anything else (a URI, a device index, a file) is a source
    if [[ "$1" != *://* ]] && command -v "$1" >/dev/null 2>&1; then
      exec "$@"
    fi
    run_sample camera_app.py "$@"
    ;;
esac
