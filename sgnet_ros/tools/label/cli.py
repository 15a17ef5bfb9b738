"""The ``sgnet-label`` command line: its parser (subcommands drafts, collect) and ``main``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from sgnet_model.config import TRACKER_PROFILES, ConfigError, PredictorConfig
from sgnet_model.data.ytvis import YTVISError
from sgnet_ros.tools.label.collect import CollectOptions, collect
from sgnet_ros.tools.label.drafts import DraftOptions, make_drafts
from sgnet_ros.tools.label.format import LabelError
from sgnet_ros.tools.label.simulate import SimulateOptions, simulate
from sgnet_ros.tools.replay.bag import ReplayError
from training.split import SplitError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sgnet-label",
        description="The labelling round trip of the node's recorded uncertain moments (docs/flywheel.md):\n"
                    "drafts turns bags into a labelling set with the model's tracks as drafts, for CVAT;\n"
                    "collect turns CVAT's corrected COCO 1.0 exports into YouTube-VIS files to train on;\n"
                    "simulate writes those exports from sgnet-bag's ground truth (synthetic footage only).",
        epilog="examples:\n"
               "  sgnet-label drafts ~/sgnet_bags/sgnet_uncertain_* --checkpoint model.pt --output label/round1\n"
               "  sgnet-label collect label/round1 --corrected exports/*.zip --output label/round1/train.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    drafts = commands.add_parser(
        "drafts", help="bags -> frames, drafts.json and one CVAT import per video",
        description="Read the bags' image topics, cut each topic's frames into videos where the header stamps leave "
                    "a gap (one recorded moment: one video), run the checkpoint over every video and write OUTPUT/"
                    "JPEGImages/<video>/<00000>.jpg, OUTPUT/drafts.json (YouTube-VIS, the model's tracks with their "
                    "scores) and, per video, OUTPUT/cvat/<video>.frames.zip (the CVAT task's frames) and "
                    "OUTPUT/cvat/<video>.zip (the drafts in CVAT's COCO 1.0, tracks by track_id).")
    drafts.add_argument("bags", nargs="+", type=Path, metavar="BAG", help="bag folders (.mcap or .db3)")
    drafts.add_argument("--checkpoint", type=Path, required=True, help="the model whose tracks are the drafts")
    drafts.add_argument("--output", "-o", type=Path, required=True, help="the labelling folder (new or empty)")
    drafts.add_argument("--topic", action="append", default=[],
                        help="an image topic to read (repeat for several; default: every Image and CompressedImage "
                             "topic of each bag)")
    drafts.add_argument("--profile", choices=TRACKER_PROFILES, default="robot",
                        help="the checkpoint's tracker profile for the drafts: robot (the tracks the node served; "
                             "the default) or evaluation (weak tracks too: less to draw, more to delete)")
    drafts.add_argument("--gap-s", type=float, default=0.5,
                        help="a gap between a topic's header stamps longer than this starts a new video "
                             "(default %(default)s; the recording's moments are at least recording.min_interval_s "
                             "apart)")
    drafts.add_argument("--device", default=PredictorConfig().device,
                        help="cpu, cuda, cuda:N or auto (default %(default)s)")
    drafts.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    drafts.add_argument("--json", action="store_true",
                        help="print one JSON object (output, videos, frames, tracks, classes)")
    folder = argparse.ArgumentParser(add_help=False)  # collect's and simulate's first argument
    folder.add_argument("folder", type=Path, metavar="DIR", help="the labelling folder sgnet-label drafts wrote")
    gather = commands.add_parser(
        "collect", parents=[folder], help="CVAT's corrected COCO 1.0 exports -> train.json (and val.json)",
        description="Read each video's corrected labels exported from CVAT as COCO 1.0 (a zip, its folder or the "
                    "JSON), match them to the labelling folder's videos by the frames' file names, and write one "
                    "YouTube-VIS annotation file over the labelled videos (frames relative to DIR/JPEGImages): "
                    "instances by track_id, masks from RLE or polygons. --held-out puts whole videos into val.json "
                    "beside it.")
    gather.add_argument("--corrected", nargs="+", type=Path, required=True, metavar="EXPORT",
                        help="CVAT exports (COCO 1.0), one per video")
    gather.add_argument("--output", "-o", type=Path, required=True,
                        help="the training annotation file to write (e.g. DIR/train.json); val.json goes beside it")
    gather.add_argument("--held-out", type=float, default=0.2,
                        help="fraction of the labelled videos held out into val.json, whole videos, rounded, at "
                             "least one (default %(default)s; 0: no val.json)")
    gather.add_argument("--seed", type=int, default=0, help="another seed holds out other videos (sgnet-split's rule)")
    gather.add_argument("--json", action="store_true",
                        help="print one JSON object: per file written, its videos, instances and video ids")
    simulated = commands.add_parser(
        "simulate", parents=[folder],
        help="a simulated labeller: the exports from the ground truth (synthetic footage)",
        description="For the loop on synthetic footage (docs/flywheel.md): write, per drafted video, the COCO 1.0 "
                    "export a labeller would have made in CVAT (every true object's mask and track in the drafted "
                    "frames), from the ground truth sgnet-bag wrote beside the bag replayed through the recording "
                    "node. Frames are found in it by their header stamps.")
    simulated.add_argument("--ground-truth", nargs="+", type=Path, required=True, metavar="JSON",
                           help="sgnet-bag's <bag>.ground_truth.json of the replayed bag(s)")
    simulated.add_argument("--output", "-o", type=Path, required=True,
                           help="the folder for the exports, <video>.zip each (new or empty)")
    simulated.add_argument("--json", action="store_true",
                           help="print one JSON object (output, videos, frames, tracks, exports)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "drafts":
            summary = make_drafts(DraftOptions(tuple(args.bags), args.checkpoint, args.output, tuple(args.topic),
                                               args.profile, args.gap_s, args.device, not args.no_progress))
            text = (f"sgnet-label: {summary['videos']} videos, {summary['frames']} frames, {summary['tracks']} draft "
                    f"tracks in {summary['output']} (drafts.json; cvat/: a .frames.zip and a COCO 1.0 .zip per video)")
        elif args.command == "simulate":
            summary = simulate(SimulateOptions(args.folder, tuple(args.ground_truth), args.output))
            text = (f"sgnet-label: {summary['videos']} exports, {summary['frames']} frames, {summary['tracks']} true "
                    f"tracks in {summary['output']}")
        else:
            summary = collect(CollectOptions(args.folder, tuple(args.corrected), args.output, args.held_out,
                                             args.seed))
            text = "\n".join(f"sgnet-label: {path}: {part['videos']} videos, {part['instances']} instances"
                             for path, part in summary.items())
    except (LabelError, ReplayError, YTVISError, SplitError, ConfigError, OSError) as error:
        print(f"sgnet-label: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sgnet-label: interrupted; nothing written", file=sys.stderr)
        return 130
    print(json.dumps(summary) if args.json else text)
    return 0
