"""``sgnet-label collect``: the corrected labels back from CVAT, as YouTube-VIS annotation files to train on.

Each export (CVAT's "COCO 1.0" of one video's task: a zip, its folder or its JSON) is matched to its video of the
labelling folder by the images' file names, which are the frames' paths under JPEGImages (``<video>/<00000>.jpg``,
kept by CVAT from the frames archive; a leading folder such as ``images/`` is allowed; bare frame names are
matched when exactly one video has them all). Frames deleted in CVAT are left out of the video.

Instances: the annotations sharing a ``track_id`` attribute are one instance (one track in CVAT); an annotation
without one is an instance of its own, in its one frame. The class is the label's name, which must be one of the
drafts' categories (the checkpoint's classes), the same for every frame of an instance. Masks come from the
segmentation at the frame's size: compressed or uncompressed RLE (CVAT's masks) or polygons (rasterised by
pycocotools, sgnet_model/data/ytvis_json.py). ``iscrowd`` is not read: CVAT sets it on every mask it exports as
RLE, so every instance is written with iscrowd 0. An annotation without a segmentation (a rectangle) is an error:
the model learns masks. Empty masks count as absent.

Videos without an export are left out. The file is checked with ``parse_annotations``; with a held-out fraction,
whole videos go to ``val.json`` beside it by sgnet-split's rule (training/split.py: seeded, the same on every
machine).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

from sgnet_model.data.ytvis import Video, YTVISData, annotation_entry, parse_annotations
from sgnet_model.data.ytvis_json import RLE, Frames, parse_segmentation, read_json
from sgnet_ros.tools.label.cvat import read_export
from sgnet_ros.tools.label.format import DRAFTS_JSON, LabelError, log, present
from training.split import SplitError, split_annotations

VAL_JSON = "val.json"
Instance = tuple[int, list[RLE | None]]  # category id, one RLE or None per kept frame


@dataclasses.dataclass(frozen=True)
class CollectOptions:
    folder: Path  # the labelling folder sgnet-label drafts wrote
    exports: tuple[Path, ...]
    output: Path  # train.json; val.json goes beside it
    held_out: float = 0.2  # fraction of the labelled videos for val.json; 0: none
    seed: int = 0


def collect(options: CollectOptions) -> dict[str, Any]:
    """Write train.json (and val.json); returns a summary."""
    drafts_path = options.folder / DRAFTS_JSON
    val_path = options.output.with_name(VAL_JSON)
    if options.output.name == VAL_JSON or options.output.resolve() == drafts_path.resolve():
        raise LabelError(f"--output {options.output} would overwrite {val_path.name} or the drafts: name it "
                         f"e.g. train.json")
    if not 0 <= options.held_out < 1:
        raise LabelError(f"--held-out must lie in [0, 1), got {options.held_out}")
    drafts = parse_annotations(read_json(drafts_path), str(drafts_path))
    labelled: dict[int, tuple[list[int], list[Instance]]] = {}
    for export in options.exports:
        coco, source = read_export(export)
        video, frames = match_video(coco, drafts, source)
        if video.id in labelled:
            raise LabelError(f"{source}: a second export of video {_name(video)}")
        labelled[video.id] = sorted(frames.values()), instances(coco, video, frames, drafts, source)
    missing = [_name(v) for v in drafts.videos.values() if v.id not in labelled]
    if missing:
        log(f"{len(missing)} videos have no corrected export and are left out: {', '.join(missing)}")
    data = _annotation_file(drafts, labelled)
    parse_annotations(data, str(options.output))  # what sgnet-train and sgnet-eval will read
    parts = {options.output: data}
    if options.held_out > 0:
        try:
            split = split_annotations(data, val_fraction=options.held_out, seed=options.seed,
                                      source=str(options.output))
        except SplitError as error:
            raise LabelError(f"--held-out {options.held_out}: {error} (--held-out 0 keeps them all for training)") \
                from None
        parts = dict(zip((options.output, val_path), split))
    options.output.parent.mkdir(parents=True, exist_ok=True)
    for path, part in parts.items():
        path.write_text(json.dumps(part, separators=(",", ":")), encoding="utf-8")
    return {str(path): {"videos": len(part["videos"]), "instances": len(part["annotations"]),
                        "video_ids": [v["id"] for v in part["videos"]]} for path, part in parts.items()}


def _name(video: Video) -> str:
    return PurePosixPath(video.file_names[0]).parent.as_posix() or str(video.id)


def match_video(coco: Mapping[str, Any], drafts: YTVISData, source: str) -> tuple[Video, dict[int, int]]:
    """The video an export labels, and its image ids -> the video's frame indices."""
    paths = {name: (video.id, index) for video in drafts.videos.values() for index, name in enumerate(video.file_names)}
    found: dict[int, tuple[int, int]] = {}
    bare: dict[int, str] = {}
    for image in coco["images"]:
        if not isinstance(image, dict) or not isinstance(image.get("id"), int) \
                or not isinstance(image.get("file_name"), str):
            raise LabelError(f"{source}: an image entry without an integer id and a file_name: {image!r:.120}")
        parts = image["file_name"].replace("\\", "/").split("/")
        match = next((paths[p] for p in ("/".join(parts[i:]) for i in range(len(parts))) if p in paths), None)
        if match is None:
            bare[image["id"]] = parts[-1]
        else:
            found[image["id"]] = match
    if bare and not found:
        found = _match_bare_names(bare, drafts, source)
    elif bare:
        image_id, name = next(iter(bare.items()))
        raise LabelError(f"{source}: image {image_id} ({name}) is no frame of the labelling folder's videos")
    video_ids = sorted({video_id for video_id, _ in found.values()})
    if len(video_ids) != 1:
        raise LabelError(f"{source}: its images are frames of {len(video_ids)} videos "
                         f"({', '.join(_name(drafts.videos[v]) for v in video_ids) or 'none'}): export one task, "
                         f"made from one video's frames archive, per file")
    video = drafts.videos[video_ids[0]]
    frames = {image_id: index for image_id, (_, index) in found.items()}
    if len(set(frames.values())) != len(frames):
        raise LabelError(f"{source}: two images are the same frame of video {_name(video)}")
    for image in coco["images"]:
        size = (image.get("height"), image.get("width"))
        if size != (None, None) and size != (video.height, video.width):
            raise LabelError(f"{source}: image {image['id']} ({image['file_name']}) is {size[1]}x{size[0]}, the frame "
                             f"is {video.width}x{video.height}")
    return video, frames


def _match_bare_names(names: dict[int, str], drafts: YTVISData, source: str) -> dict[int, tuple[int, int]]:
    """Frame names without their video's folder: the one video that has them all."""
    candidates = []
    for video in drafts.videos.values():
        index_of = {PurePosixPath(name).name: index for index, name in enumerate(video.file_names)}
        if all(name in index_of for name in names.values()):
            candidates.append((video, index_of))
    if len(candidates) != 1:
        raise LabelError(f"{source}: its images name frames without their video's folder ({next(iter(names.values()))}"
                         f", ...), and {len(candidates)} videos have such frames: create the CVAT task from the "
                         f"video's .frames.zip, which keeps the folder in the frames' names")
    video, index_of = candidates[0]
    return {image_id: (video.id, index_of[name]) for image_id, name in names.items()}


def instances(coco: Mapping[str, Any], video: Video, frames: dict[int, int], drafts: YTVISData,
              source: str) -> list[Instance]:
    """The export's instances: (category id, one RLE or None per frame of ``frames``, in frame order)."""
    kept = sorted(frames.values())
    position = {index: i for i, index in enumerate(kept)}
    label_names = {c.get("id"): c.get("name") for c in coco["categories"] if isinstance(c, dict)}
    category_of = {c.name: c.id for c in drafts.categories}
    shape = Frames(1, video.height, video.width)
    groups: dict[tuple[str, int], dict[str, Any]] = {}
    for number, annotation in enumerate(coco["annotations"]):
        where = f"{source}: annotation {annotation.get('id', f'#{number}') if isinstance(annotation, dict) else number}"
        if not isinstance(annotation, dict) or annotation.get("image_id") not in frames:
            raise LabelError(f"{where}: its image_id is not one of the file's images")
        name = label_names.get(annotation.get("category_id"))
        if name not in category_of:
            raise LabelError(f"{where}: label {name!r} (category {annotation.get('category_id')}) is not one of the "
                             f"model's classes {list(category_of)}: give the CVAT task exactly those labels")
        rle = parse_segmentation(annotation.get("segmentation"), shape, where, allow_polygons=True)
        if rle is None:
            raise LabelError(f"{where}: no mask or polygon (a rectangle?); draw the object as a mask or a polygon")
        track = (annotation.get("attributes") or {}).get("track_id")
        try:
            key = ("track", int(track)) if track is not None else ("shape", number)
        except (TypeError, ValueError):
            raise LabelError(f"{where}: track_id {track!r} is not an integer") from None
        group = groups.setdefault(key, {"category_id": category_of[name], "segmentations": [None] * len(kept)})
        if group["category_id"] != category_of[name]:
            raise LabelError(f"{where}: track {key[1]} changes its label to {name!r}; a track has one class")
        frame = position[frames[annotation["image_id"]]]
        if group["segmentations"][frame] is not None:
            raise LabelError(f"{where}: track {key[1]} has two annotations in frame {video.file_names[kept[frame]]}")
        group["segmentations"][frame] = present([rle])[0]
    found = [(g["category_id"], g["segmentations"]) for g in groups.values() if any(g["segmentations"])]
    return sorted(found, key=lambda item: next(i for i, s in enumerate(item[1]) if s is not None))


def _annotation_file(drafts: YTVISData, labelled: dict[int, tuple[list[int], list[Instance]]]) -> dict[str, Any]:
    videos, annotations = [], []
    for video in drafts.videos.values():
        if video.id not in labelled:
            continue
        kept, found = labelled[video.id]
        file_names = [video.file_names[index] for index in kept]
        videos.append({"id": video.id, "file_names": file_names, "height": video.height, "width": video.width,
                       "length": len(file_names)})
        for category_id, segmentations in found:
            annotations.append(annotation_entry(len(annotations) + 1, video.id, category_id, segmentations))
    return {"info": {"description": "sgnet-label collect: corrected labels from CVAT"}, "videos": videos,
            "categories": [{"id": c.id, "name": c.name} for c in drafts.categories], "annotations": annotations}
