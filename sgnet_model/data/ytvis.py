"""The YouTube-VIS 2019/2021 JSON format: ground-truth annotation files and the challenge server's results.

Annotation file (``train.json``, or ``valid.json`` without ``annotations``)::

    {"videos": [{"id", "file_names": [...], "height", "width", "length"}],
     "categories": [{"id", "name"}],
     "annotations": [{"id", "video_id", "category_id", "iscrowd",
                      "segmentations": [one per frame: RLE | polygons | null], "bboxes", "areas"}]}

A segmentation is a compressed RLE (``{"size": [h, w], "counts": "..."}``), an uncompressed RLE (``counts`` a
list of run lengths), a list of polygons (``[[x1, y1, x2, y2, ...], ...]``), or null where the object is not in
that frame. Everything is checked on load (the checks: sgnet_model/data/ytvis_json.py) and stored as compressed
RLE with ``counts`` as ``str``; masks are decoded with ``pycocotools.mask``. ``bboxes`` and ``areas`` may be absent
or null: they are derived from the masks and the file's values are not used. ``iscrowd`` defaults to 0.

Class indices: model class index ``i`` is the ``i``-th category of the file sorted by category id
(:attr:`YTVISData.category_ids`). For YouTube-VIS 2019 that is ids 1..40 in the order of
``sgnet_model.config.YOUTUBE_VIS_2019_CLASSES``.

Results (what the server takes): ``results.json``, a list of ``{"video_id", "category_id", "score",
"segmentations": [one per frame: RLE with counts as str, or null]}``, zipped as ``results.zip`` with
``results.json`` at the top level of the archive.

Every error is a :class:`YTVISError` naming the file, the video / annotation / result and the frame at fault.
"""
from __future__ import annotations

import dataclasses
import json
import math
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping, Protocol, Sequence

import numpy as np
import pycocotools.mask as mask_utils

from sgnet_model.data.ytvis_json import (RLE, Frames, YTVISError, integer, parse_json, parse_rle, parse_segmentations,
                                         read_json, require, string)

RESULTS_JSON = "results.json"
# YouTube-VIS videos are 30 fps footage annotated at every 5th frame; a frame file is named by its frame number
# in the footage (00000.jpg, 00005.jpg, ...), so the names give the real time between frames.
SOURCE_FPS = 30.0
ANNOTATED_FPS = 6.0


@dataclasses.dataclass(frozen=True)
class Video:
    id: int
    file_names: tuple[str, ...]  # frame paths relative to the frames folder, in temporal order
    height: int
    width: int

    @property
    def length(self) -> int:
        return len(self.file_names)

    @property
    def frame_times(self) -> tuple[float, ...]:
        """Seconds from the first frame to each frame (see :func:`frame_times`)."""
        return frame_times(self.file_names)


def frame_times(file_names: Sequence[str]) -> tuple[float, ...]:
    """Seconds from a video's first frame to each of its frames, read from the file names.

    When every file name's stem is a frame number (digits only: ``00000.jpg``, ``00005.jpg``, as YouTube-VIS and
    sgnet-synth name them) and the numbers rise strictly, frame i is at (number_i - number_0) / SOURCE_FPS. Any
    other naming falls back to the annotation rate: frame i at i / ANNOTATED_FPS.
    """
    stems = [PurePosixPath(name).stem for name in file_names]
    if all(stem.isdigit() for stem in stems):
        numbers = [int(stem) for stem in stems]
        if all(later > earlier for earlier, later in zip(numbers, numbers[1:])):
            return tuple((number - numbers[0]) / SOURCE_FPS for number in numbers)
    return tuple(index / ANNOTATED_FPS for index in range(len(file_names)))


@dataclasses.dataclass(frozen=True)
class Category:
    id: int
    name: str


@dataclasses.dataclass(frozen=True)
class Annotation:
    """One ground-truth object of one video: a mask (or nothing) in every frame."""

    id: int
    video_id: int
    category_id: int
    segmentations: tuple[RLE | None, ...]  # one per frame of the video
    iscrowd: bool = False

    def mask(self, frame: int) -> np.ndarray | None:
        """(H, W) bool mask in ``frame``, or None where the object is absent."""
        return decode_mask(self.segmentations[frame])

    def masks(self) -> list[np.ndarray | None]:
        """(H, W) bool masks of every frame, None where the object is absent."""
        return [decode_mask(rle) for rle in self.segmentations]


@dataclasses.dataclass(frozen=True)
class YTVISData:
    """A loaded annotation file: videos in file order, categories sorted by id, annotations per video."""

    videos: dict[int, Video]
    categories: tuple[Category, ...]  # sorted by id: position = model class index
    annotations: dict[int, tuple[Annotation, ...]]  # every video id, possibly with no annotation
    has_annotations: bool  # False for files without an "annotations" key (YouTube-VIS val/test)
    source: str = "annotations"

    @property
    def category_ids(self) -> tuple[int, ...]:
        """Category ids sorted ascending: model class index i <-> ``category_ids[i]``."""
        return tuple(c.id for c in self.categories)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Category names in model class index order."""
        return tuple(c.name for c in self.categories)

    def class_index(self, category_id: int) -> int:
        """Model class index of ``category_id``."""
        try:
            return self.category_ids.index(category_id)
        except ValueError:
            raise YTVISError(f"{self.source}: category id {category_id} is not in categories "
                             f"{list(self.category_ids)}") from None

    def category_id(self, class_index: int) -> int:
        """Category id of model class index ``class_index``."""
        if not 0 <= class_index < len(self.categories):
            raise YTVISError(f"{self.source}: class index {class_index} is outside 0..{len(self.categories) - 1}")
        return self.categories[class_index].id


@dataclasses.dataclass(frozen=True)
class VideoResult:
    """One predicted track of one video, as the challenge server takes it."""

    video_id: int
    category_id: int
    score: float
    segmentations: tuple[RLE | None, ...]  # one per frame of the video

    def to_json(self) -> dict[str, Any]:
        return {"video_id": self.video_id, "category_id": self.category_id, "score": self.score,
                "segmentations": list(self.segmentations)}


class TrackedMask(Protocol):
    """One tracked instance in one frame, as the track builder reads it. ``TrackedInstance`` (the predictor's
    output) and :class:`TrackObservation` (recorded outputs) both qualify."""

    track_id: int
    class_id: int  # model class index
    score: float
    mask: np.ndarray | RLE  # (H, W) bool, or a compressed RLE of the frame's size


@dataclasses.dataclass(frozen=True)
class TrackObservation:
    """A recorded tracked instance (e.g. from the ROS node's output)."""

    track_id: int
    class_id: int
    score: float
    mask: np.ndarray | RLE


def build_video_results(video_id: int, frames: Sequence[Iterable[TrackedMask]], category_ids: Sequence[int],
                        height: int, width: int) -> list[VideoResult]:
    """Video-level tracks from per-frame tracked instances: one :class:`VideoResult` per track id, best first.

    A track's score is the mean of its per-frame scores; its category is the class with the largest sum of
    scores over its frames (a score-weighted majority vote), mapped by ``category_ids`` (model class index i
    <-> ``category_ids[i]``); its segmentation is the frame's RLE where it was seen and null elsewhere.
    ``frames`` holds the instances of each of the video's frames, in order.
    """
    scores: dict[int, list[float]] = {}
    class_votes: dict[int, np.ndarray] = {}
    segmentations: dict[int, list[RLE | None]] = {}
    for frame, instances in enumerate(frames):
        for instance in instances:
            where = f"video {video_id}, frame {frame}, track {instance.track_id}"
            if not 0 <= instance.class_id < len(category_ids):
                raise YTVISError(f"{where}: class index {instance.class_id} is outside 0..{len(category_ids) - 1}")
            track = segmentations.setdefault(instance.track_id, [None] * len(frames))
            if track[frame] is not None:
                raise YTVISError(f"{where}: the track appears twice in one frame")
            track[frame] = _instance_rle(instance.mask, height, width, where)
            scores.setdefault(instance.track_id, []).append(float(instance.score))
            votes = class_votes.setdefault(instance.track_id, np.zeros(len(category_ids)))
            votes[instance.class_id] += instance.score
    results = [VideoResult(video_id, int(category_ids[int(np.argmax(class_votes[t]))]), float(np.mean(scores[t])),
                           tuple(segmentations[t])) for t in segmentations]
    return sorted(results, key=lambda r: -r.score)


def _instance_rle(mask: np.ndarray | RLE, height: int, width: int, where: str) -> RLE:
    if isinstance(mask, Mapping):
        return parse_rle(mask, Frames(1, height, width), where)
    if mask.shape != (height, width):
        raise YTVISError(f"{where}: mask of shape {mask.shape} for a frame of {height}x{width}")
    return encode_mask(mask)


def encode_mask(mask: np.ndarray) -> RLE:
    """Compressed RLE of an (H, W) bool/uint8 mask, with ``counts`` as ``str`` (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def annotation_entry(annotation_id: int, video_id: int, category_id: int,
                     segmentations: Sequence[RLE | None]) -> dict[str, Any]:
    """A YouTube-VIS annotation entry: the segmentations (compressed RLE or None per frame), their boxes
    ([x, y, w, h]) and areas in pixels, iscrowd 0."""
    return {"id": annotation_id, "video_id": video_id, "category_id": category_id, "iscrowd": 0,
            "segmentations": list(segmentations),
            "bboxes": [None if s is None else [float(v) for v in mask_utils.toBbox(s)] for s in segmentations],
            "areas": [None if s is None else int(mask_utils.area(s)) for s in segmentations]}


def decode_mask(rle: RLE | None) -> np.ndarray | None:
    """(H, W) bool mask of a compressed RLE, None for None."""
    if rle is None:
        return None
    return mask_utils.decode(rle).astype(bool)


# ---------------------------------------------------------------------------------------------- annotations


def load_annotations(path: str | Path) -> YTVISData:
    """Read and check a YouTube-VIS annotation file."""
    path = Path(path)
    return parse_annotations(read_json(path), str(path))


def parse_annotations(data: Any, source: str = "annotations") -> YTVISData:
    """Check the parsed JSON of an annotation file and build :class:`YTVISData`."""
    if not isinstance(data, Mapping):
        raise YTVISError(f"{source}: expected a JSON object with 'videos' and 'categories', "
                         f"got {type(data).__name__}")
    for key in ("videos", "categories"):
        if key not in data:
            raise YTVISError(f"{source}: missing key '{key}'")
        if not isinstance(data[key], list):
            raise YTVISError(f"{source}: '{key}' must be a list, got {type(data[key]).__name__}")

    videos: dict[int, Video] = {}
    for position, entry in enumerate(data["videos"]):
        video = _parse_video(entry, f"{source}: video #{position}")
        if video.id in videos:
            raise YTVISError(f"{source}: video id {video.id} appears twice")
        videos[video.id] = video

    categories: dict[int, Category] = {}
    for position, entry in enumerate(data["categories"]):
        where = f"{source}: category #{position}"
        require(entry, ("id", "name"), where)
        category = Category(integer(entry["id"], f"{where}: id"), string(entry["name"], f"{where}: name"))
        if category.id in categories:
            raise YTVISError(f"{source}: category id {category.id} appears twice")
        categories[category.id] = category
    if not categories:
        raise YTVISError(f"{source}: 'categories' is empty")

    has_annotations = "annotations" in data
    entries = data.get("annotations") or []
    if not isinstance(entries, list):
        raise YTVISError(f"{source}: 'annotations' must be a list, got {type(entries).__name__}")
    per_video: dict[int, list[Annotation]] = {video_id: [] for video_id in videos}
    annotation_ids: set[int] = set()
    for position, entry in enumerate(entries):
        annotation = _parse_annotation(entry, position, videos, categories, source)
        if annotation.id in annotation_ids:
            raise YTVISError(f"{source}: annotation id {annotation.id} appears twice")
        annotation_ids.add(annotation.id)
        per_video[annotation.video_id].append(annotation)

    return YTVISData(videos=videos, categories=tuple(categories[i] for i in sorted(categories)),
                     annotations={video_id: tuple(a) for video_id, a in per_video.items()},
                     has_annotations=has_annotations, source=source)


def _parse_video(entry: Any, where: str) -> Video:
    require(entry, ("id", "file_names", "height", "width"), where)
    video_id = integer(entry["id"], f"{where}: id")
    where = f"{where} (id {video_id})"
    file_names = entry["file_names"]
    if not isinstance(file_names, list) or not file_names or not all(isinstance(f, str) and f for f in file_names):
        raise YTVISError(f"{where}: 'file_names' must be a non-empty list of frame paths")
    height, width = integer(entry["height"], f"{where}: height"), integer(entry["width"], f"{where}: width")
    if height < 1 or width < 1:
        raise YTVISError(f"{where}: height and width must be positive, got {height}x{width}")
    if entry.get("length") is not None and integer(entry["length"], f"{where}: length") != len(file_names):
        raise YTVISError(f"{where}: length {entry['length']} differs from its {len(file_names)} file_names")
    return Video(video_id, tuple(file_names), height, width)


def _parse_annotation(entry: Any, position: int, videos: Mapping[int, Video], categories: Mapping[int, Category],
                      source: str) -> Annotation:
    where = f"{source}: annotation #{position}"
    require(entry, ("id", "video_id", "category_id", "segmentations"), where)
    annotation_id = integer(entry["id"], f"{where}: id")
    where = f"{source}: annotation {annotation_id}"
    video_id = integer(entry["video_id"], f"{where}: video_id")
    if video_id not in videos:
        raise YTVISError(f"{where}: unknown video id {video_id}")
    category_id = integer(entry["category_id"], f"{where}: category_id")
    if category_id not in categories:
        raise YTVISError(f"{where} (video {video_id}): category id {category_id} is not in categories "
                         f"{sorted(categories)}")
    iscrowd = entry.get("iscrowd") or 0
    if iscrowd not in (0, 1):
        raise YTVISError(f"{where} (video {video_id}): iscrowd must be 0 or 1, got {iscrowd!r}")
    segmentations = parse_segmentations(entry["segmentations"], videos[video_id], f"{where} (video {video_id})",
                                         allow_polygons=True)
    return Annotation(annotation_id, video_id, category_id, segmentations, bool(iscrowd))


# ------------------------------------------------------------------------------------------------- results


def save_results(results: Sequence[VideoResult], output_dir: str | Path) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.zip`` (``results.json`` at the archive's top level) into
    ``output_dir``; returns both paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps([r.to_json() for r in results], separators=(",", ":"))
    json_path, zip_path = output_dir / RESULTS_JSON, output_dir / "results.zip"
    json_path.write_text(text, encoding="utf-8")
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(RESULTS_JSON, text)
    return json_path, zip_path


def load_results(path: str | Path, annotations: YTVISData | None = None) -> list[VideoResult]:
    """Read and check a results file (``results.json``, or a ``.zip`` holding it at its top level).

    With ``annotations``, every result must name one of its videos and categories and give one segmentation
    per frame at the video's size.
    """
    path = Path(path)
    if path.suffix == ".zip":
        try:
            with zipfile.ZipFile(path) as archive:
                if RESULTS_JSON not in archive.namelist():
                    raise YTVISError(f"{path}: the zip must hold {RESULTS_JSON} at its top level, "
                                     f"it holds {archive.namelist()[:5]}")
                data = parse_json(archive.read(RESULTS_JSON), f"{path}:{RESULTS_JSON}")
        except (OSError, zipfile.BadZipFile) as error:
            raise YTVISError(f"{path}: cannot read the zip: {error}") from None
    else:
        data = read_json(path)
    return parse_results(data, annotations, str(path))


def parse_results(data: Any, annotations: YTVISData | None = None, source: str = "results") -> list[VideoResult]:
    """Check the parsed JSON of a results file (see :func:`load_results`)."""
    if not isinstance(data, list):
        raise YTVISError(f"{source}: expected a JSON list of results, got {type(data).__name__}")
    results = []
    for position, entry in enumerate(data):
        where = f"{source}: result #{position}"
        require(entry, ("video_id", "category_id", "score", "segmentations"), where)
        video_id = integer(entry["video_id"], f"{where}: video_id")
        where = f"{where} (video {video_id})"
        category_id = integer(entry["category_id"], f"{where}: category_id")
        score = entry["score"]
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise YTVISError(f"{where}: score must be a finite number, got {score!r}")
        if annotations is None:
            segmentations = _parse_free_segmentations(entry["segmentations"], where)
        else:
            if video_id not in annotations.videos:
                raise YTVISError(f"{where}: unknown video id {video_id}")
            if category_id not in annotations.category_ids:
                raise YTVISError(f"{where}: category id {category_id} is not in categories "
                                 f"{list(annotations.category_ids)}")
            segmentations = parse_segmentations(entry["segmentations"], annotations.videos[video_id], where,
                                                 allow_polygons=False)
        results.append(VideoResult(video_id, category_id, float(score), segmentations))
    return results


def _parse_free_segmentations(entries: Any, where: str) -> tuple[RLE | None, ...]:
    """Segmentations of a result checked without a video: RLEs or nulls, all of one size."""
    if not isinstance(entries, list) or not entries:
        raise YTVISError(f"{where}: 'segmentations' must be a non-empty list, one entry per frame")
    first = next((e for e in entries if isinstance(e, Mapping) and isinstance(e.get("size"), list)), None)
    if first is None:
        if any(e is not None for e in entries):
            raise YTVISError(f"{where}: segmentations must be RLEs ({{'size', 'counts'}}) or null")
        return tuple(entries)
    size = first["size"]
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise YTVISError(f"{where}: RLE size must be [height, width], got {size!r}")
    return parse_segmentations(entries, Frames(len(entries), size[0], size[1]), where, allow_polygons=False)
