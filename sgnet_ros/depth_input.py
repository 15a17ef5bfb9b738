"""The node's optional depth input: an aligned depth image and its camera_info, paired with colour frames by stamp.

With the parameter ``depth_image_topic`` set (with several cameras: that camera's entry of ``depth_image_topics``;
its outputs then under the camera's name), the node subscribes to that depth image (16UC1 millimetres or 32FC1
metres, aligned to the colour image: same size, same optical frame) and to its camera_info
(``depth_camera_info_topic``; by default ``camera_info`` beside the depth topic, image_transport's convention).
Depth messages are kept undecoded in a small buffer; when the inference thread has a colour frame's instances, the
buffered depth image nearest in stamp within ``depth_pairing_tolerance_s`` (0: the same stamp only) is decoded
once and every instance is located in 3D (sgnet_ros/depth.py). A depth image that has not arrived yet is waited
for up to ``depth_pairing_wait_s`` (the model's time usually covers it), but not once a newer depth image shows
that it will not come, and not while the depth stream is absent (``DEPTH_ABSENT_AFTER`` waits in a row ran out with
no depth image arriving: a stopped depth driver then costs the colour outputs nothing until a depth image comes
again; /diagnostics says the stream is absent). The results fill the 3D fields of the
InstanceArray and, with vision_msgs, a ``detections_3d`` Detection3DArray, both with the colour image's header.

Nothing here stops colour-only outputs: a frame without a pairable depth image, without camera_info, or with a depth
image of the wrong encoding or size gets its instances with ``position_valid`` false, the reason is logged (at most
once per ``bad_input_log_period_s`` for each kind) and /diagnostics carries a "depth" status that says what is
wrong. With ``depth_image_topic`` empty the node creates none of this: no subscription, no cost.
"""
from __future__ import annotations

import bisect
import collections
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_policy_name_from_kind
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from sgnet_model.instances import FrameResult
from sgnet_ros.depth import (DEPTH_ENCODINGS, CameraIntrinsics, DepthError, Instance3D, check_depth_frame,
                             decode_depth, locate_instance)
from sgnet_ros.inputs import CameraSubscription
from sgnet_ros.outputs import Detection3DArray, detection3d_array_msg
from sgnet_ros.params import CameraSpec, NodeSettings


BUFFER_FRAMES = 30  # depth images kept for pairing: one second of a 30 Hz camera
DEPTH_ABSENT_AFTER = 3  # this many pairing waits in a row with no depth image arriving: the stream is absent
DETECTIONS_3D_TOPIC = "detections_3d"


def camera_info_topic(depth_image_topic: str, configured: str) -> str:
    """``configured``, or image_transport's camera_info topic of the depth image: its sibling ``camera_info``."""
    if configured:
        return configured
    namespace, _, _ = depth_image_topic.rpartition("/")
    return f"{namespace}/camera_info" if namespace or depth_image_topic.startswith("/") else "camera_info"


class DepthBuffer:
    """The newest depth image messages by header stamp (ns); finds the one nearest a colour frame's stamp."""

    def __init__(self, capacity: int = BUFFER_FRAMES) -> None:
        self._messages: collections.deque[tuple[int, Any]] = collections.deque(maxlen=capacity)

    def add(self, stamp_ns: int, message: Any) -> None:
        self._messages.append((stamp_ns, message))

    def __len__(self) -> int:
        return len(self._messages)

    def pairing_settled(self, stamp_ns: int, tolerance_ns: int) -> bool:
        """Whether waiting cannot change the pairing of a frame stamped ``stamp_ns``: a depth image within the
        tolerance is here, or one stamped after the tolerance window is (depth images arrive in stamp order)."""
        return any(stamp >= stamp_ns - tolerance_ns for stamp, _ in self._messages)

    def nearest(self, stamp_ns: int) -> tuple[int, Any] | None:
        """(|stamp difference| in ns, message) of the buffered message nearest in stamp, or None if empty."""
        if not self._messages:
            return None
        ordered = sorted(self._messages, key=lambda item: item[0])  # arrival order need not be stamp order
        stamps = [stamp for stamp, _ in ordered]
        index = bisect.bisect_left(stamps, stamp_ns)
        candidates = [ordered[i] for i in (index - 1, index) if 0 <= i < len(ordered)]
        stamp, message = min(candidates, key=lambda item: abs(item[0] - stamp_ns))
        return abs(stamp - stamp_ns), message


def _stamp_ns(header: Header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


class DepthInput:
    """The depth subscriptions, the pairing buffer, the 3D estimates of each frame and the depth diagnostics."""

    def __init__(self, node: Node, settings: NodeSettings, camera: CameraSpec) -> None:
        config = settings.node
        self._node = node
        self._config = config
        self._camera = camera
        self._depth_topic = camera.depth_image_topic
        self._info_topic = camera_info_topic(camera.depth_image_topic, camera.depth_camera_info_topic)
        self._tolerance_ns = round(config.depth_pairing_tolerance_s * 1e9)
        self._lock = threading.Condition()  # notified when a depth image arrives
        self._buffer = DepthBuffer()
        self._intrinsics: CameraIntrinsics | None = None
        self._info_problem: str | None = None  # why the last camera_info cannot be used
        self._counts = collections.Counter()  # totals since activation
        self._problems: dict[str, str] = {}  # kind -> the latest problem of that kind since the last located frame
        self._last_offset_ms: float | None = None
        self._last_logged: dict[str, float] = {}
        self._missed_waits = 0  # pairing waits in a row that ran out with no depth image arriving
        # the depth image follows qos_reliability as the colour image does (auto: as its publishers offer)
        self._depth_subscription = CameraSubscription(
            node, Image, self._depth_topic, self.on_depth, max(config.qos_depth, 2), config.qos_reliability,
            lambda topic, event: self._problem("qos", f"the depth publisher on {topic} offers incompatible QoS "
                                                      f"({qos_policy_name_from_kind(event.last_policy_kind)}); set qos_reliability to match "
                                                      f"it"),
            lambda topic, event: self._problem("lost", f"{event.total_count_change} depth images lost in transport "
                                                       f"on {topic} (Fast DDS and large images: docs/ros.md)"))
        # camera_info is small and drivers publish it with either reliability: best effort takes both.
        info_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                              durability=DurabilityPolicy.VOLATILE)
        self._info_subscription = node.create_subscription(CameraInfo, self._info_topic, self.on_camera_info,
                                                           info_qos)
        self._publisher = None
        if Detection3DArray is not None:
            self._publisher = node.create_publisher(Detection3DArray, camera.output(DETECTIONS_3D_TOPIC),
                                                    config.output_qos_depth)
        self._diagnostics = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._timer = node.create_timer(config.diagnostics_period_s, self._publish_diagnostics)
        node.get_logger().info(f"depth on: {self._node.resolve_topic_name(self._depth_topic)} with "
                               f"{self._node.resolve_topic_name(self._info_topic)}, paired within "
                               f"{config.depth_pairing_tolerance_s:g} s")

    @classmethod
    def create(cls, node: Node, settings: NodeSettings, camera: CameraSpec) -> "DepthInput | None":
        """The depth input of an activating node's camera, or None when it has no depth topic (no depth, no
        cost)."""
        return cls(node, settings, camera) if camera.depth_image_topic else None

    def destroy(self) -> None:
        """Undo create (the node is deactivating; the inference thread has stopped)."""
        self._depth_subscription.destroy()
        self._node.destroy_subscription(self._info_subscription)
        if self._publisher is not None:
            self._node.destroy_publisher(self._publisher)
        self._node.destroy_timer(self._timer)
        self._node.destroy_publisher(self._diagnostics)

    # Subscription callbacks (executor thread) -------------------------------------------------------------------

    def on_depth(self, message: Image) -> None:
        if message.encoding not in DEPTH_ENCODINGS:
            self._problem("encoding", f"depth image on '{self._depth_topic}' has encoding {message.encoding!r}; the "
                                      f"node takes {' or '.join(DEPTH_ENCODINGS)} (millimetres or metres): is "
                                      f"depth_image_topic a colour or colourised topic? 3D is off until it is fixed")
            return
        with self._lock:
            self._buffer.add(_stamp_ns(message.header), message)
            self._counts["depth_received"] += 1
            self._missed_waits = 0
            self._lock.notify_all()

    def on_camera_info(self, message: CameraInfo) -> None:
        try:
            intrinsics = CameraIntrinsics.from_camera_info(message.k, message.width, message.height)
            problem = None
        except DepthError as error:
            intrinsics, problem = None, f"camera_info on '{self._info_topic}': {error}"
        with self._lock:
            self._intrinsics, self._info_problem = intrinsics, problem

    # The inference thread ----------------------------------------------------------------------------------------

    def process(self, header: Header, result: FrameResult, colour_size: tuple[int, int]) -> dict[int, Instance3D]:
        """Pair the frame (``header``, (height, width)) with a depth image, locate its instances in 3D, publish
        detections_3d; returns track id -> 3D estimate (empty when the frame has no usable depth)."""
        spatial = self._locate(header, result, colour_size)
        if self._publisher is not None:
            self._publisher.publish(detection3d_array_msg(result, header, spatial))
        return spatial

    def _locate(self, header: Header, result: FrameResult, colour_size: tuple[int, int]) -> dict[int, Instance3D]:
        stamp = _stamp_ns(header)
        with self._lock:
            # The depth image of this frame may still be on its way: wait for it up to depth_pairing_wait_s, unless
            # a depth image newer than the pairing window has arrived already (then the matching one never will).
            # An absent stream (a stopped depth driver) is not waited for at all.
            absent = self._missed_waits >= DEPTH_ABSENT_AFTER
            if not absent:
                received = self._counts["depth_received"]
                settled = self._lock.wait_for(lambda: self._buffer.pairing_settled(stamp, self._tolerance_ns),
                                              self._config.depth_pairing_wait_s)
                if not settled and self._counts["depth_received"] == received:
                    self._missed_waits += 1
            nearest = self._buffer.nearest(stamp)
            intrinsics, info_problem = self._intrinsics, self._info_problem
            buffered = len(self._buffer)
        if absent:
            self._problem("absent", f"no depth image on '{self._depth_topic}' through {DEPTH_ABSENT_AFTER} pairing "
                                    f"waits: the depth stream is absent, colour frames no longer wait for it "
                                    f"(colour-only outputs go on until depth images come again)")
            return {}
        if nearest is None or nearest[0] > self._tolerance_ns:
            detail = ("no depth image received yet" if nearest is None else
                      f"the nearest of the {buffered} latest depth images is {nearest[0] / 1e6:.1f} ms away")
            self._note_offset(None if nearest is None else nearest[0])
            self._problem("unpaired", f"no depth image on '{self._depth_topic}' within depth_pairing_tolerance_s = "
                                      f"{self._config.depth_pairing_tolerance_s:g} s of the colour frame stamped "
                                      f"{stamp / 1e9:.6f} ({detail}): check that both come from one camera with one "
                                      f"clock, or raise the tolerance; colour-only outputs go on")
            return {}
        offset_ns, message = nearest
        self._note_offset(offset_ns)
        if intrinsics is None:
            self._problem("camera_info", info_problem or f"no camera_info received on '{self._info_topic}': 3D needs "
                                                         f"the depth image's intrinsics (set depth_camera_info_topic)")
            return {}
        try:
            check_depth_frame((message.height, message.width), colour_size, intrinsics)
        except DepthError as error:
            self._problem("size", str(error))
            return {}
        if not result.instances:  # paired, nothing to locate: no need to decode
            self._located()
            return {}
        try:
            depth = decode_depth(message.encoding, message.height, message.width, message.step,
                                 bool(message.is_bigendian), message.data)  # (H, W) metres
        except DepthError as error:
            self._problem("data", f"depth image on '{self._depth_topic}': {error}")
            return {}
        spatial = {}
        for instance in result.instances:
            located = locate_instance(instance.mask, depth, intrinsics, self._config.depth_mask_erosion_px,
                                      self._config.depth_min_valid_pixels)
            if located is not None:
                spatial[instance.track_id] = located
        self._located()
        return spatial

    def _located(self) -> None:
        """A frame was paired with usable depth: count it; the problems seen so far are over."""
        with self._lock:
            self._counts["frames_paired"] += 1
            self._problems.clear()

    # Problems and diagnostics -----------------------------------------------------------------------------------

    def _note_offset(self, offset_ns: int | None) -> None:
        with self._lock:
            self._last_offset_ms = None if offset_ns is None else offset_ns / 1e6

    def _problem(self, kind: str, text: str) -> None:
        """Count a problem of this kind, keep it for /diagnostics until a frame is located again, log it at most
        once per bad_input_log_period_s."""
        with self._lock:
            self._counts[f"problem_{kind}"] += 1
            self._problems[kind] = text
        now = time.monotonic()
        if now - self._last_logged.get(kind, -float("inf")) >= self._config.bad_input_log_period_s:
            self._last_logged[kind] = now
            self._node.get_logger().warning(text)

    def status(self) -> DiagnosticStatus:
        """WARN with every kind of problem seen since the last frame located in 3D, else OK; totals as values."""
        with self._lock:
            counts, problems = dict(self._counts), list(self._problems.values())
            has_info, info_problem, offset_ms = self._intrinsics is not None, self._info_problem, self._last_offset_ms
        paired = counts.get("frames_paired", 0)
        if problems:
            level, message = DiagnosticStatus.WARN, " | ".join(problems)
        else:
            level, message = DiagnosticStatus.OK, (f"{paired} frame(s) located in 3D" if paired
                                                   else "waiting for colour frames")
        values = {"depth_image_topic": self._node.resolve_topic_name(self._depth_topic),
                  "camera_info_topic": self._node.resolve_topic_name(self._info_topic),
                  "camera_info": "ok" if has_info else (info_problem or "none received"),
                  "depth_received": str(counts.get("depth_received", 0)),
                  "frames_paired": str(paired),
                  "frames_unpaired": str(counts.get("problem_unpaired", 0)),
                  "frames_depth_absent": str(counts.get("problem_absent", 0)),
                  "frames_without_camera_info": str(counts.get("problem_camera_info", 0)),
                  "depth_rejected": str(sum(counts.get(f"problem_{kind}", 0) for kind in ("encoding", "size", "data"))),
                  "last_pairing_offset_ms": "" if offset_ms is None else f"{offset_ms:.3f}"}
        which = f"{self._camera.name} depth" if self._camera.name else "depth"
        return DiagnosticStatus(level=level, name=f"{self._node.get_fully_qualified_name()}: {which}",
                                message=message, hardware_id="depth",
                                values=[KeyValue(key=key, value=value) for key, value in values.items()])

    def _publish_diagnostics(self) -> None:
        self._depth_subscription.refresh()  # publishers come and go: follow their reliability (auto)
        message = DiagnosticArray(status=[self.status()])
        message.header.stamp = self._node.get_clock().now().to_msg()
        self._diagnostics.publish(message)
