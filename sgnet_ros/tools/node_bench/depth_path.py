"""The depth path (``--depth``): synthetic aligned depth published beside the frames, and the node's depth work
timed in-process (deserialization, DepthInput.process, the 3D fields), with the rviz markers' and the overlay's cost."""
from __future__ import annotations

import collections
import statistics
import time
from typing import Any, Callable

import numpy as np

from sgnet_ros.tools.node_bench.common import BenchError
from sgnet_ros.tools.node_bench.overhead import STARTUP_TIMEOUT_S

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
