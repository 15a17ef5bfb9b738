"""``sgnet-label drafts``: the recorded moments as a labelling set, with the model's tracks as drafts.

For every video of the bags (sgnet_ros/tools/label/videos.py) the streaming predictor runs over its frames at their
real times (from the header stamps; tracks reset at each video), as the node runs it with the checkpoint's tracker
profile, and its tracks become YouTube-VIS annotations (:func:`sgnet_model.data.ytvis.build_video_results`, the
tracks sgnet-eval scores: the mean score, the score-weighted class, a mask in every frame the track was served; an
empty mask counts as absent, format.present).

Written into the output folder, which must be new or empty (a failure leaves it as it was):

- ``JPEGImages/<video>/<00000>.jpg``: the frames; a camera's own JPEG bytes as they are, other frames encoded at
  sgnet-bag's JPEG quality. Frames are numbered as 30 fps footage (YouTube-VIS's naming; format.frame_numbers).
- ``drafts.json``: a YouTube-VIS annotation file (videos, the checkpoint's classes as categories 1..N, one
  annotation per track with its ``score``), and under ``sgnet_label`` the checkpoint, the tracker profile and each
  video's bag, topic and header stamps.
- ``cvat/<video>.frames.zip`` (the frames, to create the CVAT task from) and ``cvat/<video>.zip`` (the drafts in
  CVAT's COCO 1.0, to upload into that task; sgnet_ros/tools/label/cvat.py).
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import cv2

from sgnet_model.config import PredictorConfig
from sgnet_model.data.ytvis import annotation_entry, build_video_results
from sgnet_ros.tools.bag.writer import JPEG_QUALITY
from sgnet_ros.tools.label.cvat import coco_file, write_coco_zip, write_frames_zip
from sgnet_ros.tools.label.format import (CVAT_DIR, DRAFTS_JSON, FRAMES_DIR, FRAMES_ZIP_SUFFIX, LABEL_KEY, LabelError,
                                          frame_file_names, log, present)
from sgnet_ros.tools.label.videos import Video, bag_topics, bag_videos


@dataclasses.dataclass(frozen=True)
class DraftOptions:
    bags: tuple[Path, ...]
    checkpoint: Path
    output: Path
    topics: tuple[str, ...] = ()  # default: every image topic of each bag
    profile: str = "robot"  # the checkpoint's tracker profile the drafts are tracked with
    gap_s: float = 0.5  # a gap in a topic's stamps longer than this starts a new video
    device: str = "cpu"
    progress: bool = True


def make_drafts(options: DraftOptions) -> dict[str, Any]:
    """Write the labelling set (see the module's docstring); returns a summary."""
    if not options.gap_s > 0:
        raise LabelError(f"--gap-s must be positive, got {options.gap_s}")
    output = options.output
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise LabelError(f"{output} exists and is not an empty folder: choose a new --output")
    names = [bag.name for bag in options.bags]
    if len(set(names)) != len(names):
        raise LabelError(f"two bags have the same folder name ({names}): the videos are named after it")
    topics = {bag: bag_topics(bag, options.topics) for bag in options.bags}  # checks every bag before the model
    predictor = _load_predictor(options)
    created = not output.exists()
    try:
        summary = _write(options, topics, predictor)
    except BaseException:  # an error or Ctrl-C: leave the folder as it was
        if created:
            shutil.rmtree(output, ignore_errors=True)
        else:
            for child in output.iterdir():
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise
    return summary


def _load_predictor(options: DraftOptions) -> Any:
    # Imported here: the command line's other parts (and its --help) do not load torch.
    from sgnet_model.checkpoint import CheckpointError
    from sgnet_model.predictor import PredictorError, StreamingPredictor
    try:
        return StreamingPredictor.from_checkpoint(options.checkpoint, PredictorConfig(device=options.device),
                                                  profile=options.profile)
    except (CheckpointError, PredictorError) as error:
        raise LabelError(str(error)) from None


def _write(options: DraftOptions, topics: dict[Path, list[str]], predictor: Any) -> dict[str, Any]:
    frames_dir, cvat_dir = options.output / FRAMES_DIR, options.output / CVAT_DIR
    cvat_dir.mkdir(parents=True)
    class_names = list(predictor.class_names)
    category_ids = list(range(1, len(class_names) + 1))
    videos: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    sources: list[dict[str, Any]] = []
    for bag in options.bags:
        for video in bag_videos(bag, topics[bag], options.gap_s, options.progress):
            video_id = len(videos) + 1
            file_names = frame_file_names(video.name, video.stamps_ns)
            _write_frames(video, frames_dir, file_names)
            predictor.reset()
            instances = [predictor.step(frame, time).instances for frame, time in zip(video.frames, video.times_s)]
            tracks = []
            for result in build_video_results(video_id, instances, category_ids, video.height, video.width):
                segmentations = present(result.segmentations)
                if not any(segmentations):
                    continue
                annotation = annotation_entry(len(annotations) + 1, video_id, result.category_id, segmentations)
                annotation["score"] = result.score
                annotations.append(annotation)
                tracks.append((annotation["id"], result.category_id - 1, segmentations))
            coco = coco_file(file_names, video.height, video.width, class_names, tracks)
            write_coco_zip(cvat_dir / f"{video.name}.zip", coco)
            write_frames_zip(cvat_dir / f"{video.name}{FRAMES_ZIP_SUFFIX}", frames_dir, file_names)
            videos.append({"id": video_id, "name": video.name, "file_names": file_names, "height": video.height,
                           "width": video.width, "length": len(file_names)})
            sources.append({"video_id": video_id, "bag": str(bag), "topic": video.topic,
                            "stamps_ns": video.stamps_ns})
            log(f"video {video.name}: {len(file_names)} frames, {len(tracks)} draft tracks")
    if not videos:
        raise LabelError(f"no frame of {', '.join(map(str, options.bags))} could be read")
    drafts = {"info": {"description": "sgnet-label drafts: the model's tracks, to be corrected in CVAT"},
              "videos": videos, "categories": [{"id": i, "name": n} for i, n in zip(category_ids, class_names)],
              "annotations": annotations,
              LABEL_KEY: {"checkpoint": str(options.checkpoint), "tracker_profile": options.profile,
                          "videos": sources}}
    (options.output / DRAFTS_JSON).write_text(json.dumps(drafts, separators=(",", ":")), encoding="utf-8")
    return {"output": str(options.output), "videos": len(videos), "frames": sum(v["length"] for v in videos),
            "tracks": len(annotations), "classes": class_names}


def _write_frames(video: Video, frames_dir: Path, file_names: list[str]) -> None:
    (frames_dir / video.name).mkdir(parents=True)
    for rgb, jpeg, name in zip(video.frames, video.jpegs, file_names):
        if jpeg is None:
            ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                       [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:
                raise LabelError(f"video {video.name}: OpenCV cannot encode frame {name} as JPEG")
            jpeg = encoded.tobytes()
        (frames_dir / name).write_bytes(jpeg)
