"""``sgnet-node-bench``: what the ROS node adds on top of the model, and how it behaves under a camera stream.

Two measurements, each against a node started in its own process (as in a robot), over real DDS:

1. Overhead: frames sent one at a time; for each, the latency from publishing the image to receiving its
   InstanceArray, minus the predictor's own time for that frame (``InstanceArray.inference_ms``). What is left is
   the node: image transport both ways, conversion, message building, mask encoding. Median reported.
2. Stream: frames published at a camera rate (30 Hz) to a node whose model is slower than the frame period. The
   node must serve the newest frame and drop the rest: latency stays within about two model times and the node's
   memory (RSS, and on CUDA the GPU memory the node's process holds, read from nvidia-smi) stays flat.
   Latency percentiles over the median model time, drops, and memory growth reported.

With ``--depth`` (instances in 3D, docs/depth.md), two more figures: the overhead measurement again with depth
on (an aligned 16UC1 depth image and camera_info published with every frame, and acknowledged by the node before the
frame goes out: a camera sends depth alongside colour, so its transport overlaps inference; Fast DDS also loses
large reliable samples sent back to back over its 512 KB shared-memory segment), and the depth path timed
in-process on frames with ``--depth-instances`` instances of realistic size (random weights give tiny masks): the
depth message's deserialization plus the node's DepthInput.process (pairing, decoding, locating every instance)
plus the 3D fields of the InstanceArray, as wall time, and the first two as the thread's CPU time (wall and CPU
time agree on an idle machine; on a loaded one the CPU time is the cost). On the same frames: the rviz markers'
building time (sgnet_ros/markers.py, done only while ``markers`` has subscribers), what the node does for them when
nobody subscribes (its subscription count check), and the debug overlay's rendering time (sgnet_ros/overlay.py).

With ``--cameras N``, instead: one node serving N cameras against one serving 1 and against N separate nodes
(memory, total frames per second, each camera's share; sgnet_ros/tools/camera_bench.py), on --model-config.

Both nodes run random weights (smoke_test) unless --checkpoint is given: timing does not depend on the weights.
Images go over reliable QoS: with Fast DDS's default transports, a best-effort subscription loses images larger
than its 512 KB shared-memory segment (640x360 rgb8 is 691 KB).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from sgnet_model.config import BACKENDS, PRECISIONS
from sgnet_model.runinfo import runtime_info, write_json

STARTUP_TIMEOUT_S = 120.0


class BenchError(RuntimeError):
    """The benchmark cannot run (the node did not start or does not answer)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sgnet-node-bench", description=__doc__.split("\n\n")[0] + " Prints a table (or --json).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", default="", help="trained checkpoint for both nodes (default: random weights)")
    parser.add_argument("--model-config", default="resnet18_small",
                        help="random-weight model of the overhead measurement (config/model name or YAML)")
    parser.add_argument("--stream-model-config", default="resnet50",
                        help="random-weight model of the stream measurement; it should be slower than the frame period")
    parser.add_argument("--device", default="cpu", help="predictor.device of the nodes")
    parser.add_argument("--fp16", action="store_true", help="predictor.fp16 of the nodes (CUDA only)")
    parser.add_argument("--backend", default="torch", choices=BACKENDS,
                        help="predictor.backend of the nodes (docs/export.md)")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS, help="predictor.precision of the nodes")
    parser.add_argument("--no-cuda-graphs", action="store_true", help="predictor.cuda_graphs false on the nodes")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--frames", type=int, default=30, help="frames of the overhead measurement")
    parser.add_argument("--rate", type=float, default=30.0, help="frame rate of the stream, Hz")
    parser.add_argument("--stream-seconds", type=float, default=30.0, help="length of the stream")
    parser.add_argument("--depth", action="store_true",
                        help="also measure the node with depth on (overhead over DDS, and the depth path in-process)")
    parser.add_argument("--depth-instances", type=int, default=10,
                        help="instances per frame of the in-process depth timing (discs a fifth of the height across)")
    parser.add_argument("--cameras", type=int, default=0,
                        help="instead: one node serving this many cameras against 1 and against as many separate "
                             "nodes, streaming at --rate for --stream-seconds")
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH",
                        help="write the figures as JSON to PATH (and print the table), or alone: print one JSON "
                             "object instead of the table")
    return parser


class BenchNode:
    """The node under test in a subprocess, and the benchmark's own rclpy node talking to it."""

    def __init__(self, client_node: Any, namespace: str, parameters: dict[str, Any]) -> None:
        from sensor_msgs.msg import Image
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sgnet_ros.msg import InstanceArray

        args = [sys.executable, "-m", "sgnet_ros.node", "--ros-args", "-r", f"__ns:={namespace}",
                "-p", "qos_reliability:=reliable", "-p", "debug_image:=false", "-p", "label_image:=false"]
        for key, value in parameters.items():
            args += ["-p", f"{key}:={json.dumps(value)}"]
        self.namespace = namespace
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._output: list[str] = []
        threading.Thread(target=self._read_output, daemon=True).start()
        self.arrivals: dict[int, tuple[float, float]] = {}  # frame index -> (arrival, inference_ms)
        self._lock = threading.Lock()
        self.publisher = client_node.create_publisher(Image, f"{namespace}/image",
                                                      QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        self.subscription = client_node.create_subscription(InstanceArray, f"{namespace}/instances", self._record, 100)

    def _read_output(self) -> None:
        for line in self.process.stdout:
            self._output.append(line)

    def _record(self, message: Any) -> None:
        with self._lock:
            self.arrivals[int(message.header.frame_id)] = (time.perf_counter(), message.inference_ms)

    def arrival(self, index: int) -> tuple[float, float] | None:
        with self._lock:
            return self.arrivals.get(index)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise BenchError("cannot read the node's memory use from /proc")

    def gpu_mb(self) -> float | None:
        """GPU memory held by the node's process (nvidia-smi), or None where there is no NVIDIA GPU."""
        try:
            listing = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                                      "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if listing.returncode != 0:
            return None
        used = [float(fields[1]) for fields in (line.split(",") for line in listing.stdout.splitlines())
                if len(fields) == 2 and fields[0].strip() == str(self.process.pid)]
        return sum(used) if used else 0.0

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(f"the node exited with {self.process.returncode}: {''.join(self._output)[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(2)  # SIGINT, as ros2 launch does
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()


def image_message(rgb: np.ndarray, index: int, period_s: float) -> Any:
    """Frame ``index`` of a camera running at 1 / period_s; the index travels in header.frame_id, which the
    node copies into its output."""
    from sensor_msgs.msg import Image

    height, width = rgb.shape[:2]
    message = Image(height=height, width=width, encoding="rgb8", step=width * 3, data=rgb.tobytes())
    message.header.frame_id = str(index)
    stamp_ns = int(round(index * period_s * 1e9))
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return message


def frames(count: int, height: int, width: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def spin_until(executor: Any, condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        executor.spin_once(timeout_sec=0.005)
    return bool(condition())


def wait_ready(executor: Any, node: BenchNode, rgb: np.ndarray) -> None:
    """Publish a warm-up frame until the node answers (discovery and model warm-up)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        node.check_alive()
        node.publisher.publish(image_message(rgb, 0, 0.1))
        if spin_until(executor, lambda: node.arrival(0) is not None, 2.0):
            return
    raise BenchError(f"the node did not answer within {STARTUP_TIMEOUT_S:.0f} s")


def measure_overhead(executor: Any, node: BenchNode, images: list[np.ndarray], progress: bool,
                     before_frame: Callable[[int], None] | None = None) -> dict[str, float]:
    latencies, inference, overhead = [], [], []
    for index, rgb in enumerate(tqdm(images, desc="overhead", disable=not progress), start=1):
        node.check_alive()
        if before_frame is not None:
            before_frame(index)
        sent = time.perf_counter()
        node.publisher.publish(image_message(rgb, index, 0.1))
        if not spin_until(executor, lambda: node.arrival(index) is not None, 60.0):
            raise BenchError(f"no instances for frame {index} within 60 s")
        arrival, inference_ms = node.arrival(index)
        latency_ms = (arrival - sent) * 1000
        latencies.append(latency_ms)
        inference.append(inference_ms)
        overhead.append(latency_ms - inference_ms)
    return {"frames": len(images), "latency_ms_median": statistics.median(latencies),
            "inference_ms_median": statistics.median(inference), "overhead_ms_median": statistics.median(overhead),
            "overhead_ms_max": max(overhead)}


def measure_stream(executor: Any, node: BenchNode, images: list[np.ndarray], rate: float, seconds: float,
                   progress: bool) -> dict[str, float]:
    period = 1.0 / rate
    count = int(round(rate * seconds))
    sent: dict[int, float] = {}
    gpu = node.gpu_mb() is not None
    rss, gpu_mb = [node.rss_mb()], []
    stop_sampling = threading.Event()

    def sample_gpu() -> None:  # nvidia-smi takes tens of ms: not in the publishing loop
        while True:
            gpu_mb.append(node.gpu_mb() or 0.0)
            if stop_sampling.wait(1.0):
                return

    sampler = threading.Thread(target=sample_gpu, daemon=True)
    if gpu:
        sampler.start()
    start = time.perf_counter()
    next_sample = start + 1.0
    for index in tqdm(range(1, count + 1), desc="stream", disable=not progress):
        while (now := time.perf_counter()) < start + (index - 1) * period:
            executor.spin_once(timeout_sec=max(0.0, min(0.002, start + (index - 1) * period - now)))
        sent[index] = time.perf_counter()
        node.publisher.publish(image_message(images[index % len(images)], index, period))
        if time.perf_counter() >= next_sample:  # RSS once a second
            rss.append(node.rss_mb())
            next_sample += 1.0
    spin_until(executor, lambda: False, 3.0)  # the last frames' answers
    rss.append(node.rss_mb())
    stop_sampling.set()
    if gpu:
        sampler.join()
    answered = {i: node.arrival(i) for i in sent if node.arrival(i) is not None}
    if not answered:
        raise BenchError("the node answered none of the stream's frames")
    latencies = sorted((arrival - sent[i]) * 1000 for i, (arrival, _) in answered.items())
    model_ms = statistics.median(inference for _, inference in answered.values())
    result = {"frames_sent": count, "frames_answered": len(answered), "frames_dropped": count - len(answered),
              "model_ms_median": model_ms, "latency_ms_median": statistics.median(latencies),
              "latency_ms_p95": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
              "latency_ms_max": latencies[-1], "latency_max_over_model": latencies[-1] / model_ms,
              **memory_figures("rss_mb", rss)}
    if gpu:
        result.update(memory_figures("gpu_mb", gpu_mb), gpu_mb_per_second=gpu_mb)
    return result


def memory_figures(name: str, samples: list[float]) -> dict[str, float]:
    """Medians of the first and the last quarter of once-a-second samples, and the growth between them."""
    quarter = max(1, len(samples) // 4)
    first, last = statistics.median(samples[:quarter]), statistics.median(samples[-quarter:])
    return {f"{name}_first_quarter": first, f"{name}_last_quarter": last, f"{name}_growth": last - first,
            f"{name}_max": max(samples)}


# ------------------------------------------------------------------------------------------------------- depth

DEPTH_Z_M = 2.0  # the synthetic depth: a wall at 2 m, instances as discs at 1 m


def depth_frame(width: int, height: int, index: int, period_s: float) -> tuple[Any, Any]:
    """(16UC1 depth Image, CameraInfo) stamped as colour frame ``index`` (see image_message): a wall at 2 m."""
    from sensor_msgs.msg import CameraInfo, Image

    focal = 0.8 * width
    depth = Image(height=height, width=width, encoding="16UC1", is_bigendian=0, step=width * 2,
                  data=np.full((height, width), int(DEPTH_Z_M * 1000), "<u2").tobytes())
    info = CameraInfo(height=height, width=width, distortion_model="plumb_bob", d=[0.0] * 5,
                      k=[focal, 0.0, (width - 1) / 2, 0.0, focal, (height - 1) / 2, 0.0, 0.0, 1.0])
    stamp_ns = int(round(index * period_s * 1e9))
    for message in (depth, info):
        message.header.frame_id = str(index)
        message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return depth, info


class DepthFeed:
    """Publishes frame i's depth image and camera_info (reliable) before frame i."""

    def __init__(self, client_node: Any, namespace: str, width: int, height: int) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.client_node, self.width, self.height = client_node, width, height
        self.depth = client_node.create_publisher(Image, f"{namespace}/depth/image_raw", qos)
        self.info = client_node.create_publisher(CameraInfo, f"{namespace}/depth/camera_info", qos)
        self.ack_ms: list[float] = []
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not (self.depth.get_subscription_count() and self.info.get_subscription_count()):
            if time.monotonic() > deadline:
                raise BenchError("the node did not subscribe to its depth topics")
            time.sleep(0.05)

    def before_frame(self, index: int) -> None:
        from rclpy.duration import Duration

        depth, info = depth_frame(self.width, self.height, index, 0.1)
        self.info.publish(info)
        self.depth.publish(depth)
        started = time.perf_counter()
        self.depth.wait_for_all_acked(Duration(seconds=5))
        self.ack_ms.append((time.perf_counter() - started) * 1000)

    def close(self) -> None:
        self.client_node.destroy_publisher(self.depth)
        self.client_node.destroy_publisher(self.info)


def measure_depth_path(client_node: Any, width: int, height: int, instances: int, frames: int) -> dict[str, Any]:
    """The node's per-frame work for depth, timed in this process on the node's own code: rclpy deserialization of
    the depth message (its subscription), DepthInput.process (pairing, decoding, locating every instance), and the
    3D fields of the InstanceArray (its building time with them minus without)."""
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    from sgnet_model.instances import FrameResult, TrackedInstance
    from sgnet_ros.depth_input import DepthInput
    from sgnet_ros.markers import InstanceMarkers, MarkerArray
    from sgnet_ros.outputs import instance_array_msg
    from sgnet_ros.overlay import render_overlay
    from sgnet_ros.params import camera_specs, parameter_defaults, settings_from

    values = {**parameter_defaults(), "depth_image_topic": "bench_depth/image_raw", "smoke_test": True}
    settings = settings_from(values.get)
    depth_input = DepthInput.create(client_node, settings, camera_specs(settings.node)[0])
    markers = InstanceMarkers()
    unwatched = client_node.create_publisher(MarkerArray, "bench_markers_nobody_subscribes", 1)
    visuals: dict[str, list[float]] = collections.defaultdict(list)  # name -> wall seconds, name_cpu -> CPU seconds
    marker_counts: list[int] = []
    rgb = np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)  # (H, W, 3): the overlay's
    rng = np.random.default_rng(0)
    radius = height / 10
    rows, columns = np.mgrid[0:height, 0:width]
    timings: dict[str, list[float]] = {"deserialize": [], "process": [], "message": []}
    cpu_ms: list[float] = []
    try:
        for index in range(1, frames + 1):
            depth, info = depth_frame(width, height, index, 0.1)
            tracked = []
            for track in range(1, instances + 1):
                cx, cy = rng.uniform(radius, width - radius), rng.uniform(radius, height - radius)
                mask = (columns - cx) ** 2 + (rows - cy) ** 2 <= radius ** 2  # (H, W)
                box = np.array([cx - radius, cy - radius, cx + radius, cy + radius], np.float32)
                tracked.append(TrackedInstance(track_id=track, class_id=0, class_name="object", score=0.9, box=box,
                                               mask=mask, centre=box[:2] / 2 + box[2:] / 2,
                                               motion=np.zeros(2, np.float32)))
            result = FrameResult(timestamp=0.1 * index, instances=tracked, inference_ms=0.0, tracks_reset=False)
            raw = serialize_message(depth)
            cpu_started = time.thread_time()
            started = time.perf_counter()
            received = deserialize_message(raw, Image)
            timings["deserialize"].append(time.perf_counter() - started)
            depth_input.on_camera_info(info)
            depth_input.on_depth(received)
            started = time.perf_counter()
            spatial = depth_input.process(depth.header, result, (height, width))
            timings["process"].append(time.perf_counter() - started)
            cpu_ms.append((time.thread_time() - cpu_started) * 1000)
            if len(spatial) != instances:
                raise BenchError(f"the depth path located {len(spatial)} of {instances} instances")
            started = time.perf_counter()
            instance_array_msg(result, depth.header, spatial)
            with_3d = time.perf_counter() - started
            started = time.perf_counter()
            instance_array_msg(result, depth.header)
            timings["message"].append(with_3d - (time.perf_counter() - started))
            if timed(visuals, "markers_unsubscribed", unwatched.get_subscription_count) > 0:  # the node's check
                raise BenchError("someone subscribed to the benchmark's own marker topic")
            marker_counts.append(len(timed(visuals, "markers", markers.build, result, depth.header, spatial).markers))
            timed(visuals, "overlay", render_overlay, rgb, tracked)
    finally:
        depth_input.destroy()
        client_node.destroy_publisher(unwatched)
    figures = {f"{name}_ms_median": statistics.median(values) * 1000 for name, values in timings.items()}
    totals = [sum(parts) * 1000 for parts in zip(*timings.values())]
    return {"frames": frames, "instances": instances, "instance_pixels": int(np.pi * radius ** 2), **figures,
            "total_ms_median": statistics.median(totals), "total_ms_max": max(totals),
            "cpu_ms_median": statistics.median(cpu_ms), "markers_per_frame": statistics.median(marker_counts),
            **{f"{name}_ms_median": statistics.median(values) * 1000 for name, values in visuals.items()},
            **{f"{name}_ms_max": max(values) * 1000 for name, values in visuals.items() if not name.endswith("cpu")}}


def timed(timings: dict[str, list[float]], name: str, function: Callable[..., Any], *args: Any) -> Any:
    """function(*args), its wall time appended to timings[name] and its thread's CPU time to timings[name_cpu]."""
    cpu_started, started = time.thread_time(), time.perf_counter()
    value = function(*args)
    timings[name].append(time.perf_counter() - started)
    timings[f"{name}_cpu"].append(time.thread_time() - cpu_started)
    return value


def node_parameters(args: argparse.Namespace, model_config: str) -> dict[str, Any]:
    parameters: dict[str, Any] = {"predictor.device": args.device, "predictor.fp16": args.fp16,
                                  "predictor.cuda_graphs": not args.no_cuda_graphs, "predictor.backend": args.backend,
                                  "predictor.precision": args.precision,
                                  "frame_sizes": [f"{args.width}x{args.height}"]}  # prepared at configure
    if args.checkpoint:
        parameters["checkpoint"] = str(Path(args.checkpoint).resolve())
    else:
        parameters.update({"smoke_test": True, "model_config": model_config})
    return parameters


def run(args: argparse.Namespace) -> dict[str, Any]:
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # before rclpy starts; the nodes inherit it
    # the shipped Fast DDS profile on both sides, as the launch file and a camera driver should have it: without
    # it, images over 512 KB (640x360 rgb8 and up) are lost in transport and the figures measure DDS, not the node
    from sgnet_ros.inputs import fastdds_profile_environment, shipped_fastdds_profile

    os.environ.update(fastdds_profile_environment(os.environ, shipped_fastdds_profile()))
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    progress = args.json != "-" and sys.stderr.isatty()
    images = frames(8, args.height, args.width)
    rclpy.init()
    client = rclpy.create_node("sgnet_node_bench")
    executor = SingleThreadedExecutor()
    executor.add_node(client)
    results: dict[str, Any] = {"width": args.width, "height": args.height, "checkpoint": args.checkpoint or None,
                               "backend": args.backend, "precision": args.precision,
                               **runtime_info(args.device, torch.float16 if args.fp16 else torch.float32,
                                              not args.no_cuda_graphs)}
    try:
        if args.cameras:
            from sgnet_ros.tools.camera_bench import measure_cameras

            results["cameras"] = measure_cameras(client, executor, args.cameras,
                                                 node_parameters(args, args.model_config), images, args.rate,
                                                 args.stream_seconds, f"/sgnet_node_bench_{os.getpid()}")
            return results
        parts = [("overhead", args.model_config), ("stream", args.stream_model_config)]
        if args.depth:
            parts.append(("overhead_depth", args.model_config))
            results["depth_path"] = measure_depth_path(client, args.width, args.height, args.depth_instances,
                                                       args.frames)
        for part, config in parts:
            parameters = node_parameters(args, config)
            if part == "overhead_depth":
                parameters["depth_image_topic"] = "depth/image_raw"
            node = BenchNode(client, f"/sgnet_node_bench_{os.getpid()}_{part}", parameters)
            try:
                wait_ready(executor, node, images[0])
                if part == "overhead_depth":
                    feed = DepthFeed(client, node.namespace, args.width, args.height)
                    try:
                        sequence = [images[i % len(images)] for i in range(args.frames)]
                        results["overhead_depth"] = {
                            **measure_overhead(executor, node, sequence, progress, feed.before_frame),
                            "depth_ack_ms": feed.ack_ms}
                    finally:
                        feed.close()
                elif part == "overhead":
                    sequence = [images[i % len(images)] for i in range(args.frames)]
                    results["overhead"] = {"model": args.checkpoint or config,
                                           **measure_overhead(executor, node, sequence, progress)}
                else:
                    results["stream"] = {"model": args.checkpoint or config, "rate_hz": args.rate,
                                         **measure_stream(executor, node, images, args.rate, args.stream_seconds,
                                                          progress)}
            finally:
                node.stop()
                client.destroy_subscription(node.subscription)
                client.destroy_publisher(node.publisher)
    finally:
        executor.remove_node(client)
        client.destroy_node()
        rclpy.try_shutdown()
    return results


def table(results: dict[str, Any]) -> str:
    if "cameras" in results:
        from sgnet_ros.tools.camera_bench import cameras_table

        return cameras_table(results)
    overhead, stream = results["overhead"], results["stream"]
    rows = [
        ("image", f"{results['width']}x{results['height']} rgb8"),
        ("device", f"{results['device']} ({results['device_name']}), {results['dtype']}"
                   f"{', CUDA graph' if results['cuda_graphs'] else ''}, torch {results['torch']}"),
        ("overhead: model", overhead["model"]),
        ("overhead: frames", str(overhead["frames"])),
        ("latency, median", f"{overhead['latency_ms_median']:.1f} ms"),
        ("predictor time, median", f"{overhead['inference_ms_median']:.1f} ms"),
        ("node overhead, median", f"{overhead['overhead_ms_median']:.1f} ms"),
        ("node overhead, max", f"{overhead['overhead_ms_max']:.1f} ms"),
        ("stream: model", stream["model"]),
        ("stream: rate", f"{stream['rate_hz']:.0f} Hz, {stream['frames_sent']} frames"),
        ("answered / dropped", f"{stream['frames_answered']} / {stream['frames_dropped']}"),
        ("model time, median", f"{stream['model_ms_median']:.1f} ms"),
        ("latency median / p95 / max", f"{stream['latency_ms_median']:.1f} / {stream['latency_ms_p95']:.1f} / "
                                       f"{stream['latency_ms_max']:.1f} ms"),
        ("max latency / model time", f"{stream['latency_max_over_model']:.2f}"),
        ("node RSS first / last quarter", f"{stream['rss_mb_first_quarter']:.0f} / "
                                          f"{stream['rss_mb_last_quarter']:.0f} MB "
                                          f"({stream['rss_mb_growth']:+.1f} MB)"),
    ]
    if "gpu_mb_growth" in stream:
        rows.append(("node GPU memory first / last quarter", f"{stream['gpu_mb_first_quarter']:.0f} / "
                                                              f"{stream['gpu_mb_last_quarter']:.0f} MB "
                                                              f"({stream['gpu_mb_growth']:+.1f} MB)"))
    if "depth_path" in results:
        path, depth = results["depth_path"], results["overhead_depth"]
        rows += [
            ("depth: node overhead, median", f"{depth['overhead_ms_median']:.1f} ms (colour only: "
                                             f"{overhead['overhead_ms_median']:.1f} ms)"),
            ("depth path, in-process", f"{path['total_ms_median']:.2f} ms median a frame, {path['instances']} "
                                       f"instances (deserialize {path['deserialize_ms_median']:.2f}, locate "
                                       f"{path['process_ms_median']:.2f}, message {path['message_ms_median']:.2f})"),
            ("depth path, CPU time", f"{path['cpu_ms_median']:.2f} ms median a frame (deserialize and locate)"),
            ("rviz markers, building", f"{path['markers_ms_median']:.3f} ms median a frame (CPU "
                                       f"{path['markers_cpu_ms_median']:.3f}), max {path['markers_ms_max']:.3f}; "
                                       f"{path['markers_per_frame']:.0f} markers"),
            ("rviz markers, unsubscribed", f"{path['markers_unsubscribed_ms_median']:.4f} ms median a frame (the "
                                           f"subscription check only; nothing built)"),
            ("debug overlay", f"{path['overlay_ms_median']:.2f} ms median a frame (CPU "
                              f"{path['overlay_cpu_ms_median']:.2f}), max {path['overlay_ms_max']:.2f}; "
                              f"{path['instances']} instances, {results['width']}x{results['height']}"),
            ("depth transport (acked)", f"{statistics.median(depth['depth_ack_ms']):.1f} ms median"),
        ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cameras < 0:
        print("sgnet-node-bench: error: --cameras must be 1 or more", file=sys.stderr)
        return 2
    for name in ("width", "height", "frames", "depth_instances"):
        if getattr(args, name) < 1:
            print(f"sgnet-node-bench: error: --{name} must be at least 1", file=sys.stderr)
            return 2
    if args.rate <= 0 or args.stream_seconds <= 0:
        print("sgnet-node-bench: error: --rate and --stream-seconds must be positive", file=sys.stderr)
        return 2
    if args.fp16 and not args.device.startswith("cuda"):
        print("sgnet-node-bench: error: --fp16 runs on CUDA only; add --device cuda", file=sys.stderr)
        return 2
    if args.checkpoint and not Path(args.checkpoint).is_file():
        print(f"sgnet-node-bench: error: checkpoint {args.checkpoint} does not exist", file=sys.stderr)
        return 2
    try:
        results = run(args)
    except BenchError as error:
        print(f"sgnet-node-bench: error: {error}", file=sys.stderr)
        return 2
    if args.json == "-":
        print(json.dumps(results))
        return 0
    if args.json:
        write_json(args.json, results)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
