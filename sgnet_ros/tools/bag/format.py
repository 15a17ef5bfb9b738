"""What sgnet-bag writes and sgnet-replay reads: message types, topics, storage, the ground truth's keys, the
typestore with sgnet_ros's own messages, and header stamps."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from rosbags.rosbag2 import StoragePlugin
from rosbags.typesys import get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from sgnet_ros.bag_flavour import ROS_STORE

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
ENCODINGS = ("rgb8", "bgr8", "jpeg")
DEFAULT_TOPIC = "/camera/image_raw"
COMPRESSED_SUFFIX = "/compressed"  # image_transport's name for the compressed form of a topic
DEFAULT_FRAME_ID = "camera"

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
STORAGE_SUFFIXES = {".mcap": "mcap", ".db3": "sqlite3"}
GROUND_TRUTH_SUFFIX = ".ground_truth.json"
BAG_KEY = "sgnet_bag"  # the key of the stamp -> (video, frame) mapping in the ground-truth file
MESSAGE_PACKAGE = "sgnet_ros"
MESSAGE_NAMES = ("Instance", "InstanceArray")


class BagError(ValueError):
    """An input that cannot become a bag, or a bag that cannot be written; the message says which and why."""


def message_dirs() -> list[Path]:
    """Where the .msg files of sgnet_ros may be: the source tree, then ``share/sgnet_ros/msg`` of this Python
    environment (scripts/build_msgs.sh) and of every ROS prefix (a colcon install)."""
    prefixes = [sys.prefix, *filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep))]
    return [Path(__file__).resolve().parents[3] / "msg",
            *(Path(prefix) / "share" / MESSAGE_PACKAGE / "msg" for prefix in prefixes)]


def ros_typestore() -> Typestore:
    """rosbags' ROS 2 message types plus sgnet_ros's own, registered from their .msg text."""
    store = get_typestore(ROS_STORE)
    for folder in message_dirs():
        if all((folder / f"{name}.msg").is_file() for name in MESSAGE_NAMES):
            types: dict[str, Any] = {}
            for name in MESSAGE_NAMES:
                types.update(get_types_from_msg((folder / f"{name}.msg").read_text(encoding="utf-8"),
                                                f"{MESSAGE_PACKAGE}/msg/{name}"))
            store.register(types)
            return store
    raise BagError(f"cannot find the sgnet_ros .msg files ({', '.join(MESSAGE_NAMES)}) in any of "
                   f"{[str(d) for d in message_dirs()]}; build them (bash scripts/build_msgs.sh .venv) or source "
                   f"the colcon install")


def stamp_ns(header: Any) -> int:
    """The stamp of a std_msgs/Header (rosbags or rclpy) in nanoseconds."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def bag_layout(output: Path, storage: str | None) -> tuple[Path, str]:
    """The bag folder and storage for ``--output`` and ``--storage``."""
    from_suffix = STORAGE_SUFFIXES.get(output.suffix.lower())
    if storage is not None and storage not in STORAGES:
        raise BagError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
    if storage is not None and from_suffix is not None and storage != from_suffix:
        raise BagError(f"--output {output} names {from_suffix} storage, but --storage is {storage}")
    folder = output.with_suffix("") if from_suffix else output
    return folder, storage or from_suffix or "mcap"


def ground_truth_path(bag: Path) -> Path:
    return bag.with_name(bag.name + GROUND_TRUTH_SUFFIX)


def camera_frame_id(topic: str) -> str:
    """The frame_id of a camera's images in a several-camera bag: its topic's first namespace (/front/image_raw ->
    front)."""
    return next((segment for segment in topic.split("/") if segment), DEFAULT_FRAME_ID)


DEPTH_TOPIC = "/camera/aligned_depth_to_color/image_raw"  # realsense2_camera's aligned depth
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
DEPTH_KEY = "sgnet_depth"  # the key of the 3D ground truth in the bag's ground-truth file


def camera_info_topic(depth_topic: str) -> str:
    """The camera_info topic beside an image topic (image_transport's convention)."""
    return depth_topic.rpartition("/")[0] + "/camera_info"
