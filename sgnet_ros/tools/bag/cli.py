"""The ``sgnet-bag`` command line: its parser (subcommands video, images, ytvis) and ``main``."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

from sgnet_model.config import PredictorConfig
from sgnet_model.data.ytvis import YTVISData, YTVISError, load_annotations
from sgnet_ros.tools.bag.depth import CAMERA_INFO_FILE, DEPTH_DIR, find_depth_source, with_depth
from sgnet_ros.tools.bag.format import (BAG_KEY, COMPRESSED_SUFFIX, DEFAULT_FRAME_ID, DEFAULT_TOPIC, DEPTH_TOPIC,
                                        ENCODINGS, GROUND_TRUTH_SUFFIX, STORAGES, BagError, camera_info_topic)
from sgnet_ros.tools.bag.sources import (VIDEO_GAP_S, Frame, annotated_frames, folder_frames, folder_images,
                                         video_frames, ytvis_frames)
from sgnet_ros.tools.bag.writer import JPEG_QUALITY, BagOptions, write_bag


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
