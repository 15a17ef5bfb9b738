"""sgnet-replay: scoring the node's answers against YouTube-VIS ground truth, as sgnet-eval does."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

import pycocotools.mask as mask_utils

from sgnet_model.data.ytvis import RLE, TrackObservation, VideoResult, YTVISData, build_video_results, parse_annotations
from sgnet_model.data.ytvis_metric import evaluate_vis, tracking_figures
from sgnet_ros.tools.bag.format import BAG_KEY
from sgnet_ros.tools.replay.bag import ReplayError, log
from sgnet_ros.tools.replay.session import FrameRecord


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    annotations: YTVISData
    frames: dict[int, tuple[int, int]] | None  # header stamp (ns) -> (video id, frame index); None: bag order


def load_ground_truth(path: Path) -> GroundTruth:
    """A YouTube-VIS annotation file for the bag's frames; its ``sgnet_bag`` key (sgnet-bag writes it) maps
    stamps to frames. Without that key, the bag's frames are the file's videos' frames in order."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReplayError(f"cannot read ground truth {path}: {error}") from None
    annotations = parse_annotations(data, str(path))
    if not annotations.has_annotations:
        raise ReplayError(f"ground truth {path} has no 'annotations': nothing to score against")
    if BAG_KEY not in data:
        return GroundTruth(annotations, None)
    frames: dict[int, tuple[int, int]] = {}
    try:
        for entry in data[BAG_KEY]["frames"]:
            key = (int(entry["video_id"]), int(entry["frame_index"]))
            video = annotations.videos.get(key[0])
            if video is None or not 0 <= key[1] < video.length:
                raise ReplayError(f"ground truth {path}: {BAG_KEY} names frame {key[1]} of video {key[0]}, which the "
                                  f"file does not have")
            frames[int(entry["stamp_ns"])] = key
    except (KeyError, TypeError, ValueError) as error:
        raise ReplayError(f"ground truth {path}: '{BAG_KEY}' must hold 'frames', a list of {{stamp_ns, video_id, "
                          f"frame_index}}: {type(error).__name__} {error}") from None
    return GroundTruth(annotations, frames)


def instance_rle(instance: Any) -> RLE:
    """An sgnet_ros/Instance's mask (uncompressed COCO counts) as a compressed RLE with str counts."""
    size = [int(instance.mask_height), int(instance.mask_width)]
    rle = mask_utils.frPyObjects({"size": size, "counts": [int(c) for c in instance.mask_counts]}, *size)
    return {"size": size, "counts": rle["counts"].decode("ascii")}


def score_outputs(truth: GroundTruth, frames: Sequence[FrameRecord]) -> tuple[dict[str, Any], list[VideoResult]]:
    """The YouTube-VIS metric and tracking figures of the node's answers (a frame without an answer has no
    instances), computed as sgnet-eval does: build_video_results, evaluate_vis, tracking_figures."""
    annotations = truth.annotations
    if truth.frames is not None:
        keys = [truth.frames.get(record.stamp_ns) for record in frames]
        outside = sum(key is None for key in keys)
        if outside:
            log(f"warning: {outside} frame(s) have stamps the ground truth does not map; left out of the metric")
    else:
        order = [(v, i) for v, video in annotations.videos.items() for i in range(video.length)]
        if len(order) != len(frames):
            raise ReplayError(f"the ground truth has {len(order)} frames and no '{BAG_KEY}' stamp mapping, but "
                              f"{len(frames)} frames were replayed: make the bag with sgnet-bag --annotations")
        keys = order
    video_ids = list(dict.fromkeys(key[0] for key in keys if key is not None))
    per_frame = {v: [[] for _ in range(annotations.videos[v].length)] for v in video_ids}
    class_names = annotations.class_names
    for record, key in zip(frames, keys):
        if key is None or record.output is None:
            continue
        for instance in record.output.instances:
            if instance.class_id >= len(class_names) or instance.class_name != class_names[instance.class_id]:
                raise ReplayError(f"the node's class {instance.class_id} '{instance.class_name}' is not category "
                                  f"{instance.class_id} of the ground truth ({list(class_names)[:5]}...): the model "
                                  f"was trained on other classes")
            per_frame[key[0]][key[1]].append(TrackObservation(instance.track_id, instance.class_id, instance.score,
                                                              instance_rle(instance)))
    results: list[VideoResult] = []
    for video_id in video_ids:
        video = annotations.videos[video_id]
        results.extend(build_video_results(video_id, per_frame[video_id], annotations.category_ids, video.height,
                                           video.width))
    metrics: dict[str, Any] = {**evaluate_vis(annotations, results, video_ids),
                               **tracking_figures(annotations, results, video_ids, with_hota=True)}
    metrics["videos"] = len(video_ids)
    metrics["frames"] = sum(annotations.videos[v].length for v in video_ids)
    return metrics, results
