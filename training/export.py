"""``sgnet-export CHECKPOINT -o model.onnx``: a trained checkpoint as one ONNX graph of a frame's fixed-shape work
(network, detection slots with NMS, the masks' blending, movement; sgnet_model/runtime/export.py), for the
predictor's onnxruntime, openvino and tensorrt backends, serving cameras of every frame size.

The graph takes the network's input size (the model config's input_width x input_height): sgnet_ros resizes each
frame into it keeping its aspect and brings boxes and masks back to the frame's own size. The thresholds (the
checkpoint's, or ``--score-threshold``, ``--nms-threshold``, ``--detections-per-frame``) are fixed in the graph.
Before it is written, the graph passes ``onnx.checker`` and gives torch's instances (boxes within 0.5 px, scores
within 1e-3, mask IoU 0.99) on the frames of ``--check-video`` or, without one, on a generated video of moving
shapes, each at the network's input size and turned portrait (another aspect).

Exit status 2 with one line on stderr for unusable input (a checkpoint that does not load, a video that does not
read, a graph that does not match torch).
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
from sgnet_model.runtime.export import ExportError, export_frame_graph, file_sha256
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
    parser.add_argument("--masks", choices=("graph", "host"), default="graph",
                        help="graph (default): the graph blends every slot's mask, for any runtime (TensorRT, "
                             "GPUs); host: it stops before and sgnet_ros blends the valid slots' (faster on a CPU); "
                             "sgnet_ros pastes them at each frame's size either way")
    parser.add_argument("--score-threshold", type=float, help="default: the checkpoint's")
    parser.add_argument("--nms-threshold", type=float, help="default: the checkpoint's")
    parser.add_argument("--detections-per-frame", type=int, help="slots per frame (default: the checkpoint's)")
    parser.add_argument("--check-video", type=Path, help="a video whose first frames check the graph against torch "
                                                         "(default: a generated video of moving shapes)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.width is not None or args.height is not None:
        parser.error("--width/--height are gone: an exported graph serves frames of every size (it takes the "
                     "model's input size, input_width x input_height of its config); export without them")
    if args.output.suffix != ".onnx":
        parser.error(f"--output must end in .onnx (the node and the predictor tell a graph by it), got {args.output}")
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
        with torch.no_grad():
            info = export_frame_graph(model, config, checkpoint.tracker_profiles, args.output, frames,
                                      fp16=args.fp16, checkpoint_sha256=file_sha256(args.checkpoint),
                                      host_masks=args.masks == "host")
    except (CheckpointError, ConfigError, ExportError) as error:
        print(f"sgnet-export: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {config.backbone}, frames of every size (network input {info.input_size[1]}x"
          f"{info.input_size[0]}), {info.precision}, {config.detections_per_frame} slots, score threshold "
          f"{config.score_threshold:g}, NMS {config.nms_threshold:g}, masks {info.masks}; checked against torch on "
          f"{len(frames)} frames; {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
