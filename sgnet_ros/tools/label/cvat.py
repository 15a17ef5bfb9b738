"""CVAT's "COCO 1.0" format: writing a video's drafts for CVAT to import, reading the corrected labels it exports.

What CVAT reads (its COCO importer is datumaro's ``coco_instances``, cvat/apps/dataset_manager/formats/coco.py):
a zip holding ``annotations/instances_default.json``, a COCO instances file whose ``images`` name the task's frames
by ``file_name`` (matched to the task's frame paths without the extension), ``categories`` by the task's label
names (ids from 1: datumaro takes category 0 for the background), and ``annotations`` with a ``segmentation``
(compressed RLE here, a mask in CVAT; a bbox is read only when the segmentation is empty), ``iscrowd``, ``bbox``,
``area`` and ``attributes``. Annotations whose attributes carry ``track_id`` and ``keyframe`` become one track per
track_id (cvat PR #6969, "Allow to upload tracks from COCO formats"); every draft frame is a keyframe, and a frame
where a track is missing becomes an "outside" keyframe there.

What CVAT writes on "Export annotations" as COCO 1.0: the same file, a track as one annotation per frame with
``attributes.track_id`` (CVAT's own numbering, from 0), masks as RLE (compressed or uncompressed) with iscrowd 1,
polygons as lists of ``[x, y, ...]`` with iscrowd 0, and shapes drawn outside a track without track_id.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Sequence

import pycocotools.mask as mask_utils

from sgnet_model.data.ytvis_json import RLE
from sgnet_ros.tools.label.format import CVAT_ANNOTATIONS, LabelError

COCO_INFO = {"contributor": "", "date_created": "", "description": "sgnet-label drafts", "url": "", "version": "",
             "year": ""}


def coco_file(file_names: Sequence[str], height: int, width: int, class_names: Sequence[str],
              tracks: Sequence[tuple[int, int, Sequence[RLE | None]]]) -> dict[str, Any]:
    """The COCO 1.0 instances file of one video: image ``i + 1`` is frame ``i`` (``file_names[i]``), category
    ``c + 1`` is class ``c``; ``tracks`` holds (track id, class index, one compressed RLE or None per frame)."""
    images = [{"id": index + 1, "width": width, "height": height, "file_name": name, "license": 0,
               "flickr_url": "", "coco_url": "", "date_captured": 0} for index, name in enumerate(file_names)]
    annotations = []
    for track_id, class_index, segmentations in tracks:
        for frame, rle in enumerate(segmentations):
            if rle is None:
                continue
            annotations.append({"id": len(annotations) + 1, "image_id": frame + 1, "category_id": class_index + 1,
                                "segmentation": rle, "area": float(mask_utils.area(rle)),
                                "bbox": [float(v) for v in mask_utils.toBbox(rle)], "iscrowd": 0,
                                "attributes": {"occluded": False, "track_id": track_id, "keyframe": True}})
    return {"licenses": [{"name": "", "id": 0, "url": ""}], "info": COCO_INFO,
            "categories": [{"id": index + 1, "name": name, "supercategory": ""}
                           for index, name in enumerate(class_names)],
            "images": images, "annotations": annotations}


def write_coco_zip(path: Path, coco: dict[str, Any]) -> None:
    """The zip CVAT's "Upload annotations" takes as COCO 1.0."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(CVAT_ANNOTATIONS, json.dumps(coco, separators=(",", ":")))


def write_frames_zip(path: Path, frames_dir: Path, file_names: Sequence[str]) -> None:
    """The task's frames, stored under their paths relative to JPEGImages (``<video name>/<00000>.jpg``): CVAT keeps
    an archive's paths as the frames' names, which the COCO files name."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in file_names:
            archive.write(frames_dir / name, name)


def read_export(path: Path) -> tuple[dict[str, Any], str]:
    """The COCO instances file of a CVAT export, and where it was read: a zip (``annotations/instances_*.json``
    inside), a folder (the export unpacked) or the JSON itself."""
    if not path.exists():
        raise LabelError(f"export {path} does not exist")
    try:
        if path.is_dir():
            found = sorted(path.glob("annotations/instances_*.json")) or sorted(path.glob("*.json"))
            if len(found) != 1:
                raise LabelError(f"export folder {path} holds {len(found)} COCO files "
                                 f"({', '.join(str(f.relative_to(path)) for f in found) or 'none'}); one is needed: "
                                 f"export each video's task on its own as COCO 1.0")
            return _parse(found[0].read_bytes(), str(found[0]))
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.startswith("annotations/instances_")
                         and n.endswith(".json")] or [n for n in archive.namelist() if n.endswith(".json")]
                if len(names) != 1:
                    raise LabelError(f"export {path} holds {len(names)} COCO files ({', '.join(names) or 'none'}); "
                                     f"one is needed: export each video's task on its own as COCO 1.0")
                return _parse(archive.read(names[0]), f"{path}:{names[0]}")
        return _parse(path.read_bytes(), str(path))
    except (OSError, zipfile.BadZipFile) as error:
        raise LabelError(f"cannot read export {path}: {error}") from None


def _parse(raw: bytes, source: str) -> tuple[dict[str, Any], str]:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise LabelError(f"{source}: not valid JSON: {error}") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                             for k in ("images", "categories", "annotations")):
        raise LabelError(f"{source}: not a COCO instances file (it needs the lists images, categories and "
                         f"annotations): export the task as COCO 1.0")
    return data, source
