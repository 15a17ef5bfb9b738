"""The frames a bag is made of: a video file's, an image folder's, or a YouTube-VIS style set's videos back to
back, each with its time from the bag's start (and, with annotations, the video and frame it is)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from sgnet_model.config import PredictorConfig
from sgnet_model.data.ytvis import YTVISData
from sgnet_ros.tools.bag.format import BagError

# Between two videos of a set the stamps jump by more than the node's default tracker gap, so tracks reset.
VIDEO_GAP_S = PredictorConfig().max_gap_s + 1.0
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


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
