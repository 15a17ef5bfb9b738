"""sgnet-replay: the ROS session. The replay's rclpy node in its own context, the node's output subscriptions
recorded into the output bag, the frames sent and their answers matched by header stamp, and the node's tracker
settings read from its parameters."""
from __future__ import annotations

import collections
import dataclasses
import threading
import time
from pathlib import Path
from typing import Any, Callable

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import GetParameters
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.parameter import parameter_value_to_python
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rclpy.signals import SignalHandlerOptions
from rosbags.interfaces import Connection
from rosbags.rosbag2 import Writer
from rosbags.typesys.store import Typestore
from sensor_msgs.msg import Image

from sgnet_model.config import TrackerConfig
from sgnet_ros.msg import InstanceArray
from sgnet_ros.bag_flavour import BAG_METADATA_VERSION
from sgnet_ros.tools.bag.format import IMAGE_TYPE, STORAGES, stamp_ns

INSTANCES_TYPE = "sgnet_ros/msg/InstanceArray"
DIAGNOSTICS_TYPE = "diagnostic_msgs/msg/DiagnosticArray"
DIAGNOSTICS_TOPIC = "/diagnostics"
PARAMETER_WAIT_S = 2.0  # how long the replay waits for the node's parameters (its tracker settings)


@dataclasses.dataclass
class FrameRecord:
    """One frame sent to (or seen going to) the node, and the node's answer."""

    stamp_ns: int
    sent_ns: int  # time.time_ns() when published (record-only: when received here)
    answered_ns: int | None = None  # when its instances arrived here
    output: Any = None  # the InstanceArray

    @property
    def latency_ms(self) -> float | None:
        return None if self.answered_ns is None else (self.answered_ns - self.sent_ns) / 1e6


class FrameBook:
    """Frames in sending order and their answers, matched by header stamp (first unanswered frame with the
    stamp first, so repeated stamps are matched in order). Thread-safe: the executor thread answers."""

    def __init__(self) -> None:
        self.frames: list[FrameRecord] = []
        self._waiting: dict[int, collections.deque[FrameRecord]] = collections.defaultdict(collections.deque)
        self._condition = threading.Condition()
        self.unmatched_outputs = 0

    def sent(self, stamp: int, sent_ns: int) -> FrameRecord:
        record = FrameRecord(stamp, sent_ns)
        with self._condition:
            self.frames.append(record)
            self._waiting[stamp].append(record)
        return record

    def answer(self, stamp: int, received_ns: int, output: Any) -> None:
        with self._condition:
            waiting = self._waiting.get(stamp)
            if not waiting:
                self.unmatched_outputs += 1
                return
            record = waiting.popleft()
            record.answered_ns, record.output = received_ns, output
            self._condition.notify_all()

    def notify(self) -> None:
        """Something else arrived that a waiting condition may depend on."""
        with self._condition:
            self._condition.notify_all()

    def wait(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``condition()`` holds (checked at each answer or notify) or ``timeout`` seconds passed."""
        with self._condition:
            return self._condition.wait_for(condition, timeout)

    def answered(self) -> list[FrameRecord]:
        with self._condition:
            return [r for r in self.frames if r.answered_ns is not None]


def node_namespace(namespace: str) -> str:
    """'/a/b' for 'a/b', '/a/b/' or '/a/b'; '' for the root namespace."""
    inner = namespace.strip("/")
    return f"/{inner}" if inner else ""


class CameraOutputs:
    """What the replay follows of one camera of the node: its per-frame output topics (instances first), the
    frames sent to it and their answers, which outputs answered the warm-up frame, and its last diagnostics."""

    def __init__(self, name: str, namespace: str, debug_image: bool) -> None:
        self.name = name  # "" for a single-camera node, whose outputs are the node's own topics
        prefix = f"{namespace}/{name}" if name else namespace
        self.instances_topic = f"{prefix}/instances"
        self.per_frame_topics = [self.instances_topic, f"{prefix}/label_image",
                                 *([f"{prefix}/debug_image"] if debug_image else [])]
        self.book = FrameBook()
        self.warm_up_seen: set[str] = set()
        self.last_diagnostics: dict[str, str] | None = None

    def owns_status(self, status_name: str, namespace: str) -> bool:
        """Whether a /diagnostics status is this camera's (the status that counts its frames)."""
        if self.name:
            return status_name.startswith(f"{namespace}/") and status_name.endswith(f": camera {self.name}")
        return status_name.startswith(f"{namespace}/")


class Session:
    """The replay's rclpy node (its own context, spinning in a thread), the node's output subscriptions (per camera
    of the node: ``cameras``, [""] for a single-camera node) and the output bag they are recorded into."""

    def __init__(self, namespace: str, output_bag: Path, storage: str, debug_image: bool,
                 store: Typestore, cameras: tuple[str, ...] = ("",)) -> None:
        self.namespace = node_namespace(namespace)
        self.context = rclpy.Context()
        # Ctrl-C stays a KeyboardInterrupt in the main thread, which ends the replay in order.
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node("sgnet_replay", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.cameras = {name: CameraOutputs(name, self.namespace, debug_image) for name in cameras}
        self.ignored_stamps: set[int] = set()  # the warm-up frames', never recorded
        self.recorded: dict[str, int] = {}
        self._lock = threading.Lock()
        self.writer = Writer(output_bag, version=BAG_METADATA_VERSION, storage_plugin=STORAGES[storage])
        self.writer.open()
        self.output_bag = output_bag
        outputs = [(topic, camera, InstanceArray if topic == camera.instances_topic else Image,
                    INSTANCES_TYPE if topic == camera.instances_topic else IMAGE_TYPE)
                   for camera in self.cameras.values() for topic in camera.per_frame_topics]
        outputs.append((DIAGNOSTICS_TOPIC, None, DiagnosticArray, DIAGNOSTICS_TYPE))
        reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.VOLATILE)
        for topic, camera, message_type, type_name in outputs:
            connection = self.writer.add_connection(topic, type_name, typestore=store)
            self.recorded[topic] = 0
            self.node.create_subscription(
                message_type, topic,
                lambda raw, info, topic=topic, camera=camera, message_type=message_type, connection=connection:
                    self._on_output(topic, camera, message_type, connection, raw, info),
                reliable, raw=True)
        self._running = True
        self._thread = threading.Thread(target=self._spin, name="sgnet-replay-executor", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            while self._running and self.context.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except ExternalShutdownException:
            pass

    @property
    def book(self) -> FrameBook:
        """The frames of the first (for a single-camera node, the only) camera."""
        return next(iter(self.cameras.values())).book

    @property
    def instances_topic(self) -> str:
        return next(iter(self.cameras.values())).instances_topic

    def _on_output(self, topic: str, camera: CameraOutputs | None, message_type: type, connection: Connection,
                   raw: bytes, info: Any) -> None:
        received_ns = info["received_timestamp"] or time.time_ns()
        message = deserialize_message(raw, message_type)
        if camera is None:
            self._note_diagnostics(message)
        else:
            stamp = stamp_ns(message.header)
            if stamp in self.ignored_stamps:
                camera.warm_up_seen.add(topic)
                camera.book.notify()
                return
            if message_type is InstanceArray:
                camera.book.answer(stamp, received_ns, message)
        with self._lock:
            self.writer.write(connection, received_ns, raw)
            self.recorded[topic] += 1
        for each in self.cameras.values():
            each.book.notify()

    def _note_diagnostics(self, message: DiagnosticArray) -> None:
        """Keep each camera's last status from the node under our namespace (the one that counts frames)."""
        for status in message.status:
            values = {item.key: item.value for item in status.values}
            if "frames_received" not in values:
                continue
            for camera in self.cameras.values():
                if camera.owns_status(status.name, self.namespace):
                    camera.last_diagnostics = values

    def per_frame_outputs_done(self) -> bool:
        """Every answered frame's per-frame outputs (instances, label_image, ...) were recorded, on every camera."""
        answered = {name: len(camera.book.answered()) for name, camera in self.cameras.items()}
        with self._lock:
            return all(self.recorded[topic] >= answered[name] for name, camera in self.cameras.items()
                       for topic in camera.per_frame_topics)

    def close(self) -> None:
        self._running = False
        self._thread.join()
        with self._lock:
            self.writer.close()
        self.executor.remove_node(self.node)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def node_tracker_settings(session: Session) -> dict[str, Any]:
    """How the node that publishes the instances tracks: ``tracker_profile`` and ``tracker`` (the ``tracker.*``
    values), read from its parameters through its get_parameters service (rclpy serves it for every node). The
    metrics of a replay are the metrics of these settings: the node's checkpoint profile unless its parameters
    override it. None where the node cannot be asked, or has no such parameter."""
    settings: dict[str, Any] = {"tracker_profile": None, "tracker": None}
    publishers = session.node.get_publishers_info_by_topic(session.instances_topic)
    if not publishers:
        return settings
    node = publishers[0]
    client = session.node.create_client(GetParameters,
                                        f"{node.node_namespace.rstrip('/')}/{node.node_name}/get_parameters")
    try:
        if not client.wait_for_service(timeout_sec=PARAMETER_WAIT_S):
            return settings
        # one request per group: a node answers nothing at all when one of the names asked is not declared
        tracker = _get_parameters(client, [f"tracker.{f.name}" for f in dataclasses.fields(TrackerConfig)])
        profile = _get_parameters(client, ["tracker_profile"])
    finally:
        session.node.destroy_client(client)
    if tracker:
        settings["tracker"] = {name.removeprefix("tracker."): value for name, value in tracker.items()}
    if profile:
        settings["tracker_profile"] = profile["tracker_profile"]
    return settings


def _get_parameters(client: Any, names: list[str]) -> dict[str, Any] | None:
    """The values of ``names`` from a GetParameters client (the session's executor thread completes the call), or
    None when the node does not answer them all in time."""
    future = client.call_async(GetParameters.Request(names=names))
    deadline = time.monotonic() + PARAMETER_WAIT_S
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not future.done() or future.result() is None or len(future.result().values) != len(names):
        return None
    values = future.result().values
    if any(value.type == ParameterType.PARAMETER_NOT_SET for value in values):
        return None
    return {name: parameter_value_to_python(value) for name, value in zip(names, values)}
