"""The set on disk: ``generate_synthetic_set`` writes the frames and ``annotations.json`` (and the depth), and the
``sgnet-synth`` command line."""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from sgnet_model.data.ytvis import annotation_entry, encode_mask
from training.synthetic.depth import (CAMERA_INFO_FILE, DEPTH_DIR, DEPTH_TRUTH_FILE, PinholeCamera, write_depth_set,
                                      write_depth_video)
from training.synthetic.video import DEFAULT_SIZES, DOMAINS, SHAPES, Domain, SyntheticError, random_video

# The default set: the small config (ResNet-18, 320x192 input) learns it on the CPU in minutes; split it with
# `sgnet-split --val-count 8` for 40 training and 8 held-out videos.
DEFAULT_VIDEOS = 48
DEFAULT_FRAMES = (12, 20)  # frames per video, drawn per video in [min, max]
DEFAULT_WIDTH, DEFAULT_HEIGHT = 320, 192
DEFAULT_OBJECTS = (1, 3)  # objects per video, drawn per video in [min, max]
DEFAULT_CLASSES = 4  # the first classes of SHAPES
JPEG_QUALITY = 95

# Frame t is named as YouTube-VIS names its frames: by its number on a 30 fps timeline of which every 5th frame
# is annotated (00000.jpg, 00005.jpg, ...), so the file names give the real time between frames (ytvis.py).
FRAME_STEP = 5


def _check_options(videos: int, frames: tuple[int, int], width: int, height: int, objects: tuple[int, int],
                   sizes: tuple[float, float], classes: int, jpeg_quality: int) -> None:
    problems = []
    if videos < 1:
        problems.append(f"videos must be at least 1, got {videos}")
    if not 2 <= frames[0] <= frames[1]:
        problems.append(f"frames must be at least 2 (clips are pairs) with min <= max, got {frames[0]}..{frames[1]}")
    if width < 16 or height < 16:
        problems.append(f"the frame must be at least 16x16, got {width}x{height}")
    if not 1 <= objects[0] <= objects[1]:
        problems.append(f"objects per video must be at least 1 with min <= max, got {objects[0]}..{objects[1]}")
    if not 4 <= sizes[0] <= sizes[1] <= min(width, height):
        problems.append(f"object sizes must lie in 4..{min(width, height)} (the frame's shorter side) with "
                        f"min <= max, got {sizes[0]}..{sizes[1]}")
    if not 1 <= classes <= len(SHAPES):
        problems.append(f"classes must lie in 1..{len(SHAPES)} ({', '.join(SHAPES)}), got {classes}")
    if not 1 <= jpeg_quality <= 100:
        problems.append(f"the JPEG quality must lie in 1..100, got {jpeg_quality}")
    if problems:
        raise SyntheticError("; ".join(problems))


def _annotation(annotation_id: int, video_id: int, category_id: int, masks: Sequence[np.ndarray | None],
                height: int, width: int) -> dict[str, Any]:
    segmentations = [encode_mask(m) if m is not None else None for m in masks]
    return {**annotation_entry(annotation_id, video_id, category_id, segmentations),
            "height": height, "width": width, "length": len(masks)}


def generate_synthetic_set(out_dir: str | Path, *, videos: int = DEFAULT_VIDEOS,
                           frames: int | tuple[int, int] = DEFAULT_FRAMES, width: int = DEFAULT_WIDTH,
                           height: int = DEFAULT_HEIGHT, objects: int | tuple[int, int] = DEFAULT_OBJECTS,
                           sizes: tuple[float, float] = DEFAULT_SIZES, classes: int = DEFAULT_CLASSES,
                           seed: int = 0, jpeg_quality: int = JPEG_QUALITY, overwrite: bool = False,
                           progress: bool = False, depth: bool = False, depth_dropout: float = 0.0,
                           domain: Domain = Domain()) -> Path:
    """Write a synthetic set to ``out_dir`` (``JPEGImages/`` and ``annotations.json``); returns the path of
    ``annotations.json``. The frame paths in it are relative to ``out_dir / "JPEGImages"``.

    ``frames`` and ``objects`` are a number or an inclusive (min, max) range drawn per video; ``classes``
    takes the first classes of :data:`SHAPES` (category ids 1..classes in that order). Raises
    :class:`SyntheticError` for unusable options, or when ``out_dir`` already holds a set and not
    ``overwrite``.

    With ``depth``, also ``Depth/`` (16-bit PNG depth in millimetres per frame), ``camera_info.yaml`` and
    ``depth_ground_truth.json`` (see :func:`depth_video`); the colour frames and annotations stay the same.
    ``depth_dropout``: the fraction of depth pixels left without depth (0), at random. ``domain``: the world shown
    (lighting, blur, backgrounds, class mix; :data:`DOMAINS`), written into the info section unless the default.
    """
    frame_range = (frames, frames) if isinstance(frames, int) else tuple(frames)
    object_range = (objects, objects) if isinstance(objects, int) else tuple(objects)
    sizes = (float(sizes[0]), float(sizes[1]))
    _check_options(videos, frame_range, width, height, object_range, sizes, classes, jpeg_quality)
    if not 0 <= depth_dropout < 1:
        raise SyntheticError(f"depth dropout must lie in [0, 1), got {depth_dropout}")
    if depth_dropout and not depth:
        raise SyntheticError("depth dropout makes holes in the depth: ask for depth too (--depth)")
    out_dir = Path(out_dir)
    frames_dir, annotations_path = out_dir / "JPEGImages", out_dir / "annotations.json"
    if (frames_dir.exists() or annotations_path.exists()) and not overwrite:
        raise SyntheticError(f"{out_dir} already holds a set (JPEGImages/ or annotations.json): choose another "
                             f"folder or overwrite it")
    for folder in (frames_dir, out_dir / DEPTH_DIR):
        if folder.exists():
            shutil.rmtree(folder)
    camera, depth_videos = PinholeCamera.for_frame(width, height), []
    shapes = SHAPES[:classes]
    data: dict[str, Any] = {
        "info": {"description": "sgnet-synth synthetic shapes", "seed": seed, "videos": videos,
                 "frames": list(frame_range), "width": width, "height": height, "objects": list(object_range),
                 "sizes": list(sizes), **({"domain": dataclasses.asdict(domain)} if domain != Domain() else {})},
        "videos": [], "annotations": [],
        "categories": [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(shapes)],
    }
    for index in tqdm(range(videos), desc="sgnet-synth", unit="video", disable=not progress, file=sys.stderr):
        rng = np.random.default_rng([seed, index])  # video i depends on the seed and i only
        video_id, name = index + 1, f"video_{index + 1:04d}"
        video = random_video(rng, int(rng.integers(frame_range[0], frame_range[1] + 1)), height, width,
                             int(rng.integers(object_range[0], object_range[1] + 1)), shapes, sizes, domain)
        (frames_dir / name).mkdir(parents=True)
        file_names = []
        for t, image in enumerate(video.frames):
            file_name = f"{name}/{FRAME_STEP * t:05d}.jpg"
            cv2.imwrite(str(frames_dir / file_name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            file_names.append(file_name)
        data["videos"].append({"id": video_id, "name": name, "width": width, "height": height,
                               "length": len(file_names), "file_names": file_names})
        for track, masks in zip(video.tracks, video.masks):
            data["annotations"].append(_annotation(len(data["annotations"]) + 1, video_id,
                                                   shapes.index(track.shape) + 1, masks, height, width))
        if depth:
            annotation_ids = [a["id"] for a in data["annotations"][-len(video.tracks):]]
            depth_videos.append(write_depth_video(out_dir, seed, index, video, file_names, annotation_ids, camera,
                                                   depth_dropout))
    if depth:
        write_depth_set(out_dir, camera, depth_videos)
    annotations_path.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
    return annotations_path


def _range(kind: Callable[[str], Any], name: str) -> Callable[[str], tuple[Any, Any]]:
    def parse(text: str) -> tuple[Any, Any]:
        parts = text.split(":")
        try:
            values = tuple(kind(p) for p in parts)
        except ValueError:
            values = ()
        if len(values) not in (1, 2):
            raise argparse.ArgumentTypeError(f"{name} takes N or MIN:MAX, got {text!r}")
        return (values[0], values[-1])
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sgnet-synth",
        description="Write a synthetic video instance segmentation set in the YouTube-VIS format: "
                    "OUTPUT/JPEGImages/<video>/<frame number>.jpg (00000, 00005, ...: YouTube-VIS's naming) and "
                    "OUTPUT/annotations.json (compressed RLE per frame, "
                    "null where an object is off-frame or fully hidden). Shapes of distinct classes (circle, "
                    "square, triangle, star, ring: each its own colour family and texture) move over textured "
                    "backgrounds at varied speeds, cross, occlude one another, enter and leave the frame. "
                    "The defaults make the set the small config learns on the CPU; hold videos out with "
                    "`sgnet-split OUTPUT/annotations.json --val-count 8 --output OUTPUT`.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--output", "-o", type=Path, required=True, help="folder to write the set into")
    parser.add_argument("--videos", type=int, default=DEFAULT_VIDEOS, help="number of videos")
    parser.add_argument("--frames", type=_range(int, "--frames"), default=DEFAULT_FRAMES, metavar="N|MIN:MAX",
                        help="frames per video (a range is drawn per video)")
    parser.add_argument("--width", type=int, default=DEFAULT_WIDTH, help="frame width in pixels")
    parser.add_argument("--height", type=int, default=DEFAULT_HEIGHT, help="frame height in pixels")
    parser.add_argument("--objects", type=_range(int, "--objects"), default=DEFAULT_OBJECTS, metavar="N|MIN:MAX",
                        help="objects per video (a range is drawn per video)")
    parser.add_argument("--sizes", type=_range(float, "--sizes"), default=DEFAULT_SIZES, metavar="MIN:MAX",
                        help="object size in frame 0: the diameter of its circumscribed circle, pixels")
    parser.add_argument("--classes", type=int, default=DEFAULT_CLASSES,
                        help=f"number of shape classes, the first of {', '.join(SHAPES)}")
    parser.add_argument("--domain", choices=sorted(DOMAINS), default="base",
                        help="the world shown: base (what the models here train on) or shifted (dimmer, blurred, "
                             "busy backgrounds, mostly triangles and stars; docs/flywheel.md)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed and options give the same set")
    parser.add_argument("--jpeg-quality", type=int, default=JPEG_QUALITY, help="OpenCV JPEG quality")
    parser.add_argument("--overwrite", action="store_true", help="replace a set already in OUTPUT")
    parser.add_argument("--depth-dropout", type=float, default=0.0,
                        help="with --depth: the fraction of depth pixels, drawn at random, left at 0 (no depth)")
    parser.add_argument("--depth", action="store_true",
                        help=f"also write depth: OUTPUT/{DEPTH_DIR}/<video>/<frame>.png (16-bit, millimetres), "
                             f"OUTPUT/{CAMERA_INFO_FILE} and OUTPUT/{DEPTH_TRUTH_FILE} (3D ground truth)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (paths and counts) on stdout instead of the summary line")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        path = generate_synthetic_set(args.output, videos=args.videos, frames=args.frames, width=args.width,
                                      height=args.height, objects=args.objects, sizes=args.sizes,
                                      classes=args.classes, seed=args.seed, jpeg_quality=args.jpeg_quality,
                                      overwrite=args.overwrite, progress=not args.no_progress, depth=args.depth,
                                      depth_dropout=args.depth_dropout, domain=DOMAINS[args.domain])
    except (SyntheticError, OSError) as error:
        print(f"sgnet-synth: error: {error}", file=sys.stderr)
        return 2
    data = json.loads(path.read_text(encoding="utf-8"))
    summary = {"annotations": str(path), "frames_dir": str(path.parent / "JPEGImages"),
               "videos": len(data["videos"]), "frames": sum(v["length"] for v in data["videos"]),
               "objects": len(data["annotations"]), "classes": [c["name"] for c in data["categories"]],
               "seconds": round(time.perf_counter() - start, 2)}
    if args.depth:
        summary["depth_ground_truth"] = str(path.parent / DEPTH_TRUTH_FILE)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"sgnet-synth: wrote {summary['videos']} videos ({summary['frames']} frames, {summary['objects']} "
              f"objects) to {summary['annotations']} in {summary['seconds']} s")
    return 0
