"""The node in its own process, and the two measurements against it: the node's overhead on frames sent one at a
time, and its latency and memory under a camera stream faster than the model."""
from __future__ import annotations

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
from tqdm import tqdm

from sgnet_ros.tools.node_bench.common import BenchError, image_message, spin_until, stop_process

STARTUP_TIMEOUT_S = 120.0


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

    def cpu_s(self) -> float:
        """CPU time the node's process has used (user and system, all threads), from /proc."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (proc(5))

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
        stop_process(self.process, 20.0)


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
    cpu_before = node.cpu_s()
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
    time.sleep(0.2)  # the node's work after publishing (a recorder's writer thread) counts in its CPU time
    return {"frames": len(images), "latency_ms_median": statistics.median(latencies),
            "inference_ms_median": statistics.median(inference), "overhead_ms_median": statistics.median(overhead),
            "overhead_ms_max": max(overhead), "cpu_ms_per_frame": (node.cpu_s() - cpu_before) * 1000 / len(images)}


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
    # the last frames' answers: until the last frame's (the node keeps the newest frame, so it is served last), at
    # most 3 s (lost in transport)
    spin_until(executor, lambda: node.arrival(count) is not None, 3.0)
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
