"""``sgnet-bag``: a ROS 2 bag of camera images from a video file, an image folder or a YouTube-VIS style set.

The bag is written with rosbags (no ROS install needed) as ``ros2 bag record`` would write it: a folder holding
``metadata.yaml`` and one storage file, MCAP by default or SQLite 3 (``.db3``). Each frame is one
``sensor_msgs/Image`` (``rgb8`` or ``bgr8``) or ``sensor_msgs/CompressedImage`` (``jpeg``) whose header stamp is
also the message's log time in the bag; frame ``i`` of a video is stamped ``start + i / fps``.

A YouTube-VIS set becomes one bag with its videos back to back: each frame at its real time within its video, as
``sgnet-eval`` stamps it (from the file names, frame numbers of 30 fps footage: :func:`sgnet_model.data.ytvis.frame_times`;
6 frames a second for other names), or frame i at i / ``--fps`` when given; and between two videos a pause longer
than the node's tracker gap (``predictor.max_gap_s``), so that the node starts fresh tracks at each new video, as
``sgnet-eval`` does.

When annotations are given, the ground truth of the bag's frames is written beside the bag as
``<bag>.ground_truth.json``: a YouTube-VIS annotation file (the videos in the bag, their annotations, all
categories) with one more key, ``sgnet_bag``, that maps every message's header stamp to its video and frame::

    "sgnet_bag": {"bag": "<bag folder name>", "topic": "/camera/image_raw",
                  "frames": [{"stamp_ns": 1700000000000000000, "video_id": 1, "frame_index": 0}, ...]}

``sgnet-replay --ground-truth`` reads it; ``sgnet-eval --annotations`` reads it as a plain annotation file.

Several cameras: ``--topic`` given several times writes every frame on each topic (the same video on several
cameras, with the same stamps; frame_id the topic's first namespace), a bag for a node serving several cameras
(``sgnet-replay --cameras``); the ground truth's ``sgnet_bag`` then lists them under ``topics``.

Depth: when the frames folder of a YouTube-VIS style set has ``Depth/`` (16-bit PNGs in millimetres, one per frame
at the colour frame's path) and ``camera_info.yaml`` beside it (ROS's calibration YAML), as ``sgnet-synth --depth``
writes, the bag also holds each frame's aligned depth image (``16UC1``) and camera_info, stamped as the colour frame,
on ``--depth-topic`` and the ``camera_info`` topic beside it (RealSense's names by default), and the ground truth file
gets the set's 3D ground truth (``depth_ground_truth.json``) for the bag's videos under the key ``sgnet_depth``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import cv2
import numpy as np
import yaml
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore
from tqdm import tqdm

from sgnet_model.config import PredictorConfig
from sgnet_model.data.ytvis import YTVISData, YTVISError, load_annotations

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
ENCODINGS = ("rgb8", "bgr8", "jpeg")
DEFAULT_TOPIC = "/camera/image_raw"
COMPRESSED_SUFFIX = "/compressed"  # image_transport's name for the compressed form of a topic
DEFAULT_FRAME_ID = "camera"
# Between two videos of a set the stamps jump by more than the node's default tracker gap, so tracks reset.
VIDEO_GAP_S = PredictorConfig().max_gap_s + 1.0
JPEG_QUALITY = 95
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# rosbag2 metadata version of the bags written here: 8 is the newest that Humble's `ros2 bag` reads
# (`offered_qos_profiles` as a YAML string); Jazzy and Kilted read it too. rosbags would write 9.
BAG_METADATA_VERSION = 8
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
STORAGE_SUFFIXES = {".mcap": "mcap", ".db3": "sqlite3"}
GROUND_TRUTH_SUFFIX = ".ground_truth.json"
BAG_KEY = "sgnet_bag"  # the key of the stamp -> (video, frame) mapping in the ground-truth file
ROS_STORE = Stores.ROS2_KILTED
MESSAGE_PACKAGE = "sgnet_ros"
MESSAGE_NAMES = ("Instance", "InstanceArray")


class BagError(ValueError):
    """An input that cannot become a bag, or a bag that cannot be written; the message says which and why."""


# ------------------------------------------------------------------------------------------------ message types


def message_dirs() -> list[Path]:
    """Where the .msg files of sgnet_ros may be: the source tree, then ``share/sgnet_ros/msg`` of this Python
    environment (scripts/build_msgs.sh) and of every ROS prefix (a colcon install)."""
    prefixes = [sys.prefix, *filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep))]
    return [Path(__file__).resolve().parent.parent / "msg",
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


# ------------------------------------------------------------------------------------------------------ frames


@dataclasses.dataclass(frozen=True)
class Frame:
    """One frame for the bag: its pixels, or the bytes of the JPEG file it came from (kept as they are for
    jpeg bags, so the node decodes exactly the file), its time from the bag's start, and where it came from."""

    time_s: float
    rgb: np.ndarray | None = None  # (H, W, 3) uint8
    jpeg_file: Path | None = None
    video_id: int | None = None  # with annotations: the YouTube-VIS video and frame it is
    frame_index: int | None = None
    depth_file: Path | None = None  # its aligned depth image: a 16-bit PNG in millimetres


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file, as sgnet-eval reads frames."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise BagError(f"cannot read image {path} (missing, or not an image OpenCV reads)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def video_frames(path: Path, fps: float | None, max_frames: int | None) -> tuple[int, float, Iterator[Frame]]:
    """(expected frame count, frame rate, frames) of a video file read by OpenCV; frame i at i / fps, the
    container's frame rate unless ``fps`` is given."""
    if not path.is_file():
        raise BagError(f"video file {path} does not exist")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise BagError(f"cannot open video {path}: not a video file OpenCV's backends read")
    container_fps = capture.get(cv2.CAP_PROP_FPS)
    rate = fps if fps is not None else container_fps
    if not (rate and np.isfinite(rate) and rate > 0):
        capture.release()
        raise BagError(f"video {path} does not state its frame rate; give --fps")
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    if max_frames is not None:
        count = min(count, max_frames) if count > 0 else max_frames

    def frames() -> Iterator[Frame]:
        try:
            index = 0
            while max_frames is None or index < max_frames:
                ok, bgr = capture.read()
                if not ok:
                    break
                yield Frame(time_s=index / rate, rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                index += 1
            if index == 0:
                raise BagError(f"video {path} has no frame OpenCV can decode")
        finally:
            capture.release()
    return count, rate, frames()


def folder_images(folder: Path) -> list[Path]:
    """The image files of a folder, sorted by name."""
    if not folder.is_dir():
        raise BagError(f"image folder {folder} does not exist or is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise BagError(f"image folder {folder} has no image file ({', '.join(IMAGE_SUFFIXES)})")
    return files


def folder_frames(files: Sequence[Path], fps: float) -> Iterator[Frame]:
    for index, path in enumerate(files):
        yield Frame(time_s=index / fps, rgb=read_image(path), jpeg_file=path if _is_jpeg(path) else None)


def ytvis_frames(annotations: YTVISData, frames_dir: Path, video_ids: Sequence[int], fps: float | None,
                 video_gap_s: float) -> Iterator[Frame]:
    """The chosen videos back to back: frame i of a video at its start + its real time (``Video.frame_times``),
    or start + i / fps when ``fps`` is given; the next video starts ``video_gap_s`` after the previous one's
    last frame."""
    start = 0.0
    for video_id in video_ids:
        video = annotations.videos[video_id]
        times = video.frame_times if fps is None else [index / fps for index in range(video.length)]
        for index, name in enumerate(video.file_names):
            path = frames_dir / name
            rgb = read_image(path)
            if rgb.shape[:2] != (video.height, video.width):
                raise BagError(f"video {video_id}, frame {index}: {path} is {rgb.shape[1]}x{rgb.shape[0]}, the "
                               f"annotation file says {video.width}x{video.height}")
            yield Frame(time_s=start + times[index], rgb=rgb, jpeg_file=path if _is_jpeg(path) else None,
                        video_id=video_id, frame_index=index)
        start += times[-1] + video_gap_s


def annotated_frames(frames: Iterator[Frame], annotations: YTVISData, video_id: int) -> Iterator[Frame]:
    """Frames of one video file or folder, frame i being frame i of ``video_id`` in the annotation file (same
    count, same size)."""
    video = annotations.videos[video_id]
    count = 0
    for index, frame in enumerate(frames):
        if index >= video.length:
            raise BagError(f"the input has more frames than video {video_id} of {annotations.source} "
                           f"({video.length})")
        if frame.rgb.shape[:2] != (video.height, video.width):
            raise BagError(f"frame {index} is {frame.rgb.shape[1]}x{frame.rgb.shape[0]}, video {video_id} of "
                           f"{annotations.source} is {video.width}x{video.height}")
        count += 1
        yield dataclasses.replace(frame, video_id=video_id, frame_index=index)
    if count != video.length:
        raise BagError(f"the input has {count} frames, video {video_id} of {annotations.source} has {video.length}")


def _is_jpeg(path: Path) -> bool:
    return path.suffix.lower() in (".jpg", ".jpeg")


# ----------------------------------------------------------------------------------------------------- writing


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
    if not folder.parent.is_dir():
        raise BagError(f"the folder {folder.parent} for the bag does not exist")
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


def camera_frame_id(topic: str) -> str:
    """The frame_id of a camera's images in a several-camera bag: its topic's first namespace (/front/image_raw ->
    front)."""
    return next((segment for segment in topic.split("/") if segment), DEFAULT_FRAME_ID)


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


# ------------------------------------------------------------------------------------------------------- depth

DEPTH_TOPIC = "/camera/aligned_depth_to_color/image_raw"  # realsense2_camera's aligned depth
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
DEPTH_DIR = "Depth"  # beside the frames folder, as sgnet-synth --depth writes (training/synthetic.py)
CAMERA_INFO_FILE = "camera_info.yaml"
DEPTH_TRUTH_FILE = "depth_ground_truth.json"
DEPTH_KEY = "sgnet_depth"  # the key of the 3D ground truth in the bag's ground-truth file


def camera_info_topic(depth_topic: str) -> str:
    """The camera_info topic beside an image topic (image_transport's convention)."""
    return depth_topic.rpartition("/")[0] + "/camera_info"


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


# ---------------------------------------------------------------------------------------------------------- CLI


def _video_ids(text: str) -> list[int]:
    try:
        ids = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes comma-separated video ids, got {text!r}") from None
    if not ids:
        raise argparse.ArgumentTypeError("the list of video ids is empty")
    return ids


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


def _jpeg_quality(text: str) -> int:
    quality = _positive(int)(text)
    if quality > 100:
        raise argparse.ArgumentTypeError(f"must lie in 1..100, got {text}")
    return quality


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--output", "-o", type=Path, required=True,
                        help="the bag folder to create (must not exist); a name ending in .mcap or .db3 picks the "
                             "storage (the suffix is dropped from the folder's name)")
    common.add_argument("--storage", choices=sorted(STORAGES),
                        help="storage plugin (default: from the --output suffix, else mcap)")
    common.add_argument("--topic", action="append",
                        help=f"image topic (default {DEFAULT_TOPIC}, or {DEFAULT_TOPIC}{COMPRESSED_SUFFIX} for "
                             f"--encoding jpeg); given several times, every frame goes on each (several cameras)")
    common.add_argument("--encoding", choices=ENCODINGS, default="rgb8",
                        help="rgb8 or bgr8: sensor_msgs/Image; jpeg: sensor_msgs/CompressedImage (JPEG files go in "
                             "unchanged, other frames are encoded at --jpeg-quality) (default %(default)s)")
    common.add_argument("--jpeg-quality", type=_jpeg_quality, default=JPEG_QUALITY,
                        help="OpenCV JPEG quality for frames encoded here (default %(default)s)")
    common.add_argument("--frame-id", default=DEFAULT_FRAME_ID, help="header frame_id (default %(default)s)")
    common.add_argument("--start-time", type=float,
                        help="header stamp of the first frame, seconds since the epoch (default: now)")
    common.add_argument("--json", action="store_true", help="print one JSON object describing the bag")
    common.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    annotated = argparse.ArgumentParser(add_help=False)
    annotated.add_argument("--annotations", type=Path,
                           help="YouTube-VIS annotation JSON for these frames: frame i is frame i of its video "
                                "(the file's only video, or --video-id); the ground truth goes beside the bag")
    annotated.add_argument("--video-id", type=int, help="with --annotations: the video these frames are")
    annotated.add_argument("--max-frames", type=_positive(int), help="stop after this many frames")

    parser = argparse.ArgumentParser(
        prog="sgnet-bag",
        description="Write a ROS 2 bag (rosbags; MCAP or SQLite 3) of camera images from a video file, an image "
                    "folder or a YouTube-VIS style set, to replay through the SG-Net node with sgnet-replay. "
                    "Header stamps are the frames' times (also the bag's log times); with annotations, the ground "
                    f"truth of the bag's frames is written beside it as <bag>{GROUND_TRUTH_SUFFIX} (a YouTube-VIS "
                    f"file plus a '{BAG_KEY}' key mapping each stamp to its video and frame).",
        epilog="examples:\n"
               "  sgnet-bag video drive.mp4 -o bags/drive\n"
               "  sgnet-bag images frames/ --fps 15 -o bags/frames.db3\n"
               "  sgnet-bag ytvis --annotations synth/heldout.json --frames synth/JPEGImages -o bags/heldout\n"
               "  sgnet-replay --bag bags/heldout --ground-truth bags/heldout.ground_truth.json --output replay",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sources = parser.add_subparsers(dest="source", required=True, metavar="{video,images,ytvis}")
    video = sources.add_parser("video", parents=[common, annotated], help="a video file (OpenCV)",
                               description="A video file read with OpenCV; frame i stamped at i / fps.")
    video.add_argument("path", type=Path, help="the video file")
    video.add_argument("--fps", type=_positive(float), help="frame rate (default: the container's)")
    images = sources.add_parser("images", parents=[common, annotated], help="a folder of images",
                                description="The image files of a folder sorted by name, frame i at i / fps.")
    images.add_argument("path", type=Path, help="the folder")
    images.add_argument("--fps", type=_positive(float), required=True, help="frame rate")
    ytvis = sources.add_parser("ytvis", parents=[common], help="a YouTube-VIS style set (e.g. sgnet-synth's)",
                               description="Videos of a YouTube-VIS style set back to back, each frame at its real "
                                           "time (or at --fps), with a "
                                           "pause between videos so the node's tracks reset; the ground truth "
                                           f"goes beside the bag as <bag>{GROUND_TRUTH_SUFFIX}.")
    ytvis.add_argument("--annotations", type=Path, required=True, help="YouTube-VIS annotation JSON")
    ytvis.add_argument("--frames", type=Path, required=True,
                       help="folder the file_names are relative to (JPEGImages)")
    ytvis.add_argument("--videos", type=_video_ids, help="comma-separated video ids (default: all, in file order)")
    ytvis.add_argument("--fps", type=_positive(float),
                       help="stamp frame i of a video at i / FPS (default: its real time from its file name, a frame "
                            "number of 30 fps footage; 6 frames a second for other names)")
    ytvis.add_argument("--depth-topic", default=DEPTH_TOPIC,
                       help=f"topic of the depth images when the set has {DEPTH_DIR}/ and {CAMERA_INFO_FILE} beside "
                            f"--frames (camera_info goes beside it) (default %(default)s)")
    ytvis.add_argument("--no-depth", action="store_true", help="leave the set's depth out of the bag")
    ytvis.add_argument("--video-gap", type=_positive(float), default=VIDEO_GAP_S,
                       help="seconds between one video's last frame and the next one's first; more than the "
                            "node's predictor.max_gap_s (default %(default)g)")
    return parser


def _frames_from(args: argparse.Namespace) -> tuple[Iterator[Frame], int | None, YTVISData | None]:
    """The frames, their expected count and the annotations of the chosen source."""
    if args.source == "ytvis":
        annotations = load_annotations(args.annotations)
        video_ids = args.videos or list(annotations.videos)
        unknown = [v for v in video_ids if v not in annotations.videos]
        if unknown:
            raise BagError(f"video ids {unknown[:5]} are not in {args.annotations}")
        if not args.frames.is_dir():
            raise BagError(f"frames folder {args.frames} does not exist")
        if args.video_gap <= PredictorConfig().max_gap_s:
            print(f"sgnet-bag: warning: --video-gap {args.video_gap:g} s is not more than the node's default "
                  f"predictor.max_gap_s ({PredictorConfig().max_gap_s:g} s): tracks may run across videos",
                  file=sys.stderr)
        count = sum(annotations.videos[v].length for v in video_ids)
        frames = ytvis_frames(annotations, args.frames, video_ids, args.fps, args.video_gap)
        if args.depth is not None:
            frames = with_depth(frames, annotations, args.depth)
        return frames, count, annotations
    if args.source == "video":
        count, _, frames = video_frames(args.path, args.fps, args.max_frames)
    else:
        files = folder_images(args.path)[:args.max_frames]
        count, frames = len(files), folder_frames(files, args.fps)
    if args.annotations is None:
        if args.video_id is not None:
            raise BagError("--video-id needs --annotations")
        return frames, count or None, None
    annotations = load_annotations(args.annotations)
    video_id = args.video_id
    if video_id is None:
        if len(annotations.videos) != 1:
            raise BagError(f"{args.annotations} has {len(annotations.videos)} videos: name the one these frames "
                           f"are with --video-id")
        video_id = next(iter(annotations.videos))
    if video_id not in annotations.videos:
        raise BagError(f"video id {video_id} is not in {args.annotations}")
    return annotated_frames(frames, annotations, video_id), count or None, annotations


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.depth = find_depth_source(args.frames, args.depth_topic) if args.source == "ytvis" and not args.no_depth \
            else None
    except BagError as error:
        print(f"sgnet-bag: error: {error}", file=sys.stderr)
        return 2
    topics = args.topic or [None]
    if len(set(topics)) != len(topics):
        print(f"sgnet-bag: error: --topic {topics} names a topic twice", file=sys.stderr)
        return 2
    options = BagOptions(output=args.output, topic=topics[0], more_topics=tuple(topics[1:]), encoding=args.encoding,
                         storage=args.storage,
                         frame_id=args.frame_id, jpeg_quality=args.jpeg_quality,
                         start_ns=None if args.start_time is None else round(args.start_time * 1e9), depth=args.depth)
    try:
        frames, count, annotations = _frames_from(args)
        summary = write_bag(frames, options, annotations, count, progress=not args.no_progress)
    except (BagError, YTVISError, OSError) as error:
        print(f"sgnet-bag: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sgnet-bag: interrupted; nothing written", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(dataclasses.asdict(summary)))
    else:
        print(f"sgnet-bag: wrote {summary.frames} frames ({summary.width}x{summary.height} {summary.encoding}, "
              f"{summary.duration_s:.2f} s) on {', '.join(summary.topics)} to {summary.bag} ({summary.storage})")
        if summary.ground_truth:
            print(f"ground truth: {summary.ground_truth}")
        if summary.depth_topic:
            print(f"depth: {summary.depth_topic} (16UC1) and {camera_info_topic(summary.depth_topic)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
