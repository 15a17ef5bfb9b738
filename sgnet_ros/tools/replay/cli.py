"""``sgnet-replay``: replay a ROS 2 bag through the running SG-Net node, record what it publishes, and report
frames, latency, the node's own time and, with ground truth, the YouTube-VIS metrics of its outputs.

The bag is read with rosbags. Every image message is deserialized once (to check it and to read its header
stamp) and its bytes are published unchanged with rclpy, so the node receives exactly what the bag holds; a
message that does not deserialize is reported and skipped, never sent. Three ways to pace the frames:

- original timing (default) or ``--rate R``: frame i goes out at its log time in the bag, divided by R. The node
  always works on its newest frame, so frames it cannot keep up with are dropped, as from a live camera;
- ``--as-fast-as-node`` (lock-step): the next frame goes out when the node's ``instances`` for the previous one
  arrived (or after ``--timeout``). Nothing is dropped, and the node's outputs equal ``sgnet-eval``'s on the
  same frames and checkpoint (same thresholds and tracker settings);
- ``--record-only``: publish nothing; record the node's outputs while someone else plays the bag
  (``ros2 bag play BAG --remap /camera/image_raw:=/<ns>/image`` on a ROS install), matching them to the images
  seen on the node's input topic. Ends on Ctrl-C, or ``--idle`` seconds after the last image.

Before the first frame a warm-up frame (the bag's first image stamped one day later) is sent until the node
answers: that completes discovery, pays the model's first-run costs, and, as the bag's first stamp lies before
it, makes the node reset its tracks at the bag's first frame. Its outputs are not recorded.

The report names the tracker settings the node ran (``tracker_profile`` and the ``tracker.*`` values, read from the
node's parameters at the end of the replay), since the metrics depend on them: video AP rewards the node's
evaluation profile (low start/continue scores), a robot runs the robot profile (few, confident tracks).

``--clock`` publishes /clock (rosgraph_msgs/Clock) set to each frame's header stamp just before the frame goes out,
as ``ros2 bag play --clock`` does with the bag's time: a node started with ``use_sim_time:=true`` then lives in the
recording's time, so the input age in its diagnostics (its clock minus the image's stamp) is the replay's, not the
difference between today and the day of the recording.

Outputs are matched to frames by header stamp (the node copies the input header). End-to-end latency is
from publishing a frame to receiving its ``instances`` here (the middleware's receive time); the node's own time
is the ``inference_ms`` it publishes with each frame. Written to ``--output``: ``outputs/`` (a bag of the node's
``instances``, ``label_image``, optionally ``debug_image``, and ``/diagnostics``), ``report.json``,
``frames.csv`` (one row per frame), and with ground truth ``results.json``/``results.zip`` as ``sgnet-eval``
writes them.

Depth: when the bag holds a depth image topic (16UC1 or 32FC1, as ``sgnet-bag`` writes for a set with depth) and
its camera_info, each colour frame's depth image and camera_info with the same stamp go out just before it, to
``--node-depth-topic`` and the camera_info beside it (start the node with ``depth_image_topic`` set to it). With a
ground truth that has 3D (``sgnet_depth``), the report gives the 3D centroid error of the node's instances, each
matched to the shape whose mask it overlaps most (IoU >= 0.5), relative to the shape's distance.

Several cameras (``--cameras``): the bag's camera topics go out on their own names to a node serving them all
(``image_topics``); each camera's outputs are read from ``NAMESPACE/<camera>/`` and reported on their own.

The parts, in this subpackage: bag.py (reading the bag), session.py (the ROS session and the frames' answers),
pacing.py (publishing and pacing), scoring.py (ground truth and metrics), depth.py (depth), report.py (the
report); this module is the command line.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from rosbags.interfaces import Connection
from rosbags.rosbag2 import Reader

from sgnet_model.data.ytvis import YTVISError, save_results
from sgnet_ros.params import CAMERA_NAME, default_camera_name
from sgnet_ros.tools.bag.format import COMPRESSED_SUFFIX, COMPRESSED_TYPE, STORAGES, BagError, ros_typestore
from sgnet_ros.tools.replay.bag import (IMAGE_TYPES, BagStatistics, ReplayError, bag_images, image_connections,
                                        image_topics, log, open_bag)
from sgnet_ros.tools.replay.depth import (DepthFeed, DepthTopics, colour_topic, find_depth_topics, load_depth_truth,
                                          score_depth)
from sgnet_ros.tools.replay.pacing import CameraInput, Pacing, clock_publisher, record_only, replay_bag
from sgnet_ros.tools.replay.report import build_report, json_ready, print_report, write_frames_csv
from sgnet_ros.tools.replay.scoring import load_ground_truth, score_outputs
from sgnet_ros.tools.replay.session import Session, node_namespace, node_tracker_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sgnet-replay",
        description="Replay a ROS 2 bag (.mcap or .db3, read with rosbags) through the running SG-Net node, record "
                    "its outputs into a bag, and report frames in/out/dropped, end-to-end latency (median, p90, "
                    "p99), the node's own time per frame and, with --ground-truth, the YouTube-VIS metrics and "
                    "tracking figures of its outputs (the same code as sgnet-eval).",
        epilog="examples:\n"
               "  sgnet-node --ros-args -p checkpoint:=model.pt -p qos_reliability:=reliable &\n"
               "  sgnet-replay --bag bags/heldout --as-fast-as-node --ground-truth bags/heldout.ground_truth.json "
               "--output replay\n"
               "  sgnet-replay --bag bags/drive --rate 0.5 --output replay_drive --json\n"
               "  sgnet-replay --record-only --output replay_live   # while: ros2 bag play BAG --remap "
               "/camera/image_raw:=/image\n"
               "  sgnet-replay --bag bags/robot --cameras --output replay_robot   # a node with image_topics := the "
               "bag's camera topics\n"
               "Lock-step replays drop nothing and equal sgnet-eval on the same frames when the node runs the "
               "checkpoint's thresholds (model.*) and sgnet-eval's tracker settings (tracker.*: by default the "
               "checkpoint's evaluation profile); the report names the node's tracker profile and values.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bag", type=Path, help="the bag to replay (a bag folder, or a .mcap/.db3 file)")
    parser.add_argument("--topic", action="append",
                        help="the bag's image topic (default: its only sensor_msgs/Image or CompressedImage topic); "
                             "with --cameras, give it once per camera (default: every image topic)")
    parser.add_argument("--cameras", action="store_true",
                        help="replay several camera topics of the bag to a node serving them all (image_topics = the "
                             "bag's topics, each published on its own name); the report gives each camera's figures")
    parser.add_argument("--camera-names",
                        help="with --cameras: the node's camera names, comma-separated, one per topic (default: each "
                             "topic's first namespace, as the node names them)")
    parser.add_argument("--node-namespace", default="/", help="the node's namespace (default %(default)s)")
    parser.add_argument("--node-topic",
                        help="the node's input topic (default: NAMESPACE/image, or NAMESPACE/image/compressed for "
                             "CompressedImage; the node must subscribe it: compressed_image_topic)")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, help="play at this multiple of the bag's timing (default 1)")
    pace.add_argument("--original", action="store_true", help="play with the bag's timing (the default)")
    pace.add_argument("--as-fast-as-node", action="store_true",
                      help="lock-step: the next frame when the node answered the previous one (drops nothing)")
    pace.add_argument("--record-only", action="store_true",
                      help="publish nothing: record while another program (ros2 bag play) publishes the images")
    parser.add_argument("--node-depth-topic",
                        help="where the bag's depth images go when it has them (default: NAMESPACE/depth/image_raw; "
                             "camera_info beside it; the node's depth_image_topic)")
    parser.add_argument("--clock", action="store_true",
                        help="publish /clock at each frame's stamp before the frame (as ros2 bag play --clock): run "
                             "the node with use_sim_time:=true so that its input age is measured on the bag's time")
    parser.add_argument("--ground-truth", type=Path,
                        help="YouTube-VIS JSON for the bag's frames (sgnet-bag writes <bag>.ground_truth.json)")
    parser.add_argument("--output", type=Path, required=True,
                        help="folder for outputs/ (the recorded bag), report.json, frames.csv and results.json")
    parser.add_argument("--storage", choices=sorted(STORAGES), default="mcap",
                        help="storage of the output bag (default %(default)s)")
    parser.add_argument("--debug-image", action="store_true",
                        help="also record debug_image (the node renders it only while someone subscribes)")
    parser.add_argument("--timeout", type=float, default=Pacing().timeout_s,
                        help="seconds to wait for one answer in lock-step, and for the last answers "
                             "(default %(default)g)")
    parser.add_argument("--wait", type=float, default=Pacing().wait_s,
                        help="seconds to wait for the node to appear and answer (default %(default)g)")
    parser.add_argument("--idle", type=float, default=Pacing().idle_s,
                        help="record-only: stop this many seconds after the last image (default %(default)g)")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the report on stdout")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return parser


def _pacing(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Pacing:
    for name in ("timeout", "wait", "idle"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name} must be positive, got {getattr(args, name)}")
    if args.rate is not None and not args.rate > 0:
        parser.error(f"--rate must be positive, got {args.rate}")
    mode = "record-only" if args.record_only else "lock-step" if args.as_fast_as_node else "timed"
    if mode == "record-only" and args.clock:
        parser.error("--clock publishes the replayed frames' time; with --record-only the player publishes /clock "
                     "(ros2 bag play --clock)")
    if mode != "record-only" and args.bag is None:
        parser.error("--bag is needed (except with --record-only)")
    if args.cameras and (mode == "record-only" or args.node_topic):
        parser.error("--cameras publishes each camera on its bag topic: not with --record-only or --node-topic")
    if not args.cameras and (args.camera_names or len(args.topic or []) > 1):
        parser.error("several --topic, or --camera-names, need --cameras")
    return Pacing(mode=mode, rate=args.rate or 1.0, timeout_s=args.timeout, wait_s=args.wait, idle_s=args.idle)


def camera_inputs(args: argparse.Namespace, reader: Reader, depth: DepthTopics | None, namespace: str
                  ) -> tuple[dict[str, CameraInput], list[Connection]]:
    """Where each replayed bag topic goes (bag topic -> the node's camera and input topic), and its connections."""
    if not args.cameras:
        connections = image_connections(reader, args.topic[0] if args.topic else colour_topic(reader, depth),
                                        args.bag)
        msgtype = connections[0].msgtype
        topic = args.node_topic or f"{namespace}/image" + (COMPRESSED_SUFFIX if msgtype == COMPRESSED_TYPE else "")
        return {connections[0].topic: CameraInput("", topic, IMAGE_TYPES[msgtype])}, connections
    topics = args.topic or image_topics(reader, [depth.image] if depth is not None else [])
    names = args.camera_names.split(",") if args.camera_names else [default_camera_name(t) for t in topics]
    if len(names) != len(topics) or not all(CAMERA_NAME.fullmatch(name) for name in names):
        raise ReplayError(f"camera names {names} for topics {topics}: give one name per topic with --camera-names "
                          f"(a letter, then letters, digits or _)")
    if len(set(names)) != len(names):
        raise ReplayError(f"camera names {names} repeat: give --camera-names, as the node's camera_names")
    inputs, connections = {}, []
    for topic, name in zip(topics, names):
        found = image_connections(reader, topic, args.bag)
        connections += found
        inputs[topic] = CameraInput(name, topic, IMAGE_TYPES[found[0].msgtype])
    return inputs, connections


def run(args: argparse.Namespace, pacing: Pacing) -> dict[str, Any]:
    output_bag = args.output / "outputs"
    if output_bag.exists():
        raise ReplayError(f"{output_bag} exists already: remove it or choose another --output")
    truth = load_ground_truth(args.ground_truth) if args.ground_truth is not None else None
    store = ros_typestore()
    namespace = node_namespace(args.node_namespace)
    reader = None
    bag_statistics = BagStatistics()
    cameras: tuple[str, ...] = ("",)
    if pacing.mode != "record-only":
        reader = open_bag(args.bag)
        depth = find_depth_topics(reader, store)
        inputs, connections = camera_inputs(args, reader, depth, namespace)
        cameras = tuple(camera_input.camera for camera_input in inputs.values())
        topic = ", ".join(camera_input.topic for camera_input in inputs.values())
        images = bag_images(reader, connections, store, bag_statistics)
        total = sum(c.msgcount for c in connections)
        if depth is not None and args.cameras:
            log(f"warning: the bag's depth ({depth.image}) is replayed for a single-camera node only; colour only")
            depth = None
    else:
        topic = args.node_topic or f"{namespace}/image"
    created_output = not args.output.exists()
    args.output.mkdir(parents=True, exist_ok=True)
    session = Session(namespace, output_bag, args.storage, args.debug_image, store, cameras)
    interrupted = False
    started = time.monotonic()
    try:
        if pacing.mode == "record-only":
            record_only(session, topic, pacing)
        else:
            feed = DepthFeed(session, reader, store, depth, args.node_depth_topic or f"{namespace}/depth/image_raw") \
                if depth is not None else None
            hooks = [hook for hook in (clock_publisher(session) if args.clock else None,
                                       feed.before_frame if feed is not None else None) if hook is not None]

            def before_frame(stamp: int) -> None:  # /clock first: the node's time is the frame's when it arrives
                for hook in hooks:
                    hook(stamp)
            replay_bag(session, images, total, inputs, pacing, not args.no_progress, before_frame)
    except KeyboardInterrupt:
        interrupted = pacing.mode != "record-only"
        log("interrupted: reporting what was replayed so far")
    except BaseException:  # nothing was replayed: leave nothing behind
        session.close()
        shutil.rmtree(output_bag, ignore_errors=True)
        if created_output and not any(args.output.iterdir()):
            args.output.rmdir()
        raise
    finally:
        duration_s = time.monotonic() - started
        if reader is not None:
            reader.close()
    tracker_settings = node_tracker_settings(session)
    session.close()
    report = build_report(session, pacing, bag_statistics, duration_s, interrupted)
    report.update(tracker_settings)
    report["bag"] = str(args.bag) if args.bag else None
    report["node_topic"] = topic
    if truth is not None:
        for name, camera in session.cameras.items():  # results.json per camera: in a folder of its name
            metrics, results = score_outputs(truth, camera.book.frames)
            (report["cameras"][name] if args.cameras else report)["metrics"] = metrics
            save_results(results, args.output / name)
        depth_truth = load_depth_truth(args.ground_truth)
        if depth_truth is not None and not args.cameras:
            report["depth"] = score_depth(truth, depth_truth, session.book.frames)
    report = json_ready(report)
    (args.output / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    frames = [(name, record) for name, camera in session.cameras.items() for record in camera.book.frames]
    write_frames_csv(args.output / "frames.csv", [record for _, record in frames],
                     [name for name, _ in frames] if args.cameras else None)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    pacing = _pacing(args, parser)
    try:
        report = run(args, pacing)
    except (ReplayError, BagError, YTVISError, OSError) as error:
        print(f"sgnet-replay: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report, args.output)
    return 130 if report["interrupted"] else 0

