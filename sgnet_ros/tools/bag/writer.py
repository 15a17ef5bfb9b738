"""Writing the bag: one image message per frame on every camera topic, the depth beside them, and the ground truth
beside the bag; a failure leaves nothing behind."""
from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
from rosbags.rosbag2 import Writer
from rosbags.typesys import get_typestore
from rosbags.typesys.store import Typestore
from tqdm import tqdm

from sgnet_model.data.ytvis import YTVISData
from sgnet_ros.bag_flavour import BAG_METADATA_VERSION
from sgnet_ros.tools.bag.depth import DepthSource, DepthWriter, depth_truth
from sgnet_ros.tools.bag.format import (BAG_KEY, COMPRESSED_SUFFIX, COMPRESSED_TYPE,
                                        DEFAULT_FRAME_ID, DEFAULT_TOPIC, ENCODINGS, IMAGE_TYPE, ROS_STORE, STORAGES,
                                        BagError, bag_layout, camera_frame_id, ground_truth_path)
from sgnet_ros.tools.bag.sources import Frame

JPEG_QUALITY = 95


@dataclasses.dataclass(frozen=True)
class BagOptions:
    output: Path  # the bag folder; a .mcap or .db3 suffix picks the storage and is dropped from the name
    topic: str | None = None  # default: /camera/image_raw, or /camera/image_raw/compressed for jpeg
    more_topics: tuple[str, ...] = ()  # further cameras: every frame also on each of these
    encoding: str = "rgb8"  # rgb8, bgr8 (sensor_msgs/Image) or jpeg (sensor_msgs/CompressedImage)
    storage: str | None = None  # mcap or sqlite3; default: from the output's suffix, else mcap
    frame_id: str = DEFAULT_FRAME_ID
    start_ns: int | None = None  # stamp of the first frame; default: now
    jpeg_quality: int = JPEG_QUALITY  # for jpeg bags of frames that are not JPEG files already
    depth: "DepthSource | None" = None  # depth images and camera_info beside the frames (frames with depth_file)


@dataclasses.dataclass(frozen=True)
class BagSummary:
    bag: str
    storage: str
    topic: str  # the first camera's
    topics: list[str]  # every camera's
    message_type: str
    encoding: str
    frames: int
    width: int
    height: int
    duration_s: float
    ground_truth: str | None
    depth_topic: str | None = None


def write_bag(frames: Iterator[Frame], options: BagOptions, annotations: YTVISData | None = None,
              expected_frames: int | None = None, progress: bool = True) -> BagSummary:
    """Write the frames into a new bag (and the ground truth beside it when ``annotations`` is given). A
    failure leaves nothing behind."""
    if options.encoding not in ENCODINGS:
        raise BagError(f"encoding must be one of {ENCODINGS}, got {options.encoding!r}")
    folder, storage = bag_layout(options.output, options.storage)
    truth_path = ground_truth_path(folder)
    for path in (folder, truth_path) if annotations is not None else (folder,):
        if path.exists():
            raise BagError(f"{path} exists already: remove it or choose another --output")
    try:  # the folders above the bag are made when missing (-o bags/val in a fresh checkout)
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BagError(f"cannot make the folder {folder.parent} for the bag: {error}") from None
    compressed = options.encoding == "jpeg"
    message_type = COMPRESSED_TYPE if compressed else IMAGE_TYPE
    topic = options.topic or (DEFAULT_TOPIC + COMPRESSED_SUFFIX if compressed else DEFAULT_TOPIC)
    start_ns = time.time_ns() if options.start_ns is None else options.start_ns
    store = get_typestore(ROS_STORE)
    mapping: list[dict[str, int]] = []
    first = last = None
    size = (0, 0)
    count = 0
    try:
        with Writer(folder, version=BAG_METADATA_VERSION, storage_plugin=STORAGES[storage]) as writer:
            cameras = [(writer.add_connection(name, message_type, typestore=store),
                        camera_frame_id(name) if options.more_topics else options.frame_id)
                       for name in (topic, *options.more_topics)]
            depth_writer = DepthWriter(writer, store, options.depth, options.frame_id) if options.depth else None
            for frame in tqdm(frames, total=expected_frames, unit="frame", desc="sgnet-bag", disable=not progress,
                              file=sys.stderr):
                stamp = start_ns + round(frame.time_s * 1e9)
                for connection, frame_id in cameras:
                    message = _message(store, frame, stamp, dataclasses.replace(options, frame_id=frame_id), compressed)
                    writer.write(connection, stamp, store.serialize_cdr(message, message_type))
                if depth_writer is not None:
                    depth_writer.write(frame, stamp)
                if frame.video_id is not None:
                    mapping.append({"stamp_ns": stamp, "video_id": frame.video_id,
                                    "frame_index": frame.frame_index})
                first = stamp if first is None else first
                last = stamp
                size = frame.rgb.shape[:2]
                count += 1
            if first is None:
                raise BagError("no frame to write")
        if annotations is not None:
            _write_ground_truth(truth_path, annotations, mapping, folder.name, [topic, *options.more_topics],
                                depth_truth(options.depth, mapping) if options.depth else {})
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        if annotations is not None:
            truth_path.unlink(missing_ok=True)
        raise
    return BagSummary(bag=str(folder), storage=storage, topic=topic, topics=[topic, *options.more_topics],
                      message_type=message_type,
                      encoding=options.encoding, frames=count, width=size[1], height=size[0],
                      duration_s=(last - first) / 1e9, ground_truth=str(truth_path) if annotations else None,
                      depth_topic=options.depth.topic if options.depth else None)


def _message(store: Typestore, frame: Frame, stamp: int, options: BagOptions, compressed: bool) -> Any:
    types = store.types
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000),
        frame_id=options.frame_id)
    if compressed:
        if frame.jpeg_file is not None:  # the file's own bytes: decoding them gives what sgnet-eval reads
            data = np.frombuffer(frame.jpeg_file.read_bytes(), np.uint8)
        else:
            ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR),
                                       [cv2.IMWRITE_JPEG_QUALITY, options.jpeg_quality])
            data = encoded.reshape(-1)
        return types[COMPRESSED_TYPE](header=header, format="jpeg", data=data)
    pixels = frame.rgb if options.encoding == "rgb8" else frame.rgb[:, :, ::-1]
    height, width = pixels.shape[:2]
    return types[IMAGE_TYPE](header=header, height=height, width=width, encoding=options.encoding,
                             is_bigendian=0, step=width * 3, data=np.ascontiguousarray(pixels).reshape(-1))


def _write_ground_truth(path: Path, annotations: YTVISData, mapping: list[dict[str, int]], bag_name: str,
                        topics: list[str], extra: dict[str, Any]) -> None:
    video_ids = list(dict.fromkeys(entry["video_id"] for entry in mapping))
    data = {
        "videos": [{"id": v.id, "file_names": list(v.file_names), "height": v.height, "width": v.width,
                    "length": v.length} for v in (annotations.videos[i] for i in video_ids)],
        "categories": [{"id": c.id, "name": c.name} for c in annotations.categories],
        "annotations": [{"id": a.id, "video_id": a.video_id, "category_id": a.category_id,
                         "iscrowd": int(a.iscrowd), "segmentations": list(a.segmentations)}
                        for v in video_ids for a in annotations.annotations[v]],
        BAG_KEY: {"bag": bag_name, "topic": topics[0], **({"topics": topics} if len(topics) > 1 else {}),
                  "frames": mapping},
        **extra,
    }
    path.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
