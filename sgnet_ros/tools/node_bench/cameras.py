"""``sgnet-node-bench --cameras N``: one node serving N cameras against one node per camera, over real DDS.

Three runs, each streaming the same frames to every camera at ``--rate`` Hz for ``--stream-seconds`` (a rate the
model cannot keep up with, so that throughput is what the node can do): a node serving one camera, a node serving
N cameras (``image_topics``), and N separate one-camera nodes at once. Reported: the resident memory (RSS) of the
N-camera node against the one-camera node (the peak over the run, VmHWM: weights, activations of a batch,
per-camera buffers), the frames processed per second in total by the N-camera node against the N separate nodes, and each
camera's share of the N-camera node's processed frames (1/N when it is fair).
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from sgnet_ros.tools.node_bench.common import BenchError, image_message, spin_until, stop_process

STARTUP_TIMEOUT_S = 600.0  # N nodes loading a model at once on a busy machine take minutes


class CamerasNode:
    """A node process serving ``cameras`` camera topics, and this process's publishers and subscriptions to it."""

    def __init__(self, client_node: Any, namespace: str, cameras: list[str], parameters: dict[str, Any]) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from sgnet_ros.msg import InstanceArray

        topics = [f"{namespace}_{camera}/image_raw" for camera in cameras]
        args = [sys.executable, "-m", "sgnet_ros.node", "--ros-args", "-r", f"__ns:={namespace}",
                "-p", "qos_reliability:=reliable", "-p", "debug_image:=false", "-p", "label_image:=false",
                "-p", "class_image:=false", "-p", f"image_topics:={json.dumps(topics)}",
                "-p", f"camera_names:={json.dumps(cameras)}"]
        for key, value in parameters.items():
            args += ["-p", f"{key}:={json.dumps(value)}"]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._output: list[str] = []
        threading.Thread(target=self._read_output, daemon=True).start()
        self._lock = threading.Lock()
        self.answered = {camera: set() for camera in cameras}  # frame indices answered per camera
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.publishers = {camera: client_node.create_publisher(Image, topic, qos)
                           for camera, topic in zip(cameras, topics)}
        self.subscriptions = [client_node.create_subscription(
            InstanceArray, f"{namespace}/{camera}/instances",
            lambda message, camera=camera: self._record(camera, message), 100) for camera in cameras]
        self.client_node = client_node

    def _read_output(self) -> None:
        for line in self.process.stdout:
            self._output.append(line)

    def _record(self, camera: str, message: Any) -> None:
        with self._lock:
            self.answered[camera].add(int(message.header.frame_id))

    def answered_frame(self, camera: str, index: int) -> bool:
        with self._lock:
            return index in self.answered[camera]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {camera: len(indices) for camera, indices in self.answered.items()}

    def rss_mb(self) -> float:
        """The node's peak resident memory so far (VmHWM), in MB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("cannot read the node's memory use from /proc")

    def check_alive(self) -> None:

        if self.process.poll() is not None:
            raise BenchError(f"the node exited with {self.process.returncode}: {''.join(self._output)[-2000:]}")

    def stop(self) -> None:
        for subscription in self.subscriptions:
            self.client_node.destroy_subscription(subscription)
        for publisher in self.publishers.values():
            self.client_node.destroy_publisher(publisher)
        stop_process(self.process, 30.0)


def wait_all_ready(executor: Any, nodes: list[CamerasNode], rgb: np.ndarray) -> None:
    """Publish a warm-up frame (index 0) on every camera until every camera of every node has answered."""

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        for node in nodes:
            node.check_alive()
            for publisher in node.publishers.values():
                publisher.publish(image_message(rgb, 0, 0.1))
        if spin_until(executor, lambda: all(min(n.counts().values()) > 0 for n in nodes), 2.0):
            return
    raise BenchError(f"the nodes did not answer within {STARTUP_TIMEOUT_S:.0f} s")


def stream(executor: Any, nodes: list[CamerasNode], images: list[np.ndarray], rate: float, seconds: float
           ) -> dict[str, Any]:
    """Frames 1.. at ``rate`` on every camera of every node; frames answered per camera, per second in total."""

    period, count = 1.0 / rate, int(round(rate * seconds))
    before = [node.counts() for node in nodes]
    start = time.perf_counter()
    for index in range(1, count + 1):
        while (now := time.perf_counter()) < start + (index - 1) * period:
            executor.spin_once(timeout_sec=max(0.0, min(0.002, start + (index - 1) * period - now)))
        message = image_message(images[index % len(images)], index, period)
        for node in nodes:
            for publisher in node.publishers.values():
                publisher.publish(message)
    # the last answers: until every camera has answered its last frame (a node that keeps the newest frame always
    # serves it), at most 2 s (a last frame lost in transport)
    spin_until(executor, lambda: all(node.answered_frame(camera, count) for node in nodes
                                     for camera in node.publishers), 2.0)
    elapsed = time.perf_counter() - start
    per_camera = {camera: answered - before[n][camera]
                  for n, node in enumerate(nodes) for camera, answered in node.counts().items()}
    return {"frames_sent_per_camera": count, "seconds": elapsed, "frames_out_per_camera": per_camera,
            "fps_total": sum(per_camera.values()) / elapsed}


def measure_cameras(client: Any, executor: Any, cameras: int, parameters: dict[str, Any], images: list[np.ndarray],
                    rate: float, seconds: float, namespace: str) -> dict[str, Any]:
    names = [f"cam{k}" for k in range(cameras)]
    runs: dict[str, Any] = {}
    for run, layout in (("one_camera", [names[:1]]), ("one_node", [names]), ("separate_nodes", [[n] for n in names])):
        nodes = [CamerasNode(client, f"{namespace}_{run}_{k}", group, parameters) for k, group in enumerate(layout)]
        try:
            wait_all_ready(executor, nodes, images[0])
            runs[run] = stream(executor, nodes, images, rate, seconds)
            runs[run]["rss_mb"] = [node.rss_mb() for node in nodes]
        finally:
            for node in nodes:
                node.stop()
    shares = runs["one_node"]["frames_out_per_camera"]
    total = sum(shares.values())
    return {"cameras": cameras, "rate_hz": rate, **runs,
            "rss_ratio": runs["one_node"]["rss_mb"][0] / runs["one_camera"]["rss_mb"][0],
            "fps_ratio_vs_separate_nodes": runs["one_node"]["fps_total"] / runs["separate_nodes"]["fps_total"]
            if runs["separate_nodes"]["fps_total"] else None,
            "camera_shares": {camera: count / total if total else 0.0 for camera, count in shares.items()},
            "min_share_times_n": min(shares.values()) * cameras / total if total else 0.0}


def cameras_table(results: dict[str, Any]) -> str:
    figures = results["cameras"]
    n = figures["cameras"]
    rows = [
        ("image", f"{results['width']}x{results['height']} rgb8, {figures['rate_hz']:.0f} Hz per camera"),
        (f"peak RSS: 1 camera / {n} cameras, one node",
         f"{figures['one_camera']['rss_mb'][0]:.0f} / {figures['one_node']['rss_mb'][0]:.0f} MB "
         f"(x{figures['rss_ratio']:.2f}); {n} separate nodes: {sum(figures['separate_nodes']['rss_mb']):.0f} MB"),
        ("frames/s: one node / separate nodes", f"{figures['one_node']['fps_total']:.2f} / "
                                                f"{figures['separate_nodes']['fps_total']:.2f}"
                                                + (f" (x{figures['fps_ratio_vs_separate_nodes']:.2f})"
                                                   if figures["fps_ratio_vs_separate_nodes"] else "")),
        ("per-camera share of frames out", ", ".join(f"{camera} {share:.3f}"
                                                     for camera, share in figures["camera_shares"].items())),
        ("least share x N", f"{figures['min_share_times_n']:.3f}"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
