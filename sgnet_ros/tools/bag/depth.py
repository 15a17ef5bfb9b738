"""Depth beside the colour frames: a set's ``Depth/`` folder and ``camera_info.yaml`` (as ``sgnet-synth --depth``
writes them) become aligned 16UC1 depth images and camera_info in the bag, and its 3D ground truth goes into the
bag's ground-truth file."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import yaml
from rosbags.rosbag2 import Writer
from rosbags.typesys.store import Typestore

from sgnet_model.data.ytvis import YTVISData
from sgnet_ros.tools.bag.format import CAMERA_INFO_TYPE, DEPTH_KEY, DEPTH_TOPIC, IMAGE_TYPE, BagError, camera_info_topic
from sgnet_ros.tools.bag.sources import Frame

DEPTH_DIR = "Depth"  # beside the frames folder, as sgnet-synth --depth writes (training/synthetic/depth.py)
CAMERA_INFO_FILE = "camera_info.yaml"
DEPTH_TRUTH_FILE = "depth_ground_truth.json"


@dataclasses.dataclass(frozen=True)
class DepthSource:
    """The depth of a YouTube-VIS style set: ``Depth/`` beside the frames folder, its camera_info (calibration
    YAML) and, when there, its 3D ground truth (video id -> entry of depth_ground_truth.json)."""

    folder: Path
    k: tuple[float, ...]  # row-major 3x3
    projection: tuple[float, ...]  # row-major 3x4
    width: int
    height: int
    truth: dict[int, dict[str, Any]] | None
    topic: str = DEPTH_TOPIC


def find_depth_source(frames_dir: Path, topic: str = DEPTH_TOPIC) -> DepthSource | None:
    """The set's depth when ``frames_dir``'s parent holds Depth/ and camera_info.yaml, else None."""
    root = frames_dir.parent
    calibration_path = root / CAMERA_INFO_FILE
    if not (root / DEPTH_DIR).is_dir() or not calibration_path.is_file():
        return None
    try:
        calibration = yaml.safe_load(calibration_path.read_text(encoding="utf-8"))
        k = tuple(float(v) for v in calibration["camera_matrix"]["data"])
        projection = tuple(float(v) for v in calibration["projection_matrix"]["data"])
        width, height = int(calibration["image_width"]), int(calibration["image_height"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as error:
        raise BagError(f"cannot read the camera calibration {calibration_path}: {type(error).__name__}: {error} "
                       f"(expected ROS's calibration YAML: image_width, image_height, camera_matrix.data, "
                       f"projection_matrix.data)") from None
    if len(k) != 9 or len(projection) != 12:
        raise BagError(f"{calibration_path}: camera_matrix needs 9 values and projection_matrix 12")
    truth = None
    truth_path = root / DEPTH_TRUTH_FILE
    if truth_path.is_file():
        try:
            truth = {int(v["video_id"]): v for v in json.loads(truth_path.read_text(encoding="utf-8"))["videos"]}
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise BagError(f"cannot read the 3D ground truth {truth_path}: {type(error).__name__}: {error}") from None
    return DepthSource(root / DEPTH_DIR, k, projection, width, height, truth, topic)


def with_depth(frames: Iterator[Frame], annotations: YTVISData, depth: DepthSource) -> Iterator[Frame]:
    """The frames with their depth images: Depth/<the colour frame's path>.png."""
    for frame in frames:
        name = annotations.videos[frame.video_id].file_names[frame.frame_index]
        path = depth.folder / Path(name).with_suffix(".png")
        if not path.is_file():
            raise BagError(f"video {frame.video_id}, frame {frame.frame_index}: the set has depth, but not {path}")
        yield dataclasses.replace(frame, depth_file=path)


class DepthWriter:
    """Writes each frame's depth image (16UC1) and camera_info into the bag, stamped as the colour frame."""

    def __init__(self, writer: Writer, store: Typestore, depth: DepthSource, frame_id: str) -> None:
        self._writer, self._store, self._depth, self._frame_id = writer, store, depth, frame_id
        self._image = writer.add_connection(depth.topic, IMAGE_TYPE, typestore=store)
        self._info = writer.add_connection(camera_info_topic(depth.topic), CAMERA_INFO_TYPE, typestore=store)

    def write(self, frame: Frame, stamp: int) -> None:
        if frame.depth_file is None:
            return
        depth = self._depth
        millimetres = cv2.imread(str(frame.depth_file), cv2.IMREAD_UNCHANGED)
        if millimetres is None or millimetres.dtype != np.uint16 or millimetres.shape != (depth.height, depth.width):
            found = "unreadable" if millimetres is None else f"{millimetres.dtype} {millimetres.shape[1::-1]}"
            raise BagError(f"{frame.depth_file}: expected a {depth.width}x{depth.height} 16-bit depth PNG "
                           f"(millimetres), found {found}")
        types = self._store.types
        header = types["std_msgs/msg/Header"](
            stamp=types["builtin_interfaces/msg/Time"](sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000),
            frame_id=self._frame_id)
        image = types[IMAGE_TYPE](header=header, height=depth.height, width=depth.width, encoding="16UC1",
                                  is_bigendian=0, step=depth.width * 2,
                                  data=np.ascontiguousarray(millimetres, "<u2").view(np.uint8).reshape(-1))
        roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        info = types[CAMERA_INFO_TYPE](
            header=header, height=depth.height, width=depth.width, distortion_model="plumb_bob",
            d=np.zeros(5), k=np.array(depth.k), r=np.eye(3).reshape(-1), p=np.array(depth.projection),
            binning_x=0, binning_y=0, roi=roi)
        self._writer.write(self._image, stamp, self._store.serialize_cdr(image, IMAGE_TYPE))
        self._writer.write(self._info, stamp, self._store.serialize_cdr(info, CAMERA_INFO_TYPE))


def depth_truth(depth: DepthSource, mapping: list[dict[str, int]]) -> dict[str, Any]:
    """The ground-truth file's ``sgnet_depth`` entry: the camera and the 3D truth of the bag's videos."""
    if depth.truth is None:
        return {}
    video_ids = list(dict.fromkeys(entry["video_id"] for entry in mapping))
    return {DEPTH_KEY: {"k": list(depth.k), "width": depth.width, "height": depth.height,
                        "videos": [depth.truth[v] for v in video_ids if v in depth.truth]}}
