"""sgnet-replay: depth. The bag's depth image and camera_info published before each colour frame, and the 3D
centroid errors of the node's instances against the ground truth's 3D."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pycocotools.mask as mask_utils
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader
from rosbags.serde import SerdeError
from rosbags.typesys.store import Typestore
from sensor_msgs.msg import CameraInfo, Image

from sgnet_ros.depth import DEPTH_ENCODINGS
from sgnet_ros.masks import instance_mask
from sgnet_ros.tools.bag.format import CAMERA_INFO_TYPE, DEPTH_KEY, IMAGE_TYPE, camera_info_topic, stamp_ns
from sgnet_ros.tools.replay.bag import IMAGE_TYPES, ReplayError, log
from sgnet_ros.tools.replay.pacing import PUBLISH_DEPTH
from sgnet_ros.tools.replay.report import percentiles
from sgnet_ros.tools.replay.scoring import GroundTruth
from sgnet_ros.tools.replay.session import FrameRecord, Session

DEPTH_DISCOVERY_S = 5.0  # at the first frame, wait this long at most for the node's depth subscriptions


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
        log(f"depth: {depth.image} -> {node_topic}, {depth.camera_info} -> {camera_info_topic(node_topic)}")

    def before_frame(self, stamp: int) -> None:
        if self.enabled is None:  # the node answered the warm-up frame, so its subscriptions are discovered by now
            deadline = time.monotonic() + DEPTH_DISCOVERY_S
            while not (self.image.get_subscription_count() and self.camera_info.get_subscription_count()) \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
            self.enabled = bool(self.image.get_subscription_count() and self.camera_info.get_subscription_count())
            if not self.enabled:
                log(f"warning: the bag has depth, but the node does not subscribe to {self.node_topic} and its "
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
