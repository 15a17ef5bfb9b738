"""The videos in the bags: each image topic's frames, cut where the header stamps leave a gap.

The node's recording (sgnet_ros/recording.py) writes each uncertain moment as a contiguous run of a camera's frames,
the moments of one camera at least ``recording.min_interval_s`` apart; so a gap in the stamps of more than
``gap_s`` (less than the interval, more than a frame period) ends one moment's video and starts the next. A change
of the image size, or a stamp that goes back, starts a new video too (a repeated stamp does not). The bags are read
with sgnet-replay's reader (sgnet_ros/tools/replay/bag.py) and every frame is decoded as the node decodes it
(sgnet_ros/images.py), so the drafts see the pixels the node saw. A frame that does not decode is reported and left out.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from rclpy.serialization import deserialize_message
from rosbags.typesys import get_typestore
from tqdm import tqdm

from sgnet_ros.bag_flavour import ROS_STORE
from sgnet_ros.images import ImageError, compressed_to_rgb, image_to_rgb
from sgnet_ros.params import NodeConfig
from sgnet_ros.tools.bag.format import COMPRESSED_TYPE
from sgnet_ros.tools.label.format import LabelError, log
from sgnet_ros.tools.replay.bag import (IMAGE_TYPES, BagStatistics, bag_images, image_connections,
                                        image_topics, open_bag)

JPEG_SIGNATURE = b"\xff\xd8"


@dataclasses.dataclass
class Video:
    """One topic's contiguous run of frames in one bag."""

    bag: Path
    topic: str
    index: int  # the topic's videos in the bag, counted from 0
    stamps_ns: list[int] = dataclasses.field(default_factory=list)  # header stamps
    frames: list[np.ndarray] = dataclasses.field(default_factory=list)  # (H, W, 3) uint8 RGB, as the node decodes it
    jpegs: list[bytes | None] = dataclasses.field(default_factory=list)  # the message's own JPEG bytes, if it was one

    @property
    def name(self) -> str:
        """``<bag folder>_<topic, / as _>_<index>``: unique over bags of distinct names."""
        return f"{self.bag.name}_{self.topic.strip('/').replace('/', '_')}_{self.index:03d}"

    @property
    def height(self) -> int:
        return self.frames[0].shape[0]

    @property
    def width(self) -> int:
        return self.frames[0].shape[1]

    @property
    def times_s(self) -> list[float]:
        """Seconds from the first frame, from the header stamps."""
        return [(stamp - self.stamps_ns[0]) / 1e9 for stamp in self.stamps_ns]


def bag_topics(path: Path, topics: Sequence[str]) -> list[str]:
    """The image topics of the bag to read: ``topics`` (each must be one of its image topics), or all of them."""
    reader = open_bag(path)
    try:
        found = image_topics(reader)
        if not found:
            listing = ", ".join(sorted(f"{c.topic} ({c.msgtype})" for c in reader.connections)) or "no topics"
            raise LabelError(f"bag {path} has no sensor_msgs/Image or CompressedImage topic (it has {listing})")
        for topic in topics:
            image_connections(reader, topic, path)  # raises, naming the bag's image topics, if it is not one
        return list(topics) or found
    finally:
        reader.close()


def bag_videos(path: Path, topics: Sequence[str], gap_s: float, progress: bool = True) -> Iterator[Video]:
    """The videos of ``topics`` in the bag at ``path``, each yielded once its last frame is read."""
    reader = open_bag(path)
    try:
        connections = [c for topic in topics for c in image_connections(reader, topic, path)]
        store = get_typestore(ROS_STORE)
        max_pixels = NodeConfig().max_image_pixels
        current: dict[str, Video] = {}
        counts = dict.fromkeys(topics, 0)
        total = sum(c.msgcount for c in connections)
        with tqdm(total=total, unit="frame", desc=f"sgnet-label {path.name}", disable=not progress,
                  file=sys.stderr) as bar:
            for image in bag_images(reader, connections, store, BagStatistics()):
                bar.update(1)
                msgtype = next(c.msgtype for c in connections if c.topic == image.topic)
                message = deserialize_message(image.raw, IMAGE_TYPES[msgtype])
                try:
                    if msgtype == COMPRESSED_TYPE:
                        rgb = compressed_to_rgb(message, max_pixels)
                    else:
                        rgb = np.array(image_to_rgb(message, max_pixels))  # a copy: the message's buffer goes
                except ImageError as error:
                    log(f"warning: {path}, {image.topic}, stamp {image.stamp_ns / 1e9:.6f} s: {error}; frame left out")
                    continue
                video = current.get(image.topic)
                if video is not None and (not 0 <= image.stamp_ns - video.stamps_ns[-1] <= gap_s * 1e9
                                          or rgb.shape != video.frames[0].shape):
                    yield video
                    video = None
                if video is None:
                    video = current[image.topic] = Video(path, image.topic, counts[image.topic])
                    counts[image.topic] += 1
                video.stamps_ns.append(image.stamp_ns)
                video.frames.append(rgb)
                data = bytes(message.data) if msgtype == COMPRESSED_TYPE else b""
                video.jpegs.append(data if data.startswith(JPEG_SIGNATURE) else None)
        yield from current.values()
    finally:
        reader.close()
