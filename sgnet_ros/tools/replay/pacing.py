"""sgnet-replay: publishing the bag's frames to the node, paced as asked (the bag's timing or a multiple of it,
lock-step with the node's answers), or recording while another program publishes them; the warm-up frame before
the first one."""
from __future__ import annotations

import dataclasses
import itertools
import sys
import time
from typing import Any, Callable, Iterator

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rosgraph_msgs.msg import Clock
from tqdm import tqdm

from sgnet_ros.tools.bag.format import COMPRESSED_TYPE, IMAGE_TYPE, stamp_ns
from sgnet_ros.tools.replay.bag import IMAGE_TYPES, BagImage, ReplayError, log
from sgnet_ros.tools.replay.session import Session

WARM_UP_AHEAD_NS = 86_400 * 1_000_000_000  # the warm-up frame's stamp: one day after the bag's first frame
WARM_UP_PERIOD_S = 1.0  # the warm-up frame is sent again this often until the node answers
DRAIN_S = 2.0  # after the last answer, wait this long at most for the per-frame outputs still under way
PUBLISH_DEPTH = 10
CLOCK_TOPIC = "/clock"


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
    _wait_until(lambda: publisher.get_subscription_count() > 0, time.monotonic() + pacing.wait_s,
                f"no node subscribes to {topic} after {pacing.wait_s:g} s: start the node in namespace "
                f"'{session.namespace or '/'}' (sgnet-node --ros-args -r __ns:={session.namespace or '/'}), or give its "
                f"namespace with --node-namespace and its input topic with --node-topic; it must be active and on the "
                f"same ROS_DOMAIN_ID")
    return publisher


def _wait_until(condition: Callable[[], bool], deadline: float, failure: str) -> None:
    """Poll ``condition`` until it holds, or raise ReplayError(failure) once time.monotonic() passes ``deadline``."""
    while not condition():
        if time.monotonic() > deadline:
            raise ReplayError(failure)
        time.sleep(0.05)


@dataclasses.dataclass(frozen=True)
class CameraInput:
    """Where one bag topic's images go: the node's camera (its name, "" for a single-camera node), the node's input
    topic and the message type."""

    camera: str
    topic: str
    message_type: type


def _await_outputs(session: Session, pacing: Pacing) -> None:
    """Wait for the node's instances publishers (one per camera); record only the other per-frame topics it
    publishes (the node can turn label_image and debug_image off)."""
    node = session.node
    deadline = time.monotonic() + pacing.wait_s
    for camera in session.cameras.values():
        _wait_until(lambda: node.count_publishers(camera.instances_topic) > 0, deadline,
                    f"no node publishes {camera.instances_topic} after {pacing.wait_s:g} s: start the node in "
                    f"namespace '{session.namespace or '/'}' or give it with --node-namespace"
                    f"{' (and its cameras: image_topics, camera_names)' if camera.name else ''}; it must be active "
                    f"and on the same ROS_DOMAIN_ID")
        for topic in camera.per_frame_topics[1:]:
            if node.count_publishers(topic) == 0:
                log(f"warning: nothing publishes {topic} (the node's parameter for it is off?): not recorded")
        camera.per_frame_topics = [camera.instances_topic] + [
            topic for topic in camera.per_frame_topics[1:] if node.count_publishers(topic) > 0]


def _warm_up(session: Session, publishers: dict[str, Any], firsts: dict[str, BagImage],
             inputs: dict[str, CameraInput], pacing: Pacing) -> None:
    """Send each camera's first image stamped a day later until the node answers on every recorded per-frame
    topic of every camera."""
    messages = {}
    for topic, first in firsts.items():
        message = deserialize_message(first.raw, inputs[topic].message_type)
        stamp = first.stamp_ns + WARM_UP_AHEAD_NS
        message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        session.ignored_stamps.add(stamp)
        messages[topic] = message
    cameras = [session.cameras[inputs[topic].camera] for topic in firsts]
    answered = lambda: all(set(camera.per_frame_topics) <= camera.warm_up_seen for camera in cameras)
    deadline = time.monotonic() + pacing.wait_s
    while time.monotonic() < deadline:
        for topic, message in messages.items():
            publishers[topic].publish(message)
        if cameras[0].book.wait(answered, WARM_UP_PERIOD_S):
            return
    missing = sorted(topic for camera in cameras for topic in set(camera.per_frame_topics) - camera.warm_up_seen)
    topics = ", ".join(inputs[topic].topic for topic in firsts)
    raise ReplayError(f"the node takes images on {topics} but published nothing on {', '.join(missing)} within "
                      f"{pacing.wait_s:g} s: check its log (is it active? was the image rejected?)"
                      f"{''.join(_subscription_hint(session, inputs[topic].topic) for topic in firsts)}")


def _first_of_each(images: Iterator[BagImage], topics: list[str]) -> tuple[dict[str, BagImage], list[BagImage]]:
    """The first image of each bag topic, and the images read to find them (in order)."""
    firsts: dict[str, BagImage] = {}
    read: list[BagImage] = []
    for image in images:
        read.append(image)
        firsts.setdefault(image.topic, image)
        if len(firsts) == len(topics):
            break
    return firsts, read


def replay_bag(session: Session, images: Iterator[BagImage], total: int, inputs: dict[str, CameraInput],
               pacing: Pacing, progress: bool, before_frame: Callable[[int], None] | None = None) -> None:
    """Publish the bag's images (of the topics of ``inputs``, merged in log-time order) to the node's cameras,
    paced as asked, and wait for the answers."""
    publishers = {topic: _publisher(session, camera_input.topic, camera_input.message_type, pacing)
                  for topic, camera_input in inputs.items()}
    _await_outputs(session, pacing)
    firsts, read = _first_of_each(images, list(inputs))
    if not firsts:
        raise ReplayError("no message of the bag's image topic deserializes: nothing to replay")
    _warm_up(session, publishers, firsts, inputs, pacing)
    if pacing.mode == "lock-step" and any(_subscription_hint(session, i.topic) for i in inputs.values()):
        log("warning: the node's image subscription is best-effort: a frame lost in transport is not answered "
            "and counts as dropped (lossless: start the node with -p qos_reliability:=reliable)")
    start_ns = read[0].log_ns
    with tqdm(total=total, unit="frame", desc="sgnet-replay", disable=not progress, file=sys.stderr) as bar:
        started = time.monotonic()
        for image in itertools.chain(read, images):
            if pacing.mode == "timed":  # frame i at its log time after the first frame's, divided by the rate
                delay = started + (image.log_ns - start_ns) / 1e9 / pacing.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if before_frame is not None:
                before_frame(image.stamp_ns)
            camera_input = inputs[image.topic]
            book = session.cameras[camera_input.camera].book
            record = book.sent(image.stamp_ns, time.time_ns())
            publishers[image.topic].publish(image.raw)
            if pacing.mode == "lock-step" and not book.wait(lambda: record.answered_ns is not None, pacing.timeout_s):
                log(f"warning: no answer to message {image.index} of {image.topic} (stamp "
                    f"{image.stamp_ns / 1e9:.6f} s) within {pacing.timeout_s:g} s; going on (counted as dropped)"
                    f"{_subscription_hint(session, camera_input.topic)}")
            bar.update(1)
    # The node answers each camera's frames in order and always takes the newest: once a camera's last frame is
    # answered, no other answer is coming for it (the frames still unanswered were dropped).
    for camera in session.cameras.values():
        if camera.book.frames:
            last = camera.book.frames[-1]
            camera.book.wait(lambda: last.answered_ns is not None, pacing.timeout_s)
    session.book.wait(session.per_frame_outputs_done, DRAIN_S)


def record_only(session: Session, topic: str, pacing: Pacing) -> None:
    """Record while another program publishes the images: wait for the node, subscribe to its input topic with
    the QoS of the images' publisher, and stop ``idle_s`` after the last image (or on Ctrl-C)."""
    node = session.node
    _await_outputs(session, pacing)
    log(f"recording; waiting for images on {topic} (play the bag now, e.g. ros2 bag play BAG --remap "
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
