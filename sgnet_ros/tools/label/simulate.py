"""``sgnet-label simulate``: the labeller simulated by the ground truth, for the loop on synthetic footage
(docs/flywheel.md, "Run the loop yourself"). A tool for that measurement, not for a robot's footage.

A labeller corrects each video's drafts in CVAT and exports it as COCO 1.0. Here the exports are written from the
ground truth of the footage the node was shown: the ``<bag>.ground_truth.json`` that sgnet-bag wrote beside the bag
replayed through the node, whose ``sgnet_bag.frames`` map every header stamp to its video and frame. The node's
recording keeps the camera's header stamps (sgnet_ros/recording.py), and sgnet-label drafts keeps each video's
stamps in drafts.json (``sgnet_label.videos[].stamps_ns``), so each drafted frame is found in the ground truth by its
stamp. A video none of whose stamps is there is not labelled and named on stderr (sgnet-replay's warm-up frame, the
bag's first frame stamped a day ahead, is recorded when the node finds it uncertain); a video with some frames there
and others not, or a frame of another size than its ground truth, is an error.

Each drafted video's export holds every true object of its frames: one track per ground-truth annotation
(``track_id`` numbered from 0, as CVAT numbers its tracks), the true mask in each frame where the object is, the
label the ground truth's category name (one of the drafts' categories). That is what a labeller returns after
deleting the false tracks, fixing the masks and labels and adding the missed objects. Written as
``OUTPUT/<video>.zip`` (OUTPUT new or empty; nothing is written when a video fails), in the layout ``collect`` reads.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from sgnet_model.data.ytvis import YTVISData, load_annotations, parse_annotations
from sgnet_model.data.ytvis_json import read_json
from sgnet_ros.tools.bag.format import BAG_KEY
from sgnet_ros.tools.label.cvat import coco_file, write_coco_zip
from sgnet_ros.tools.label.format import DRAFTS_JSON, LABEL_KEY, LabelError, log, present


@dataclasses.dataclass(frozen=True)
class SimulateOptions:
    folder: Path  # the labelling folder sgnet-label drafts wrote
    ground_truth: tuple[Path, ...]  # sgnet-bag's <bag>.ground_truth.json of the footage replayed through the node
    output: Path  # a folder for the exports, one <video>.zip per drafted video


def simulate(options: SimulateOptions) -> dict[str, Any]:
    """Write the exports (see the module's docstring); returns a summary."""
    drafts_path = options.folder / DRAFTS_JSON
    drafts_json = read_json(drafts_path)
    drafts = parse_annotations(drafts_json, str(drafts_path))
    sources = (drafts_json.get(LABEL_KEY) or {}).get("videos")
    if not isinstance(sources, list):
        raise LabelError(f"{drafts_path} has no '{LABEL_KEY}.videos' (the stamps of its frames): write it with "
                         f"sgnet-label drafts")
    if options.output.exists() and (not options.output.is_dir() or any(options.output.iterdir())):
        raise LabelError(f"{options.output} exists and is not an empty folder: choose a new --output")
    truth, where_is = _ground_truth(options.ground_truth)
    class_names = list(drafts.class_names)
    exports, files = [], {}
    for source in sources:
        video = drafts.videos[source["video_id"]]
        name = Path(video.file_names[0]).parent.name
        stamps = source["stamps_ns"]
        if len(stamps) != video.length:
            raise LabelError(f"{drafts_path}: video {name} has {video.length} frames and {len(stamps)} stamps")
        unknown = [stamp for stamp in stamps if stamp not in where_is]
        if len(unknown) == len(stamps):
            log(f"video {name}: none of its {len(stamps)} frames' stamps is in the ground truth; not labelled")
            continue
        if unknown:
            raise LabelError(f"video {name}: {len(unknown)} of its {len(stamps)} frames (stamp {unknown[0]} ns, ...) "
                             f"are in no ground truth given ({', '.join(map(str, options.ground_truth))}): give "
                             f"every bag's <bag>.ground_truth.json that was replayed while the node recorded")
        frames = [where_is[stamp] for stamp in stamps]
        tracks = _true_tracks(truth, frames, video.height, video.width, class_names, name)
        files[f"{name}.zip"] = coco_file(video.file_names, video.height, video.width, class_names, tracks)
        exports.append({"video": name, "frames": video.length, "tracks": len(tracks)})
    options.output.mkdir(parents=True, exist_ok=True)
    for file_name, coco in files.items():
        write_coco_zip(options.output / file_name, coco)
    return {"output": str(options.output), "videos": len(exports), "frames": sum(e["frames"] for e in exports),
            "tracks": sum(e["tracks"] for e in exports), "exports": exports}


def _ground_truth(paths: tuple[Path, ...]) -> tuple[list[YTVISData], dict[int, tuple[int, int, int]]]:
    """The ground-truth files and every stamp -> (file, video id, frame index)."""
    truth, where_is = [], {}
    for path in paths:
        data = load_annotations(path)
        mapping = (read_json(path).get(BAG_KEY) or {}).get("frames")
        if not isinstance(mapping, list):
            raise LabelError(f"{path} has no '{BAG_KEY}.frames' (stamp -> video and frame): give the "
                             f"<bag>.ground_truth.json that sgnet-bag wrote beside the replayed bag")
        for entry in mapping:
            where_is[entry["stamp_ns"]] = (len(truth), entry["video_id"], entry["frame_index"])
        truth.append(data)
    return truth, where_is


def _true_tracks(truth: list[YTVISData], frames: list[tuple[int, int, int]], height: int, width: int,
                 class_names: list[str], name: str) -> list[tuple[int, int, list[Any]]]:
    """(track id, class index, one RLE or None per drafted frame) of every true object in the frames."""
    tracks: dict[tuple[int, int], tuple[int, list[Any]]] = {}
    for position, (file, video_id, index) in enumerate(frames):
        data = truth[file]
        if (data.videos[video_id].height, data.videos[video_id].width) != (height, width):
            raise LabelError(f"video {name}: frame {position} is {width}x{height}, the ground truth's video "
                             f"{video_id} is {data.videos[video_id].width}x{data.videos[video_id].height}")
        for annotation in data.annotations[video_id]:
            rle = present([annotation.segmentations[index]])[0]
            if rle is None:
                continue
            label = next(c.name for c in data.categories if c.id == annotation.category_id)
            if label not in class_names:
                raise LabelError(f"the ground truth's category {label!r} is not one of the model's classes "
                                 f"{class_names}")
            track = tracks.setdefault((file, annotation.id), (class_names.index(label), [None] * len(frames)))
            track[1][position] = rle
    return [(number, class_index, segmentations)
            for number, (class_index, segmentations) in enumerate(tracks.values())]
