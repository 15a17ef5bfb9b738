"""sgnet-replay: reading the bag. Every image message is deserialized once (to check it and to read its header
stamp) and its bytes are kept unchanged for publishing; a message that does not deserialize is reported and
skipped, never sent."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Iterator, Sequence

from rosbags.interfaces import Connection
from rosbags.rosbag2 import Reader
from rosbags.serde import SerdeError
from rosbags.typesys.store import Typestore
from sensor_msgs.msg import CompressedImage, Image
from tqdm import tqdm

from sgnet_ros.tools.bag.format import COMPRESSED_TYPE, IMAGE_TYPE, stamp_ns

IMAGE_TYPES = {IMAGE_TYPE: Image, COMPRESSED_TYPE: CompressedImage}


class ReplayError(RuntimeError):
    """The replay cannot go on; the message says what is wrong and what to do."""


def log(text: str) -> None:
    tqdm.write(f"sgnet-replay: {text}", file=sys.stderr)


@dataclasses.dataclass(frozen=True)
class BagImage:
    topic: str  # the bag topic (the camera) it came from
    index: int  # position among the replayed topics' messages
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


def image_topics(reader: Reader, exclude: Sequence[str] = ()) -> list[str]:
    """The bag's sensor_msgs/Image and CompressedImage topics, sorted, but for ``exclude`` (a depth topic)."""
    return sorted({c.topic for c in reader.connections if c.msgtype in IMAGE_TYPES} - set(exclude))


def image_connections(reader: Reader, topic: str | None, path: Path) -> list[Connection]:
    """The connections of the image topic to replay: ``topic``, or the bag's only image topic."""
    topics = image_topics(reader)
    listing = ", ".join(f"{t} ({c.msgtype}, {c.msgcount} messages)"
                        for t in topics for c in reader.connections if c.topic == t) or "none"
    if topic is None:
        if len(topics) != 1:
            raise ReplayError(f"bag {path} has {len(topics)} image topics ({listing}): choose one with --topic, or "
                              f"replay them all to a node serving them with --cameras")
        topic = topics[0]
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
    """The messages of the connections' topics in log-time order. A message that does not deserialize is reported
    and skipped; a header stamp before the previous one of its topic is reported (the node resets that camera's
    tracks there)."""
    previous_of: dict[str, int] = {}
    for index, (connection, log_ns, raw) in enumerate(reader.messages(connections=connections)):
        try:
            message = store.deserialize_cdr(raw, connection.msgtype)
        except SerdeError as error:
            statistics.skipped_corrupt += 1
            log(f"warning: message {index} on {connection.topic} (log time {log_ns / 1e9:.6f} s) does not "
                 f"deserialize as {connection.msgtype} and is skipped: {error}")
            continue
        stamp = stamp_ns(message.header)
        previous = previous_of.get(connection.topic)
        if previous is not None and stamp < previous:
            statistics.stamps_out_of_order += 1
            log(f"warning: message {index} on {connection.topic}: header stamp {stamp / 1e9:.6f} s is before the "
                 f"previous frame's {previous / 1e9:.6f} s; the node resets its tracks there")
        elif stamp == previous:
            statistics.stamps_repeated += 1
            log(f"warning: message {index} on {connection.topic}: header stamp {stamp / 1e9:.6f} s repeats the "
                 f"previous frame's; outputs are matched to such frames in order")
        previous_of[connection.topic] = stamp
        yield BagImage(connection.topic, index, log_ns, stamp, bytes(raw))
