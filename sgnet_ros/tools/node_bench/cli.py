"""The ``sgnet-node-bench`` command line: its parser, the run of the chosen measurements, the table and ``main``."""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from sgnet_model.config import BACKENDS, PRECISIONS, PredictorConfig
from sgnet_model.predictor import resolve_device
from sgnet_model.runinfo import emit_json, runtime_info
from sgnet_ros.tools.node_bench.common import BenchError, frames
from sgnet_ros.tools.node_bench.depth_path import DepthFeed, measure_depth_path
from sgnet_ros.tools.node_bench.overhead import BenchNode, measure_overhead, measure_stream, wait_ready
from sgnet_ros.tools.node_bench.recording_path import EVERY_FRAME, measure_recorder, recorded_frames

SHIPPED = PredictorConfig()  # the node's defaults: what the nodes run unless told otherwise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sgnet-node-bench", description=__doc__.split("\n\n")[0] + " Prints a table (or --json).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", default="", help="trained checkpoint for both nodes (default: random weights)")
    parser.add_argument("--model-config", default="resnet18_small",
                        help="random-weight model of the overhead measurement (config/model name or YAML)")
    parser.add_argument("--stream-model-config", default="resnet50",
                        help="random-weight model of the stream measurement; it should be slower than the frame period")
    parser.add_argument("--device", default=SHIPPED.device, help="predictor.device of the nodes")
    parser.add_argument("--fp16", action="store_true", help="predictor.fp16 of the nodes (CUDA only)")
    parser.add_argument("--backend", default=SHIPPED.backend, choices=BACKENDS,
                        help="predictor.backend of the nodes (docs/export.md)")
    parser.add_argument("--precision", default=SHIPPED.precision, choices=PRECISIONS,
                        help="predictor.precision of the nodes")
    parser.add_argument("--no-cuda-graphs", action="store_true", help="predictor.cuda_graphs false on the nodes")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--frames", type=int, default=30, help="frames of the overhead measurement")
    parser.add_argument("--rate", type=float, default=30.0, help="frame rate of the stream, Hz")
    parser.add_argument("--stream-seconds", type=float, default=30.0, help="length of the stream")
    parser.add_argument("--depth", action="store_true",
                        help="also measure the node with depth on (overhead over DDS, and the depth path in-process)")
    parser.add_argument("--depth-instances", type=int, default=10,
                        help="instances per frame of the in-process depth timing (discs a fifth of the height across)")
    parser.add_argument("--record", action="store_true",
                        help="also measure the node recording every frame it serves (recording.* with min_events 0: "
                             "the recorder's worst case) against the same node not recording")
    parser.add_argument("--cameras", type=int, default=0,
                        help="instead: one node serving this many cameras against 1 and against as many separate "
                             "nodes, streaming at --rate for --stream-seconds")
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH",
                        help="write the figures as JSON to PATH (and print the table), or alone: print one JSON "
                             "object instead of the table")
    return parser


def node_parameters(args: argparse.Namespace, model_config: str) -> dict[str, Any]:
    parameters: dict[str, Any] = {"predictor.device": args.device, "predictor.fp16": args.fp16,
                                  "predictor.cuda_graphs": not args.no_cuda_graphs, "predictor.backend": args.backend,
                                  "predictor.precision": args.precision,
                                  "frame_sizes": [f"{args.width}x{args.height}"]}  # prepared at configure
    if args.checkpoint:
        parameters["checkpoint"] = str(Path(args.checkpoint).resolve())
    else:
        parameters.update({"smoke_test": True, "model_config": model_config})
    return parameters


def run(args: argparse.Namespace) -> dict[str, Any]:
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # before rclpy starts; the nodes inherit it
    # the shipped Fast DDS profile on both sides, as the launch file and a camera driver should have it: without
    # it, images over 512 KB (640x360 rgb8 and up) are lost in transport and the figures measure DDS, not the node
    from sgnet_ros.inputs import fastdds_profile_environment, shipped_fastdds_profile

    os.environ.update(fastdds_profile_environment(os.environ, shipped_fastdds_profile()))
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    progress = args.json != "-" and sys.stderr.isatty()
    images = frames(8, args.height, args.width)
    rclpy.init()
    client = rclpy.create_node("sgnet_node_bench")
    executor = SingleThreadedExecutor()
    executor.add_node(client)
    results: dict[str, Any] = {"width": args.width, "height": args.height, "checkpoint": args.checkpoint or None,
                               "backend": args.backend, "precision": args.precision,
                               **runtime_info(resolve_device(args.device),
                                              torch.float16 if args.fp16 else torch.float32, not args.no_cuda_graphs)}
    try:
        if args.cameras:
            from sgnet_ros.tools.node_bench.cameras import measure_cameras

            results["cameras"] = measure_cameras(client, executor, args.cameras,
                                                 node_parameters(args, args.model_config), images, args.rate,
                                                 args.stream_seconds, f"/sgnet_node_bench_{os.getpid()}")
            return results
        parts = [("overhead", args.model_config), ("stream", args.stream_model_config)]
        if args.record:
            parts.append(("overhead_recording", args.model_config))
        if args.depth:
            parts.append(("overhead_depth", args.model_config))
            results["depth_path"] = measure_depth_path(client, args.width, args.height, args.depth_instances,
                                                       args.frames)
        sequence = [images[i % len(images)] for i in range(args.frames)]  # the overhead parts' frames
        for part, config in parts:
            parameters = node_parameters(args, config)
            if part == "overhead_depth":
                parameters["depth_image_topic"] = "depth/image_raw"
            if part == "overhead_recording":
                bags = Path(tempfile.mkdtemp(prefix="sgnet_node_bench_"))
                parameters.update({"recording.folder": str(bags),
                                   **{f"recording.{name}": value for name, value in EVERY_FRAME.items()}})
            node = BenchNode(client, f"/sgnet_node_bench_{os.getpid()}_{part}", parameters)
            try:
                wait_ready(executor, node, images[0])
                if part == "overhead_depth":
                    feed = DepthFeed(client, node.namespace, args.width, args.height)
                    try:
                        results["overhead_depth"] = {
                            **measure_overhead(executor, node, sequence, progress, feed.before_frame),
                            "depth_ack_ms": feed.ack_ms}
                    finally:
                        feed.close()
                elif part == "overhead_recording":
                    results[part] = measure_overhead(executor, node, sequence, progress)
                elif part == "overhead":
                    results["overhead"] = {"model": args.checkpoint or config,
                                           **measure_overhead(executor, node, sequence, progress)}
                else:
                    results["stream"] = {"model": args.checkpoint or config, "rate_hz": args.rate,
                                         **measure_stream(executor, node, images, args.rate, args.stream_seconds,
                                                          progress)}
            finally:
                node.stop()
                client.destroy_subscription(node.subscription)
                client.destroy_publisher(node.publisher)
            if part == "overhead_recording":  # the node has stopped: its bag is closed
                results[part].update(recorded_frames(bags, args.frames))
                shutil.rmtree(bags, ignore_errors=True)
                results[part].update(measure_recorder(images, args.stream_seconds))
    finally:
        executor.remove_node(client)
        client.destroy_node()
        rclpy.try_shutdown()
    return results


def table(results: dict[str, Any]) -> str:
    if "cameras" in results:
        from sgnet_ros.tools.node_bench.cameras import cameras_table

        return cameras_table(results)
    overhead, stream = results["overhead"], results["stream"]
    rows = [
        ("image", f"{results['width']}x{results['height']} rgb8"),
        ("device", f"{results['device']} ({results['device_name']}), {results['dtype']}"
                   f"{', CUDA graph' if results['cuda_graphs'] else ''}, torch {results['torch']}"),
        ("overhead: model", overhead["model"]),
        ("overhead: frames", str(overhead["frames"])),
        ("latency, median", f"{overhead['latency_ms_median']:.1f} ms"),
        ("predictor time, median", f"{overhead['inference_ms_median']:.1f} ms"),
        ("node overhead, median", f"{overhead['overhead_ms_median']:.1f} ms"),
        ("node overhead, max", f"{overhead['overhead_ms_max']:.1f} ms"),
        ("stream: model", stream["model"]),
        ("stream: rate", f"{stream['rate_hz']:.0f} Hz, {stream['frames_sent']} frames"),
        ("answered / dropped", f"{stream['frames_answered']} / {stream['frames_dropped']}"),
        ("model time, median", f"{stream['model_ms_median']:.1f} ms"),
        ("latency median / p95 / max", f"{stream['latency_ms_median']:.1f} / {stream['latency_ms_p95']:.1f} / "
                                       f"{stream['latency_ms_max']:.1f} ms"),
        ("max latency / model time", f"{stream['latency_max_over_model']:.2f}"),
        ("node RSS first / last quarter", f"{stream['rss_mb_first_quarter']:.0f} / "
                                          f"{stream['rss_mb_last_quarter']:.0f} MB "
                                          f"({stream['rss_mb_growth']:+.1f} MB)"),
    ]
    if "gpu_mb_growth" in stream:
        rows.append(("node GPU memory first / last quarter", f"{stream['gpu_mb_first_quarter']:.0f} / "
                                                              f"{stream['gpu_mb_last_quarter']:.0f} MB "
                                                              f"({stream['gpu_mb_growth']:+.1f} MB)"))
    if "overhead_recording" in results:
        recording = results["overhead_recording"]
        rows += [
            ("recording: node overhead, median", f"{recording['overhead_ms_median']:.1f} ms (not recording: "
                                                 f"{overhead['overhead_ms_median']:.1f} ms)"),
            ("recording: node CPU per frame", f"{recording['cpu_ms_per_frame']:.1f} ms (not recording: "
                                              f"{overhead['cpu_ms_per_frame']:.1f} ms)"),
            ("recorder, in-process", f"{recording['recorder_every_frame_cpu_ms_per_frame']:.2f} ms CPU a frame "
                                     f"recording every frame, {recording['recorder_shipped_cpu_ms_per_frame']:.2f} "
                                     f"ms with the shipped settings ({recording['recorder_shipped_frames_written']} "
                                     f"of {recording['recorder_every_frame_frames_written']} frames written); "
                                     f"offer at most {recording['offer_ms_max']:.3f} ms"),
            ("recording: frames in the bag", f"{recording['measured_frames_recorded']} of {recording['frames']} "
                                             f"measured ({recording['frames_recorded']} with warm-up), "
                                             f"{recording['bag_mb']:.1f} MB"),
        ]
    if "depth_path" in results:
        path, depth = results["depth_path"], results["overhead_depth"]
        rows += [
            ("depth: node overhead, median", f"{depth['overhead_ms_median']:.1f} ms (colour only: "
                                             f"{overhead['overhead_ms_median']:.1f} ms)"),
            ("depth path, in-process", f"{path['total_ms_median']:.2f} ms median a frame, {path['instances']} "
                                       f"instances (deserialize {path['deserialize_ms_median']:.2f}, locate "
                                       f"{path['process_ms_median']:.2f}, message {path['message_ms_median']:.2f})"),
            ("depth path, CPU time", f"{path['cpu_ms_median']:.2f} ms median a frame (deserialize and locate)"),
            ("rviz markers, building", f"{path['markers_ms_median']:.3f} ms median a frame (CPU "
                                       f"{path['markers_cpu_ms_median']:.3f}), max {path['markers_ms_max']:.3f}; "
                                       f"{path['markers_per_frame']:.0f} markers"),
            ("rviz markers, unsubscribed", f"{path['markers_unsubscribed_ms_median']:.4f} ms median a frame (the "
                                           f"subscription check only; nothing built)"),
            ("debug overlay", f"{path['overlay_ms_median']:.2f} ms median a frame (CPU "
                              f"{path['overlay_cpu_ms_median']:.2f}), max {path['overlay_ms_max']:.2f}; "
                              f"{path['instances']} instances, {results['width']}x{results['height']}"),
            ("depth transport (acked)", f"{statistics.median(depth['depth_ack_ms']):.1f} ms median"),
        ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cameras < 0:
        print("sgnet-node-bench: error: --cameras must be 1 or more", file=sys.stderr)
        return 2
    for name in ("width", "height", "frames", "depth_instances"):
        if getattr(args, name) < 1:
            print(f"sgnet-node-bench: error: --{name} must be at least 1", file=sys.stderr)
            return 2
    if args.rate <= 0 or args.stream_seconds <= 0:
        print("sgnet-node-bench: error: --rate and --stream-seconds must be positive", file=sys.stderr)
        return 2
    if args.fp16 and not args.device.startswith("cuda"):
        print("sgnet-node-bench: error: --fp16 runs on CUDA only; add --device cuda", file=sys.stderr)
        return 2
    if args.checkpoint and not Path(args.checkpoint).is_file():
        print(f"sgnet-node-bench: error: checkpoint {args.checkpoint} does not exist", file=sys.stderr)
        return 2
    try:
        results = run(args)
    except BenchError as error:
        print(f"sgnet-node-bench: error: {error}", file=sys.stderr)
        return 2
    if emit_json(args.json, results):
        return 0
    print(table(results))
    return 0
