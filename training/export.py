"""``sgnet-export CHECKPOINT -o model.onnx``: a trained checkpoint as one ONNX graph of a frame's fixed-shape work
(network, detection slots with NMS, the masks' blending, movement; sgnet_model/runtime/export.py), for the
predictor's onnxruntime, openvino and tensorrt backends, serving cameras of every frame size.

The graph takes the network's input size (the model config's input_width x input_height): sgnet_ros resizes each
frame into it keeping its aspect and brings boxes and masks back to the frame's own size. The thresholds (the
checkpoint's, or ``--score-threshold``, ``--nms-threshold``, ``--detections-per-frame``) are fixed in the graph.
Before it is written, the graph passes ``onnx.checker`` and gives torch's instances (boxes within 0.5 px, scores
within 1e-3, mask IoU 0.99) on the frames of ``--check-video`` or, without one, on a generated video of moving
shapes, each at the network's input size and turned portrait (another aspect).

``--int8 --calibration SRC --held-out VAL.json --frames DIR`` writes an int8 graph for CPUs with VNNI or AMX
(training/quantize.py; docs/export.md, int8): the fp32 graph (masks on the host) quantized by NNCF on about
``--calibration-frames`` frames of SRC (a YouTube-VIS annotation file whose frames are under ``--frames``, or a
folder of images), written only when its video AP on the held-out videos is at most ``--max-ap-loss`` below the
fp32 graph's. Name it CHECKPOINT_STEM.int8.onnx beside the checkpoint and ``precision: auto`` runs it.

Exit status 2 with one line on stderr for unusable input (a checkpoint that does not load, a video that does not
read, a graph that does not match torch, an int8 graph that loses too much AP).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

from sgnet_model.checkpoint import CheckpointError, load_checkpoint, load_model_state
from sgnet_model.config import ConfigError
from sgnet_model.network.backbone import fold_batch_norms
from sgnet_model.network.model import SGNet
from sgnet_model.runtime.export import ExportError, GraphInfo, export_frame_graph, file_sha256, write_atomically
from training.quantize import (CALIBRATION_FRAMES, Int8Result, calibration_feeds, calibration_streams, held_out_ap,
                               mark_int8, progress, quantize_graph)
from training.synthetic import SHAPES, random_video

CHECK_FRAMES = 4


def check_frames(video: Path | None, width: int, height: int) -> list[np.ndarray]:
    """The first CHECK_FRAMES frames of ``video`` (RGB), or of a generated video, at width x height and then at
    height x width (portrait where the input is landscape): two streams."""
    return [frame for size in ((width, height), (height, width)) for frame in check_stream(video, *size)]


def check_stream(video: Path | None, width: int, height: int) -> list[np.ndarray]:
    """The first CHECK_FRAMES frames of ``video`` resized to width x height (RGB), or a generated video."""
    if video is None:
        rng = np.random.default_rng(0)
        sizes = (min(width, height) / 6, min(width, height) / 2.5)
        return random_video(rng, CHECK_FRAMES, height, width, 3, SHAPES[:4], sizes).frames
    capture = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < CHECK_FRAMES:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA),
                                   cv2.COLOR_BGR2RGB))
    capture.release()
    if not frames:
        raise ExportError(f"--check-video {video}: no frame could be read (missing, or not a video OpenCV reads)")
    return frames


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sgnet-export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a checkpoint written by sgnet-train")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the .onnx file to write")
    for gone in ("--width", "--height"):  # before format version 3: a graph served one frame size
        parser.add_argument(gone, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--fp16", action="store_true",
                        help="a half-precision graph (ONNX Runtime on CUDA); checked against torch only where "
                             "CUDA and onnxruntime's CUDA provider are present")
    parser.add_argument("--masks", choices=("graph", "host"),
                        help="graph (default): the graph blends every slot's mask, for any runtime (TensorRT, "
                             "GPUs); host: it stops before and sgnet_ros blends the valid slots' (faster on a CPU; "
                             "always with --int8); sgnet_ros pastes them at each frame's size either way")
    parser.add_argument("--score-threshold", type=float, help="default: the checkpoint's")
    parser.add_argument("--nms-threshold", type=float, help="default: the checkpoint's")
    parser.add_argument("--detections-per-frame", type=int, help="slots per frame (default: the checkpoint's)")
    parser.add_argument("--check-video", type=Path, help="a video whose first frames check the graph against torch "
                                                         "(default: a generated video of moving shapes)")
    int8 = parser.add_argument_group("int8 (CPUs with VNNI or AMX; docs/export.md)")
    int8.add_argument("--int8", action="store_true", help="quantize the graph to int8 (NNCF), checked on --held-out")
    int8.add_argument("--calibration", type=Path, help="frames to calibrate on: a YouTube-VIS annotation file "
                                                      "(frames under --frames) or a folder of images")
    int8.add_argument("--calibration-frames", type=int, default=CALIBRATION_FRAMES,
                      help=f"how many calibration frames (default {CALIBRATION_FRAMES})")
    int8.add_argument("--held-out", type=Path, help="a YouTube-VIS annotation file of videos the model was not trained "
                                                   "on (frames under --frames): both graphs' video AP on them")
    int8.add_argument("--frames", type=Path, help="the folder of the annotation files' frames")
    int8.add_argument("--max-ap-loss", type=float, default=0.01,
                      help="write the int8 graph only when its held-out AP is at most this below fp32's (default "
                           "0.01)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.width is not None or args.height is not None:
        parser.error("--width/--height are gone: an exported graph serves frames of every size (it takes the "
                     "model's input size, input_width x input_height of its config); export without them")
    if args.output.suffix != ".onnx":
        parser.error(f"--output must end in .onnx (the node and the predictor tell a graph by it), got {args.output}")
    if args.int8 and (args.calibration is None or args.held_out is None):
        parser.error("--int8 needs --calibration (frames to calibrate on) and --held-out (videos to check its AP on)")
    if args.int8 and (args.fp16 or args.masks == "graph"):
        parser.error("--int8 writes a graph for CPUs (masks on the host, fp32 where not int8): drop --fp16 and "
                     "--masks graph")
    if args.calibration_frames < 1:
        parser.error(f"--calibration-frames must be at least 1, got {args.calibration_frames}")
    try:
        started = time.perf_counter()
        checkpoint = load_checkpoint(args.checkpoint)
        changes = {name: value for name, value in (("score_threshold", args.score_threshold),
                                                   ("nms_threshold", args.nms_threshold),
                                                   ("detections_per_frame", args.detections_per_frame))
                   if value is not None}
        config = dataclasses.replace(checkpoint.model_config, pretrained="none", **changes)
        model = SGNet(config)
        load_model_state(model, checkpoint, args.checkpoint)
        fold_batch_norms(model.eval().backbone)
        frames = check_frames(args.check_video, config.input_width, config.input_height)
        fp32_path = args.output.with_name(f".{args.output.stem}.fp32.onnx") if args.int8 else args.output
        with torch.no_grad():
            info = export_frame_graph(model, config, checkpoint.tracker_profiles, fp32_path, frames,
                                      fp16=args.fp16, checkpoint_sha256=file_sha256(args.checkpoint),
                                      host_masks=args.int8 or args.masks == "host")
        if args.int8:
            try:
                result = write_int8(fp32_path, info, args)
            finally:
                fp32_path.unlink(missing_ok=True)
    except (CheckpointError, ConfigError, ExportError) as error:
        print(f"sgnet-export: error: {error}", file=sys.stderr)
        return 2
    if args.int8:
        print(f"wrote {args.output}: int8 ({result.calibration}), held-out AP {result.int8_ap:.4f} against fp32's "
              f"{result.fp32_ap:.4f}; {config.backbone}, frames of every size; "
              f"{time.perf_counter() - started:.1f} s")
        return 0
    print(f"wrote {args.output}: {config.backbone}, frames of every size (network input {info.input_size[1]}x"
          f"{info.input_size[0]}), {info.precision}, {config.detections_per_frame} slots, score threshold "
          f"{config.score_threshold:g}, NMS {config.nms_threshold:g}, masks {info.masks}; checked against torch on "
          f"{len(frames)} frames; {time.perf_counter() - started:.1f} s")
    return 0


def write_int8(fp32_path: Path, info: GraphInfo, args: argparse.Namespace) -> Int8Result:
    """The fp32 graph at ``fp32_path`` quantized, checked on the held-out videos and written to ``args.output``;
    an ExportError naming the AP lost where it loses more than ``args.max_ap_loss``."""
    config = info.model_config  # calibrated on frames of the model's input size (the graph serves every size)
    streams = calibration_streams(args.calibration, args.frames, args.calibration_frames,
                                  (config.input_height, config.input_width))
    count = sum(len(stream) for stream in streams)
    progress(f"calibrating int8 on {count} frames of {args.calibration}")
    quantized = quantize_graph(fp32_path, list(calibration_feeds(fp32_path, info, streams)))
    int8_path = fp32_path.with_name(f".{args.output.stem}.int8-unchecked.onnx")
    write_atomically(int8_path, quantized.SerializeToString())
    try:  # the unchecked graph still says fp32: scored at OpenVINO's f32 hint, as precision int8 runs it
        progress(f"held-out AP of the fp32 graph on {args.held_out}")
        fp32_ap = held_out_ap(fp32_path, "fp32", args.held_out, args.frames)
        progress(f"held-out AP of the int8 graph on {args.held_out}")
        int8_ap = held_out_ap(int8_path, "fp32", args.held_out, args.frames)
    finally:
        int8_path.unlink(missing_ok=True)
    result = Int8Result(fp32_ap, int8_ap, f"{count} frames of {args.calibration.name}")
    if result.ap_loss > args.max_ap_loss:
        raise ExportError(f"the int8 graph's held-out AP {int8_ap:.4f} is {result.ap_loss:.4f} below fp32's "
                          f"{fp32_ap:.4f} (at most {args.max_ap_loss:g} allowed): {args.output} not written; "
                          f"calibrate on more or other frames, or keep the fp32 graph")
    mark_int8(quantized, result)
    write_atomically(args.output, quantized.SerializeToString())
    return result


if __name__ == "__main__":
    sys.exit(main())
