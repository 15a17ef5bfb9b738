"""What sgnet-label writes and reads: the labelling folder's layout, the names of its files, the frames' names,
and the YouTube-VIS annotation entries both commands write."""
from __future__ import annotations

import sys
from typing import Sequence

import pycocotools.mask as mask_utils
from tqdm import tqdm

from sgnet_model.data.ytvis import SOURCE_FPS
from sgnet_model.data.ytvis_json import RLE

FRAMES_DIR = "JPEGImages"  # DIR/JPEGImages/<video name>/<frame number>.jpg; file_names are relative to it
DRAFTS_JSON = "drafts.json"  # the model's tracks over every video: a YouTube-VIS annotation file
CVAT_DIR = "cvat"  # DIR/cvat/<video name>.zip (annotations) and <video name>.frames.zip (the task's frames)
CVAT_ANNOTATIONS = "annotations/instances_default.json"  # where CVAT's "COCO 1.0" keeps the annotations
FRAMES_ZIP_SUFFIX = ".frames.zip"
LABEL_KEY = "sgnet_label"  # drafts.json's record of where each video came from (bag, topic, header stamps)


class LabelError(RuntimeError):
    """The labelling command cannot go on; the message names the file, video or frame at fault."""


def log(text: str) -> None:
    tqdm.write(f"sgnet-label: {text}", file=sys.stderr)


def frame_numbers(stamps_ns: Sequence[int]) -> list[int]:
    """The frames' numbers in 30 fps footage counted from the video's first frame, YouTube-VIS's naming (so
    ``ytvis.frame_times`` reads their real times back): the nearest number, but always above the previous frame's
    (a camera faster than 30 Hz gets consecutive numbers)."""
    numbers: list[int] = []
    for stamp in stamps_ns:
        number = round((stamp - stamps_ns[0]) * SOURCE_FPS / 1e9)
        numbers.append(max(number, numbers[-1] + 1) if numbers else 0)
    return numbers


def frame_file_names(video_name: str, stamps_ns: Sequence[int]) -> list[str]:
    """``<video name>/<00000>.jpg`` per frame: the paths under JPEGImages, and the names the CVAT task's frames
    keep (its frames archive holds them so)."""
    return [f"{video_name}/{number:05d}.jpg" for number in frame_numbers(stamps_ns)]


def present(segmentations: Sequence[RLE | None]) -> list[RLE | None]:
    """The segmentations with empty masks as None: an object whose mask has no pixel is not in that frame (CVAT
    cannot import an empty mask, and training skips it)."""
    return [None if s is None or mask_utils.area(s) == 0 else s for s in segmentations]
