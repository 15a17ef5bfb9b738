"""``sgnet-replay``: replay a ROS 2 bag through the running SG-Net node, record what it publishes, and report
frames, latency, the node's own time and, with ground truth, the YouTube-VIS metrics of its outputs.

The bag is read with rosbags. Every image message is deserialized once (to check it and to read its header
stamp) and its bytes are published unchanged with rclpy, so the node receives exactly what the bag holds; a
message that does not deserialize is reported and skipped, never sent. Three ways to pace the frames:

- original timing (default) or ``--rate R``: frame i goes out at its log time in the bag, divided by R. The node
  always works on its newest frame, so frames it cannot keep up with are dropped, as from a live camera;
- ``--as-fast-as-node`` (lock-step): the next frame goes out when the node's ``instances`` for the previous one
  arrived (or after ``--timeout``). Nothing is dropped, and the node's outputs equal ``sgnet-eval``'s on the
  same frames and checkpoint (same thresholds and tracker settings);
- ``--record-only``: publish nothing; record the node's outputs while someone else plays the bag
  (``ros2 bag play BAG --remap /camera/image_raw:=/<ns>/image`` on a ROS install), matching them to the images
  seen on the node's input topic. Ends on Ctrl-C, or ``--idle`` seconds after the last image.

Before the first frame a warm-up frame (the bag's first image stamped one day later) is sent until the node
answers: that completes discovery, pays the model's first-run costs, and, as the bag's first stamp lies before
it, makes the node reset its tracks at the bag's first frame. Its outputs are not recorded.

The report names the tracker settings the node ran (``tracker_profile`` and the ``tracker.*`` values, read from the
node's parameters at the end of the replay), since the metrics depend on them: video AP rewards the node's
evaluation profile (low start/continue scores), a robot runs the robot profile (few, confident tracks).

``--clock`` publishes /clock (rosgraph_msgs/Clock) set to each frame's header stamp just before the frame goes out,
as ``ros2 bag play --clock`` does with the bag's time: a node started with ``use_sim_time:=true`` then lives in the
recording's time, so the input age in its diagnostics (its clock minus the image's stamp) is the replay's, not the
difference between today and the day of the recording.

Outputs are matched to frames by header stamp (the node copies the input header). End-to-end latency is
from publishing a frame to receiving its ``instances`` here (the middleware's receive time); the node's own time
is the ``inference_ms`` it publishes with each frame. Written to ``--output``: ``outputs/`` (a bag of the node's
``instances``, ``label_image``, optionally ``debug_image``, and ``/diagnostics``), ``report.json``,
``frames.csv`` (one row per frame), and with ground truth ``results.json``/``results.zip`` as ``sgnet-eval``
writes them.

Depth: when the bag holds a depth image topic (16UC1 or 32FC1, as ``sgnet-bag`` writes for a set with depth) and
its camera_info, each colour frame's depth image and camera_info with the same stamp go out just before it, to
``--node-depth-topic`` and the camera_info beside it (start the node with ``depth_image_topic`` set to it). With a
ground truth that has 3D (``sgnet_depth``), the report gives the 3D centroid error of the node's instances, each
matched to the shape whose mask it overlaps most (IoU >= 0.5), relative to the shape's distance.
"""
from __future__ import annotations

import argparse
import collections
import csv
import dataclasses
import json
import math
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pycocotools.mask as mask_utils
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
from rosbags.rosbag2 import Reader, Writer
from rosbags.serde import SerdeError
from rosbags.typesys.store import Typestore
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from tqdm import tqdm

from sgnet_model.config import TrackerConfig
from sgnet_model.ytvis import (RLE, TrackObservation, VideoResult, YTVISData, YTVISError, build_video_results,
                               parse_annotations, save_results)
from sgnet_model.ytvis_metric import evaluate_vis, metric_lines, tracking_figures
from sgnet_ros.bag import (BAG_KEY, BAG_METADATA_VERSION, CAMERA_INFO_TYPE, COMPRESSED_SUFFIX, COMPRESSED_TYPE,
                           DEPTH_KEY, IMAGE_TYPE, STORAGES, BagError, camera_info_topic, ros_typestore, stamp_ns)
from sgnet_ros.depth import DEPTH_ENCODINGS
from sgnet_ros.masks import instance_mask
from sgnet_ros.msg import InstanceArray

INSTANCES_TYPE = "sgnet_ros/msg/InstanceArray"
DIAGNOSTICS_TYPE = "diagnostic_msgs/msg/DiagnosticArray"
DIAGNOSTICS_TOPIC = "/diagnostics"
PARAMETER_WAIT_S = 2.0  # how long the replay waits for the node's parameters (its tracker settings)
IMAGE_TYPES = {IMAGE_TYPE: Image, COMPRESSED_TYPE: CompressedImage}
WARM_UP_AHEAD_NS = 86_400 * 1_000_000_000  # the warm-up frame's stamp: one day after the bag's first frame
WARM_UP_PERIOD_S = 1.0  # the warm-up frame is sent again this often until the node answers
DRAIN_S = 2.0  # after the last answer, wait this long at most for the per-frame outputs still under way
PUBLISH_DEPTH = 10
DEPTH_DISCOVERY_S = 5.0  # at the first frame, wait this long at most for the node's depth subscriptions
CLOCK_TOPIC = "/clock"


class ReplayError(RuntimeError):
    """The replay cannot go on; the message says what is wrong and what to do."""


def _log(text: str) -> None:
    tqdm.write(f"sgnet-replay: {text}", file=sys.stderr)


# --------------------------------------------------------------------------------------------------- the bag


@dataclasses.dataclass(frozen=True)
class BagImage:
    index: int  # position among the topic's messages
    log_ns: int  # the bag's log time
    stamp_ns: int  # the header stamp
    raw: bytes  # CDR bytes as stored


@dataclasses.dataclass
class BagStatistics:
    skipped_corrupt: int = 0
    stamps_out_of_order: int = 0
    stamps_repeated: int = 0


def open_bag(path: Path) -> Reader:
    if not path.exists():
        raise ReplayError(f"bag {path} does not exist")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as error:  # rosbags raises its own errors, OSError and sqlite/mcap errors for broken files
        raise ReplayError(f"cannot read bag {path}: {type(error).__name__}: {error}") from None
    return reader


def image_connections(reader: Reader, topic: str | None, path: Path) -> list[Connection]:
    """The connections of the image topic to replay: ``topic``, or the bag's only image topic."""
    image_topics = sorted({c.topic for c in reader.connections if c.msgtype in IMAGE_TYPES})
    listing = ", ".join(f"{t} ({c.msgtype}, {c.msgcount} messages)"
                        for t in image_topics for c in reader.connections if c.topic == t) or "none"
    if topic is None:
        if len(image_topics) != 1:
            raise ReplayError(f"bag {path} has {len(image_topics)} image topics ({listing}): choose one with --topic")
        topic = image_topics[0]
    connections = [c for c in reader.connections if c.topic == topic]
    if not connections:
        raise ReplayError(f"topic {topic} is not in bag {path}; its image topics: {listing}")
    types = {c.msgtype for c in connections}
    if len(types) != 1 or not types <= IMAGE_TYPES.keys():
        raise ReplayError(f"topic {topic} of bag {path} holds {', '.join(sorted(types))}, not "
                          f"{IMAGE_TYPE} or {COMPRESSED_TYPE}")
    if sum(c.msgcount for c in connections) == 0:
        raise ReplayError(f"topic {topic} of bag {path} has no messages")
    return connections


def bag_images(reader: Reader, connections: list[Connection], store: Typestore,
               statistics: BagStatistics) -> Iterator[BagImage]:
    """The topic's messages in log-time order. A message that does not deserialize is reported and skipped;
    a header stamp before the previous one is reported (the node resets its tracks there)."""
    previous: int | None = None
    for index, (connection, log_ns, raw) in enumerate(reader.messages(connections=connections)):
        try:
            message = store.deserialize_cdr(raw, connection.msgtype)
        except SerdeError as error:
            statistics.skipped_corrupt += 1
            _log(f"warning: message {index} on {connection.topic} (log time {log_ns / 1e9:.6f} s) does not "
                 f"deserialize as {connection.msgtype} and is skipped: {error}")
            continue
        stamp = stamp_ns(message.header)
        if previous is not None and stamp < previous:
            statistics.stamps_out_of_order += 1
            _log(f"warning: message {index} on {connection.topic}: header stamp {stamp / 1e9:.6f} s is before the "
                 f"previous frame's {previous / 1e9:.6f} s; the node resets its tracks there")
        elif stamp == previous:
            statistics.stamps_repeated += 1
            _log(f"warning: message {index} on {connection.topic}: header stamp {stamp / 1e9:.6f} s repeats the "
                 f"previous frame's; outputs are matched to such frames in order")
        previous = stamp
        yield BagImage(index, log_ns, stamp, bytes(raw))


# ------------------------------------------------------------------------------------------- frames and outputs


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


def _namespace(namespace: str) -> str:
    """'/a/b' for 'a/b', '/a/b/' or '/a/b'; '' for the root namespace."""
    inner = namespace.strip("/")
    return f"/{inner}" if inner else ""


class Session:
    """The replay's rclpy node (its own context, spinning in a thread), the node's output subscriptions and the
    output bag they are recorded into."""

    def __init__(self, namespace: str, output_bag: Path, storage: str, debug_image: bool,
                 store: Typestore) -> None:
        self.namespace = _namespace(namespace)
        self.context = rclpy.Context()
        # Ctrl-C stays a KeyboardInterrupt in the main thread, which ends the replay in order.
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node("sgnet_replay", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.book = FrameBook()
        self.ignored_stamp: int | None = None  # the warm-up frame's, never recorded
        self.warm_up_seen: set[str] = set()
        self.recorded: dict[str, int] = {}
        self.last_diagnostics: dict[str, str] | None = None
        self._lock = threading.Lock()
        self.writer = Writer(output_bag, version=BAG_METADATA_VERSION, storage_plugin=STORAGES[storage])
        self.writer.open()
        self.output_bag = output_bag
        self.instances_topic = f"{self.namespace}/instances"
        outputs = [(self.instances_topic, InstanceArray, INSTANCES_TYPE),
                   (f"{self.namespace}/label_image", Image, IMAGE_TYPE)]
        if debug_image:
            outputs.append((f"{self.namespace}/debug_image", Image, IMAGE_TYPE))
        self.per_frame_topics = [topic for topic, _, _ in outputs]
        outputs.append((DIAGNOSTICS_TOPIC, DiagnosticArray, DIAGNOSTICS_TYPE))
        reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.VOLATILE)
        for topic, message_type, type_name in outputs:
            connection = self.writer.add_connection(topic, type_name, typestore=store)
            self.recorded[topic] = 0
            self.node.create_subscription(
                message_type, topic,
                lambda raw, info, topic=topic, message_type=message_type, connection=connection:
                    self._on_output(topic, message_type, connection, raw, info),
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

    def _on_output(self, topic: str, message_type: type, connection: Connection, raw: bytes, info: Any) -> None:
        received_ns = info["received_timestamp"] or time.time_ns()
        message = deserialize_message(raw, message_type)
        if message_type is DiagnosticArray:
            self._note_diagnostics(message)
        else:
            stamp = stamp_ns(message.header)
            if stamp == self.ignored_stamp:
                self.warm_up_seen.add(topic)
                self.book.notify()
                return
            if message_type is InstanceArray:
                self.book.answer(stamp, received_ns, message)
        with self._lock:
            self.writer.write(connection, received_ns, raw)
            self.recorded[topic] += 1
        self.book.notify()

    def _note_diagnostics(self, message: DiagnosticArray) -> None:
        """Keep the last status of the node under our namespace (the one that counts frames)."""
        for status in message.status:
            values = {item.key: item.value for item in status.values}
            if status.name.startswith(f"{self.namespace}/") and "frames_received" in values:
                self.last_diagnostics = values

    def per_frame_outputs_done(self) -> bool:
        """Every answered frame's per-frame outputs (instances, label_image, ...) were recorded."""
        answered = len(self.book.answered())
        with self._lock:
            return all(self.recorded[topic] >= answered for topic in self.per_frame_topics)

    def close(self) -> None:
        self._running = False
        self._thread.join()
        with self._lock:
            self.writer.close()
        self.executor.remove_node(self.node)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


# -------------------------------------------------------------------------------------------------- replaying


@dataclasses.dataclass(frozen=True)
class Pacing:
    mode: str = "timed"  # "timed", "lock-step" or "record-only"
    rate: float = 1.0  # timed: speed factor over the bag's log times
    timeout_s: float = 10.0  # lock-step: longest wait for one answer; timed: for the answers after the last frame
    wait_s: float = 30.0  # longest wait for the node to appear and answer the warm-up frame
    idle_s: float = 5.0  # record-only: stop this long after the last image


def _subscription_hint(session: Session, topic: str) -> str:
    """A hint when the node's image subscription is best-effort (large images may never arrive)."""
    infos = session.node.get_subscriptions_info_by_topic(topic)
    if any(info.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for info in infos):
        return (f"; the node subscribes to {topic} best-effort, and Fast DDS does not deliver images larger than its "
                f"512 KB shared-memory segment to best-effort subscriptions: start the node with "
                f"-p qos_reliability:=reliable")
    return ""


def _publisher(session: Session, topic: str, message_type: type, pacing: Pacing) -> Any:
    publisher = session.node.create_publisher(message_type, topic, QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=PUBLISH_DEPTH, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE))
    deadline = time.monotonic() + pacing.wait_s
    while publisher.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            raise ReplayError(f"no node subscribes to {topic} after {pacing.wait_s:g} s: start the node in namespace "
                              f"'{session.namespace or '/'}' (sgnet-node --ros-args -r __ns:={session.namespace or '/'}"
                              f"), or give its namespace with --node-namespace and its input topic with --node-topic; "
                              f"it must be active and on the same ROS_DOMAIN_ID")
        time.sleep(0.05)
    return publisher


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


def _await_outputs(session: Session, pacing: Pacing) -> None:
    """Wait for the node's instances publisher; record only the other per-frame topics it publishes (the node
    can turn label_image and debug_image off)."""
    node = session.node
    deadline = time.monotonic() + pacing.wait_s
    while node.count_publishers(session.instances_topic) == 0:
        if time.monotonic() > deadline:
            raise ReplayError(f"no node publishes {session.instances_topic} after {pacing.wait_s:g} s: start the node "
                              f"in namespace '{session.namespace or '/'}' or give it with --node-namespace; it must be "
                              f"active and on the same ROS_DOMAIN_ID")
        time.sleep(0.05)
    for topic in session.per_frame_topics[1:]:
        if node.count_publishers(topic) == 0:
            _log(f"warning: nothing publishes {topic} (the node's parameter for it is off?): not recorded")
    session.per_frame_topics = [session.instances_topic] + [
        topic for topic in session.per_frame_topics[1:] if node.count_publishers(topic) > 0]


def _warm_up(session: Session, publisher: Any, first: BagImage, message_type: type, topic: str,
             pacing: Pacing) -> None:
    """Send the first image stamped a day later until the node answers on every recorded per-frame topic."""
    message = deserialize_message(first.raw, message_type)
    stamp = first.stamp_ns + WARM_UP_AHEAD_NS
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    session.ignored_stamp = stamp
    deadline = time.monotonic() + pacing.wait_s
    while time.monotonic() < deadline:
        publisher.publish(message)
        if session.book.wait(lambda: set(session.per_frame_topics) <= session.warm_up_seen, WARM_UP_PERIOD_S):
            return
    missing = sorted(set(session.per_frame_topics) - session.warm_up_seen)
    raise ReplayError(f"the node takes images on {topic} but published nothing on {', '.join(missing)} within "
                      f"{pacing.wait_s:g} s: check its log (is it active? was the image rejected?)"
                      f"{_subscription_hint(session, topic)}")


def replay_bag(session: Session, images: Iterator[BagImage], total: int, message_type: type, topic: str,
               pacing: Pacing, progress: bool, before_frame: Callable[[int], None] | None = None) -> None:
    """Publish the bag's images to the node, paced as asked, and wait for the answers."""
    publisher = _publisher(session, topic, message_type, pacing)
    _await_outputs(session, pacing)
    first = next(images, None)
    if first is None:
        raise ReplayError("no message of the bag's image topic deserializes: nothing to replay")
    _warm_up(session, publisher, first, message_type, topic, pacing)
    if pacing.mode == "lock-step" and _subscription_hint(session, topic):
        _log("warning: the node's image subscription is best-effort: a frame lost in transport is not answered "
             "and counts as dropped (lossless: start the node with -p qos_reliability:=reliable)")
    book = session.book
    with tqdm(total=total, unit="frame", desc="sgnet-replay", disable=not progress, file=sys.stderr) as bar:
        started = time.monotonic()
        for image in _chain(first, images):
            if pacing.mode == "timed":  # frame i at its log time after the first frame's, divided by the rate
                delay = started + (image.log_ns - first.log_ns) / 1e9 / pacing.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if before_frame is not None:
                before_frame(image.stamp_ns)
            record = book.sent(image.stamp_ns, time.time_ns())
            publisher.publish(image.raw)
            if pacing.mode == "lock-step" and not book.wait(lambda: record.answered_ns is not None, pacing.timeout_s):
                _log(f"warning: no answer to message {image.index} (stamp {image.stamp_ns / 1e9:.6f} s) within "
                     f"{pacing.timeout_s:g} s; going on (counted as dropped){_subscription_hint(session, topic)}")
            bar.update(1)
    # The node answers frames in order and always takes the newest: once the last frame is answered, no other
    # answer is coming (the frames still unanswered were dropped).
    last = book.frames[-1]
    book.wait(lambda: last.answered_ns is not None, pacing.timeout_s)
    book.wait(session.per_frame_outputs_done, DRAIN_S)


def _chain(first: BagImage, rest: Iterator[BagImage]) -> Iterator[BagImage]:
    yield first
    yield from rest


def record_only(session: Session, topic: str, pacing: Pacing) -> None:
    """Record while another program publishes the images: wait for the node, subscribe to its input topic with
    the QoS of the images' publisher, and stop ``idle_s`` after the last image (or on Ctrl-C)."""
    node = session.node
    _await_outputs(session, pacing)
    _log(f"recording; waiting for images on {topic} (play the bag now, e.g. ros2 bag play BAG --remap "
         f"/camera/image_raw:={topic}); Ctrl-C ends")
    while not (publishers := node.get_publishers_info_by_topic(topic)):
        time.sleep(0.05)
    info = publishers[0]
    message_type = IMAGE_TYPES.get(info.topic_type)
    if message_type is None:
        raise ReplayError(f"{topic} carries {info.topic_type}, not {IMAGE_TYPE} or {COMPRESSED_TYPE}")
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=info.qos_profile.reliability,
                     durability=DurabilityPolicy.VOLATILE)
    last_image: float | None = None

    def on_image(raw: bytes, message_info: Any) -> None:
        nonlocal last_image
        message = deserialize_message(raw, message_type)
        stamp = stamp_ns(message.header)
        session.book.sent(stamp, message_info["received_timestamp"] or time.time_ns())
        last_image = time.monotonic()

    node.create_subscription(message_type, topic, on_image, qos, raw=True)
    while last_image is None or time.monotonic() - last_image < pacing.idle_s:
        time.sleep(0.05)
    session.book.wait(session.per_frame_outputs_done, DRAIN_S)


def clock_publisher(session: Session) -> Callable[[int], None]:
    """A function that publishes /clock at a frame's stamp (ns), for a node on simulated time."""
    publisher = session.node.create_publisher(Clock, CLOCK_TOPIC, QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE))

    def publish(stamp: int) -> None:
        message = Clock()
        message.clock.sec, message.clock.nanosec = divmod(stamp, 1_000_000_000)
        publisher.publish(message)
    return publish


# ------------------------------------------------------------------------------------------------- evaluation


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    annotations: YTVISData
    frames: dict[int, tuple[int, int]] | None  # header stamp (ns) -> (video id, frame index); None: bag order


def load_ground_truth(path: Path) -> GroundTruth:
    """A YouTube-VIS annotation file for the bag's frames; its ``sgnet_bag`` key (sgnet-bag writes it) maps
    stamps to frames. Without that key, the bag's frames are the file's videos' frames in order."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReplayError(f"cannot read ground truth {path}: {error}") from None
    annotations = parse_annotations(data, str(path))
    if not annotations.has_annotations:
        raise ReplayError(f"ground truth {path} has no 'annotations': nothing to score against")
    if BAG_KEY not in data:
        return GroundTruth(annotations, None)
    frames: dict[int, tuple[int, int]] = {}
    try:
        for entry in data[BAG_KEY]["frames"]:
            key = (int(entry["video_id"]), int(entry["frame_index"]))
            video = annotations.videos.get(key[0])
            if video is None or not 0 <= key[1] < video.length:
                raise ReplayError(f"ground truth {path}: {BAG_KEY} names frame {key[1]} of video {key[0]}, which the "
                                  f"file does not have")
            frames[int(entry["stamp_ns"])] = key
    except (KeyError, TypeError, ValueError) as error:
        raise ReplayError(f"ground truth {path}: '{BAG_KEY}' must hold 'frames', a list of {{stamp_ns, video_id, "
                          f"frame_index}}: {type(error).__name__} {error}") from None
    return GroundTruth(annotations, frames)


def instance_rle(instance: Any) -> RLE:
    """An sgnet_ros/Instance's mask (uncompressed COCO counts) as a compressed RLE with str counts."""
    size = [int(instance.mask_height), int(instance.mask_width)]
    rle = mask_utils.frPyObjects({"size": size, "counts": [int(c) for c in instance.mask_counts]}, *size)
    return {"size": size, "counts": rle["counts"].decode("ascii")}


def score_outputs(truth: GroundTruth, frames: Sequence[FrameRecord]) -> tuple[dict[str, Any], list[VideoResult]]:
    """The YouTube-VIS metric and tracking figures of the node's answers (a frame without an answer has no
    instances), computed as sgnet-eval does: build_video_results, evaluate_vis, tracking_figures."""
    annotations = truth.annotations
    if truth.frames is not None:
        keys = [truth.frames.get(record.stamp_ns) for record in frames]
        outside = sum(key is None for key in keys)
        if outside:
            _log(f"warning: {outside} frame(s) have stamps the ground truth does not map; left out of the metric")
    else:
        order = [(v, i) for v, video in annotations.videos.items() for i in range(video.length)]
        if len(order) != len(frames):
            raise ReplayError(f"the ground truth has {len(order)} frames and no '{BAG_KEY}' stamp mapping, but "
                              f"{len(frames)} frames were replayed: make the bag with sgnet-bag --annotations")
        keys = order
    video_ids = list(dict.fromkeys(key[0] for key in keys if key is not None))
    per_frame = {v: [[] for _ in range(annotations.videos[v].length)] for v in video_ids}
    class_names = annotations.class_names
    for record, key in zip(frames, keys):
        if key is None or record.output is None:
            continue
        for instance in record.output.instances:
            if instance.class_id >= len(class_names) or instance.class_name != class_names[instance.class_id]:
                raise ReplayError(f"the node's class {instance.class_id} '{instance.class_name}' is not category "
                                  f"{instance.class_id} of the ground truth ({list(class_names)[:5]}...): the model "
                                  f"was trained on other classes")
            per_frame[key[0]][key[1]].append(TrackObservation(instance.track_id, instance.class_id, instance.score,
                                                              instance_rle(instance)))
    results: list[VideoResult] = []
    for video_id in video_ids:
        video = annotations.videos[video_id]
        results.extend(build_video_results(video_id, per_frame[video_id], annotations.category_ids, video.height,
                                           video.width))
    metrics: dict[str, Any] = {**evaluate_vis(annotations, results, video_ids),
                               **tracking_figures(annotations, results, video_ids)}
    metrics["videos"] = len(video_ids)
    metrics["frames"] = sum(annotations.videos[v].length for v in video_ids)
    return metrics, results


# ------------------------------------------------------------------------------------------------------- depth


@dataclasses.dataclass(frozen=True)
class DepthTopics:
    image: str  # the bag's depth image topic
    camera_info: str  # the camera_info beside it


def find_depth_topics(reader: Reader, store: Typestore) -> DepthTopics | None:
    """The bag's depth image topic (an Image topic whose first message is 16UC1 or 32FC1) with a camera_info
    topic beside it, or None."""
    infos = {c.topic for c in reader.connections if c.msgtype == CAMERA_INFO_TYPE}
    for connection in reader.connections:
        if connection.msgtype != IMAGE_TYPE or camera_info_topic(connection.topic) not in infos:
            continue
        for _, _, raw in reader.messages(connections=[connection]):
            try:
                encoding = store.deserialize_cdr(raw, IMAGE_TYPE).encoding
            except SerdeError:
                encoding = None
            if encoding in DEPTH_ENCODINGS:
                return DepthTopics(connection.topic, camera_info_topic(connection.topic))
            break
    return None


def colour_topic(reader: Reader, depth: DepthTopics | None) -> str | None:
    """The only image topic that is not the depth topic, when the bag has depth (None: let image_connections
    pick or complain)."""
    if depth is None:
        return None
    topics = sorted({c.topic for c in reader.connections if c.msgtype in IMAGE_TYPES} - {depth.image})
    return topics[0] if len(topics) == 1 else None


class DepthFeed:
    """Publishes the bag's depth image and camera_info stamped as each colour frame, just before the frame. The
    depth messages are read from the bag up front (their raw bytes, by stamp)."""

    def __init__(self, session: Session, reader: Reader, store: Typestore, depth: DepthTopics,
                 node_topic: str) -> None:
        self.messages: dict[str, dict[int, bytes]] = {}
        for name, topic in (("image", depth.image), ("camera_info", depth.camera_info)):
            connections = [c for c in reader.connections if c.topic == topic]
            self.messages[name] = {stamp_ns(store.deserialize_cdr(raw, connection.msgtype).header): bytes(raw)
                                   for connection, _, raw in reader.messages(connections=connections)}
        self.node_topic = node_topic
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=PUBLISH_DEPTH, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
        self.image = session.node.create_publisher(Image, node_topic, qos)
        self.camera_info = session.node.create_publisher(CameraInfo, camera_info_topic(node_topic), qos)
        self.enabled: bool | None = None  # decided at the first frame: does the node take depth?
        self.frames_without_depth = 0
        _log(f"depth: {depth.image} -> {node_topic}, {depth.camera_info} -> {camera_info_topic(node_topic)}")

    def before_frame(self, stamp: int) -> None:
        if self.enabled is None:  # the node answered the warm-up frame, so its subscriptions are discovered by now
            deadline = time.monotonic() + DEPTH_DISCOVERY_S
            while not (self.image.get_subscription_count() and self.camera_info.get_subscription_count()) \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
            self.enabled = bool(self.image.get_subscription_count() and self.camera_info.get_subscription_count())
            if not self.enabled:
                _log(f"warning: the bag has depth, but the node does not subscribe to {self.node_topic} and its "
                     f"camera_info: replaying colour only (start the node with -p depth_image_topic:="
                     f"{self.node_topic}, or give its depth topic with --node-depth-topic)")
        if not self.enabled:
            return
        image, info = self.messages["image"].get(stamp), self.messages["camera_info"].get(stamp)
        if image is None or info is None:
            self.frames_without_depth += 1
            return
        self.camera_info.publish(info)
        self.image.publish(image)


def load_depth_truth(path: Path) -> dict[int, dict[str, Any]] | None:
    """Video id -> 3D ground truth (sgnet-synth's depth_ground_truth.json entry) from the ground-truth file's
    ``sgnet_depth`` key, or None when it has none."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if DEPTH_KEY not in data:
        return None
    try:
        return {int(video["video_id"]): video for video in data[DEPTH_KEY]["videos"]}
    except (KeyError, TypeError, ValueError) as error:
        raise ReplayError(f"ground truth {path}: '{DEPTH_KEY}' must hold 'videos' as depth_ground_truth.json does: "
                          f"{type(error).__name__} {error}") from None


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def score_depth(truth: GroundTruth, depth_truth: dict[int, dict[str, Any]], frames: Sequence[FrameRecord],
                min_iou: float = 0.5) -> dict[str, Any]:
    """3D centroid errors of the node's answers: every visible shape of the ground truth is matched to the
    instance whose mask overlaps it most (IoU >= min_iou); its error is |position - true centroid|, also over the
    shape's distance. Shapes with no matched instance, or one without a 3D position, count as not located."""
    annotations = {a.id: a for video in truth.annotations.annotations.values() for a in video}
    relative, metres, shapes, matched = [], [], 0, 0
    for record in frames:
        key = truth.frames.get(record.stamp_ns) if truth.frames is not None else None
        if key is None or record.output is None or key[0] not in depth_truth:
            continue
        instances = [(instance, instance_mask(instance)) for instance in record.output.instances]
        for entry in depth_truth[key[0]]["objects"]:
            expected = entry["frames"][key[1]]
            if expected is None:
                continue
            shapes += 1
            shape_mask = mask_utils.decode(annotations[entry["annotation_id"]].segmentations[key[1]]).astype(bool)
            overlaps = [_iou(mask, shape_mask) for _, mask in instances]
            if not overlaps or max(overlaps) < min_iou:
                continue
            matched += 1
            instance = instances[int(np.argmax(overlaps))][0]
            if not instance.position_valid:
                continue
            position = (instance.position.x, instance.position.y, instance.position.z)
            error = float(np.linalg.norm(np.subtract(position, expected["centroid"])))
            metres.append(error)
            relative.append(error / entry["distance"])
    return {"shapes": shapes, "matched": matched, "located": len(relative),
            **percentiles(relative, "relative_error"), **percentiles(metres, "error_m")}


# ---------------------------------------------------------------------------------------------------- reporting


def percentiles(values: Sequence[float], name: str) -> dict[str, float | None]:
    """``name_median``, ``name_p90``, ``name_p99``, ``name_max`` (None without values)."""
    figures = {"median": 50, "p90": 90, "p99": 99, "max": 100}
    if not values:
        return {f"{name}_{key}": None for key in figures}
    return {f"{name}_{key}": float(np.percentile(values, q)) for key, q in figures.items()}


def build_report(session: Session, pacing: Pacing, bag_statistics: BagStatistics, duration_s: float,
                 interrupted: bool) -> dict[str, Any]:
    frames = session.book.frames
    answered = [r for r in frames if r.answered_ns is not None]
    latencies = [r.latency_ms for r in answered]
    inference = [float(r.output.inference_ms) for r in answered]
    report: dict[str, Any] = {
        "mode": pacing.mode, "rate": pacing.rate if pacing.mode == "timed" else None,
        "frames_in": len(frames), "frames_out": len(answered), "frames_dropped": len(frames) - len(answered),
        "frames_skipped_corrupt": bag_statistics.skipped_corrupt,
        "stamps_out_of_order": bag_statistics.stamps_out_of_order,
        "stamps_repeated": bag_statistics.stamps_repeated,
        "unmatched_outputs": session.book.unmatched_outputs,
        **percentiles(latencies, "latency_ms"),
        **percentiles(inference, "inference_ms"),
        "overhead_ms_median": float(np.median(np.subtract(latencies, inference))) if answered else None,
        "duration_s": duration_s,
        "output_rate_hz": len(answered) / duration_s if duration_s > 0 else None,
        "recorded": dict(session.recorded),
        "node_diagnostics": session.last_diagnostics,
        "output_bag": str(session.output_bag),
        "interrupted": interrupted,
    }
    return report


def write_frames_csv(path: Path, frames: Sequence[FrameRecord]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["stamp_ns", "sent_ns", "answered_ns", "latency_ms", "inference_ms", "instances"])
        for r in frames:
            writer.writerow([r.stamp_ns, r.sent_ns, r.answered_ns if r.answered_ns is not None else "",
                             f"{r.latency_ms:.3f}" if r.answered_ns is not None else "",
                             f"{r.output.inference_ms:.3f}" if r.output is not None else "",
                             len(r.output.instances) if r.output is not None else ""])


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _print_report(report: dict[str, Any], output: Path) -> None:
    def ms(key: str) -> str:
        values = [report[f"{key}_{p}"] for p in ("median", "p90", "p99")]
        return "n/a" if values[0] is None else " / ".join(f"{v:.1f}" for v in values)
    print(f"frames in {report['frames_in']}, out {report['frames_out']}, dropped {report['frames_dropped']}, "
          f"skipped (corrupt) {report['frames_skipped_corrupt']}, stamps out of order {report['stamps_out_of_order']}")
    print(f"latency ms (median / p90 / p99): {ms('latency_ms')}; node's own time: {ms('inference_ms')}")
    if report.get("tracker") is not None:
        values = ", ".join(f"{name} {value:g}" for name, value in report["tracker"].items())
        print(f"node's tracker: {report.get('tracker_profile') or 'unnamed'} profile: {values}")
    metrics = report.get("metrics")
    if metrics:
        print("\n".join(metric_lines(metrics)))
    depth = report.get("depth")
    if depth:
        median = "n/a" if depth["relative_error_median"] is None else f"{100 * depth['relative_error_median']:.2f} %"
        print(f"3D: {depth['located']} of {depth['shapes']} visible shapes located; median centroid error {median} of "
              f"the distance")
    print(f"outputs: {report['output_bag']}  report: {output / 'report.json'}")


# ---------------------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sgnet-replay",
        description="Replay a ROS 2 bag (.mcap or .db3, read with rosbags) through the running SG-Net node, record "
                    "its outputs into a bag, and report frames in/out/dropped, end-to-end latency (median, p90, "
                    "p99), the node's own time per frame and, with --ground-truth, the YouTube-VIS metrics and "
                    "tracking figures of its outputs (the same code as sgnet-eval).",
        epilog="examples:\n"
               "  sgnet-node --ros-args -p checkpoint:=model.pt -p qos_reliability:=reliable &\n"
               "  sgnet-replay --bag bags/heldout --as-fast-as-node --ground-truth bags/heldout.ground_truth.json "
               "--output replay\n"
               "  sgnet-replay --bag bags/drive --rate 0.5 --output replay_drive --json\n"
               "  sgnet-replay --record-only --output replay_live   # while: ros2 bag play BAG --remap "
               "/camera/image_raw:=/image\n"
               "Lock-step replays drop nothing and equal sgnet-eval on the same frames when the node runs the "
               "checkpoint's thresholds (model.*) and sgnet-eval's tracker settings (tracker.*: by default the "
               "checkpoint's evaluation profile); the report names the node's tracker profile and values.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bag", type=Path, help="the bag to replay (a bag folder, or a .mcap/.db3 file)")
    parser.add_argument("--topic", help="the bag's image topic (default: its only sensor_msgs/Image or "
                                        "CompressedImage topic)")
    parser.add_argument("--node-namespace", default="/", help="the node's namespace (default %(default)s)")
    parser.add_argument("--node-topic",
                        help="the node's input topic (default: NAMESPACE/image, or NAMESPACE/image/compressed for "
                             "CompressedImage; the node must subscribe it: compressed_image_topic)")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, help="play at this multiple of the bag's timing (default 1)")
    pace.add_argument("--original", action="store_true", help="play with the bag's timing (the default)")
    pace.add_argument("--as-fast-as-node", action="store_true",
                      help="lock-step: the next frame when the node answered the previous one (drops nothing)")
    pace.add_argument("--record-only", action="store_true",
                      help="publish nothing: record while another program (ros2 bag play) publishes the images")
    parser.add_argument("--node-depth-topic",
                        help="where the bag's depth images go when it has them (default: NAMESPACE/depth/image_raw; "
                             "camera_info beside it; the node's depth_image_topic)")
    parser.add_argument("--clock", action="store_true",
                        help="publish /clock at each frame's stamp before the frame (as ros2 bag play --clock): run "
                             "the node with use_sim_time:=true so that its input age is measured on the bag's time")
    parser.add_argument("--ground-truth", type=Path,
                        help="YouTube-VIS JSON for the bag's frames (sgnet-bag writes <bag>.ground_truth.json)")
    parser.add_argument("--output", type=Path, required=True,
                        help="folder for outputs/ (the recorded bag), report.json, frames.csv and results.json")
    parser.add_argument("--storage", choices=sorted(STORAGES), default="mcap",
                        help="storage of the output bag (default %(default)s)")
    parser.add_argument("--debug-image", action="store_true",
                        help="also record debug_image (the node renders it only while someone subscribes)")
    parser.add_argument("--timeout", type=float, default=Pacing().timeout_s,
                        help="seconds to wait for one answer in lock-step, and for the last answers "
                             "(default %(default)g)")
    parser.add_argument("--wait", type=float, default=Pacing().wait_s,
                        help="seconds to wait for the node to appear and answer (default %(default)g)")
    parser.add_argument("--idle", type=float, default=Pacing().idle_s,
                        help="record-only: stop this many seconds after the last image (default %(default)g)")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the report on stdout")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return parser


def _pacing(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Pacing:
    for name in ("timeout", "wait", "idle"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name} must be positive, got {getattr(args, name)}")
    if args.rate is not None and not args.rate > 0:
        parser.error(f"--rate must be positive, got {args.rate}")
    mode = "record-only" if args.record_only else "lock-step" if args.as_fast_as_node else "timed"
    if mode == "record-only" and args.clock:
        parser.error("--clock publishes the replayed frames' time; with --record-only the player publishes /clock "
                     "(ros2 bag play --clock)")
    if mode != "record-only" and args.bag is None:
        parser.error("--bag is needed (except with --record-only)")
    return Pacing(mode=mode, rate=args.rate or 1.0, timeout_s=args.timeout, wait_s=args.wait, idle_s=args.idle)


def run(args: argparse.Namespace, pacing: Pacing) -> dict[str, Any]:
    output_bag = args.output / "outputs"
    if output_bag.exists():
        raise ReplayError(f"{output_bag} exists already: remove it or choose another --output")
    truth = load_ground_truth(args.ground_truth) if args.ground_truth is not None else None
    store = ros_typestore()
    namespace = _namespace(args.node_namespace)
    reader = None
    bag_statistics = BagStatistics()
    if pacing.mode != "record-only":
        reader = open_bag(args.bag)
        depth = find_depth_topics(reader, store)
        connections = image_connections(reader, args.topic or colour_topic(reader, depth), args.bag)
        msgtype = connections[0].msgtype
        topic = args.node_topic or f"{namespace}/image" + (COMPRESSED_SUFFIX if msgtype == COMPRESSED_TYPE else "")
        images = bag_images(reader, connections, store, bag_statistics)
        total = sum(c.msgcount for c in connections)
    else:
        topic = args.node_topic or f"{namespace}/image"
    created_output = not args.output.exists()
    args.output.mkdir(parents=True, exist_ok=True)
    session = Session(namespace, output_bag, args.storage, args.debug_image, store)
    interrupted = False
    started = time.monotonic()
    try:
        if pacing.mode == "record-only":
            record_only(session, topic, pacing)
        else:
            feed = DepthFeed(session, reader, store, depth, args.node_depth_topic or f"{namespace}/depth/image_raw") \
                if depth is not None else None
            hooks = [hook for hook in (clock_publisher(session) if args.clock else None,
                                       feed.before_frame if feed is not None else None) if hook is not None]

            def before_frame(stamp: int) -> None:  # /clock first: the node's time is the frame's when it arrives
                for hook in hooks:
                    hook(stamp)
            replay_bag(session, images, total, IMAGE_TYPES[msgtype], topic, pacing, not args.no_progress,
                       before_frame)
    except KeyboardInterrupt:
        interrupted = pacing.mode != "record-only"
        _log("interrupted: reporting what was replayed so far")
    except BaseException:  # nothing was replayed: leave nothing behind
        session.close()
        shutil.rmtree(output_bag, ignore_errors=True)
        if created_output and not any(args.output.iterdir()):
            args.output.rmdir()
        raise
    finally:
        duration_s = time.monotonic() - started
        if reader is not None:
            reader.close()
    tracker_settings = node_tracker_settings(session)
    session.close()
    report = build_report(session, pacing, bag_statistics, duration_s, interrupted)
    report.update(tracker_settings)
    report["bag"] = str(args.bag) if args.bag else None
    report["node_topic"] = topic
    if truth is not None:
        metrics, results = score_outputs(truth, session.book.frames)
        report["metrics"] = metrics
        depth_truth = load_depth_truth(args.ground_truth)
        if depth_truth is not None:
            report["depth"] = score_depth(truth, depth_truth, session.book.frames)
        save_results(results, args.output)
    report = _json_ready(report)
    (args.output / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    write_frames_csv(args.output / "frames.csv", session.book.frames)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    pacing = _pacing(args, parser)
    try:
        report = run(args, pacing)
    except (ReplayError, BagError, YTVISError, OSError) as error:
        print(f"sgnet-replay: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report))
    else:
        _print_report(report, args.output)
    return 130 if report["interrupted"] else 0


if __name__ == "__main__":
    sys.exit(main())
