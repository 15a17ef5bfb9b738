"""int8 frame graphs for CPUs with VNNI or AMX: ``sgnet-export CKPT -o model.int8.onnx --int8 --calibration SRC
--held-out VAL.json --frames DIR`` (training/export.py) quantizes the exported fp32 graph after training.

NNCF's post-training quantization (OpenVINO's own quantizer), through its ONNX backend: the result is a QDQ
``.onnx`` (QuantizeLinear/DequantizeLinear pairs around the int8 weights and activations), which OpenVINO runs
with its int8 kernels and which keeps the frame graph's metadata, so that it is a checkpoint like any ``.onnx``.
Calibration runs the fp32 graph along each calibration stream in ONNX Runtime, so that the movement head is
calibrated on real previous towers, not zeros. Then both graphs run over the held-out videos in OpenVINO (the
int8 one at precision int8) and are scored as sgnet-eval scores them (video AP, the evaluation tracker profile);
the int8 graph is written only when its AP is at most ``max_ap_loss`` below fp32's.
"""
from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch

from sgnet_model.config import PredictorConfig
from sgnet_model.data.ytvis import YTVISError, load_annotations
from sgnet_model.runtime.export import INPUTS, LEVELS, ExportError, GraphInfo, require
from sgnet_model.runtime.frame import prepare_frame
from training.datasets import DatasetError, read_frame
from training.evaluate import predict_videos, score

CALIBRATION_FRAMES = 200  # NNCF's own default subset is 300; 120-300 frames calibrate a detector alike
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# How to quantize, by measurement (docs/export.md, int8; the suite's trained model, 200 calibration frames of its
# training set, held-out AP against the fp32 graph's 0.644): NNCF's default preset (symmetric activations) gave
# 0.627, refused; keeping the heads' last convolutions (classes, boxes, centre-ness) and the movement head in fp32
# as well gave the same 0.627, so the loss is not there; the mixed preset (asymmetric activations: the FPN, the
# towers and the base features are not ReLU outputs) gave 0.657 at the same speed. So the mixed preset, and nothing
# kept in fp32 beyond what NNCF leaves there itself (the post-processing: NMS, top-k, box decoding).
IGNORED_PATTERNS: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Int8Result:
    """What the quantization measured: the held-out AP of both graphs and where the calibration came from."""

    fp32_ap: float
    int8_ap: float
    calibration: str

    @property
    def ap_loss(self) -> float:
        return self.fp32_ap - self.int8_ap


def calibration_streams(source: Path, frames_dir: Path | None, count: int, frame_size: tuple[int, int]
                        ) -> list[list[np.ndarray]]:
    """About ``count`` frames (H, W, 3) uint8 RGB at ``frame_size`` (H, W), as streams of consecutive frames:
    from a YouTube-VIS annotation file (frames under ``frames_dir``, labelled or not: the first frames of every
    video, as many from each), or a folder of images and its subfolders (one stream in path order, evenly
    thinned: e.g. the frames sgnet-label drafts cut from the node's bags)."""
    height, width = frame_size
    if source.is_dir():
        paths = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise ExportError(f"--calibration {source}: a folder with no images ({', '.join(IMAGE_SUFFIXES)})")
        step = max(1, len(paths) // count)
        return [[_read_rgb(path, height, width) for path in paths[::step][:count]]]
    if frames_dir is None:
        raise ExportError(f"--calibration {source}: an annotation file needs --frames, the folder of its frames")
    annotations = _annotations(source, "--calibration")
    videos = list(annotations.videos.values())
    per_video = max(1, math.ceil(count / len(videos)))
    streams = []
    for video in videos:
        names = video.file_names[:min(per_video, count - sum(len(stream) for stream in streams))]
        if not names:
            break
        streams.append([cv2.resize(read_frame(frames_dir / name, video.height, video.width,
                                              f"calibration video {video.id}, frame {index}"), (width, height),
                                   interpolation=cv2.INTER_AREA) for index, name in enumerate(names)])
    return streams


def calibration_feeds(fp32_graph: Path, info: GraphInfo, streams: list[list[np.ndarray]]) -> Iterator[dict]:
    """The graph's inputs for each calibration frame, each stream's first frame a still one and every later one
    with the towers the fp32 graph (ONNX Runtime) made of the frame before."""
    onnxruntime = require("onnxruntime", "onnxruntime", "calibrating an int8 export")
    session = onnxruntime.InferenceSession(str(fp32_graph), providers=["CPUExecutionProvider"])
    zeros = [np.zeros(value.shape, np.float32) for value in session.get_inputs()[len(INPUTS) - LEVELS:]]
    for stream in streams:
        towers = None
        for frame in stream:
            image, _, valid_size = prepare_frame(frame, info.model_config, torch.device("cpu"), torch.float32,
                                                 channels_last=False)
            still = towers is None
            feeds = dict(zip(INPUTS, (image.numpy(), np.array(still), np.array([0.0 if still else 1 / 30], np.float32),
                                      np.array(valid_size, np.float32), *(zeros if still else towers))))
            yield feeds
            towers = session.run(None, feeds)[-LEVELS:]


def quantize_graph(fp32_graph: Path, feeds: list[dict], ignored_patterns: tuple[str, ...] = IGNORED_PATTERNS
                   ) -> object:
    """The fp32 frame graph quantized to int8 by NNCF on ``feeds``: an onnx.ModelProto with QDQ nodes and the
    fp32 graph's metadata (precision still fp32: mark_int8 sets it)."""
    onnx = require("onnx", "onnx", "an int8 export")
    nncf = require("nncf", "nncf", "an int8 export (sgnet-export --int8)")
    proto = onnx.load(str(fp32_graph))
    _constants_as_initializers(proto)
    _output_casts_as_identities(proto)
    ignored = nncf.IgnoredScope(patterns=list(ignored_patterns), validate=False) if ignored_patterns else None
    return nncf.quantize(proto, nncf.Dataset(feeds), preset=nncf.QuantizationPreset.MIXED, subset_size=len(feeds),
                         ignored_scope=ignored)


def mark_int8(proto: object, result: Int8Result) -> None:
    """The quantized graph's metadata: precision int8, the calibration source and both held-out APs."""
    metadata = {entry.key: entry for entry in proto.metadata_props}
    metadata["precision"].value = "int8"
    for key, value in (("calibration", result.calibration), ("held_out_ap_fp32", f"{result.fp32_ap:.4f}"),
                       ("held_out_ap_int8", f"{result.int8_ap:.4f}")):
        entry = metadata[key] if key in metadata else proto.metadata_props.add()
        entry.key, entry.value = key, value


def held_out_ap(graph: Path, precision: str, annotations_path: Path, frames_dir: Path) -> float:
    """Video AP of a frame graph on the held-out videos in OpenVINO, as sgnet-eval scores it (evaluation
    profile)."""
    from sgnet_model.predictor import PredictorError, StreamingPredictor

    annotations = _annotations(annotations_path, "--held-out")
    if not annotations.has_annotations:
        raise ExportError(f"--held-out {annotations_path} has no annotations to score the int8 graph against")
    try:
        predictor = StreamingPredictor.from_checkpoint(graph, PredictorConfig(backend="openvino", precision=precision),
                                                       profile="evaluation")
        results, _ = predict_videos(predictor, annotations, list(annotations.videos), frames_dir)
    except (PredictorError, DatasetError) as error:
        raise ExportError(str(error)) from None
    return float(score(annotations, results, list(annotations.videos))["AP"])


def progress(message: str) -> None:
    print(f"sgnet-export: {message}", file=sys.stderr, flush=True)


def _annotations(path: Path, option: str) -> object:
    try:
        annotations = load_annotations(path)
    except (YTVISError, OSError) as error:
        raise ExportError(f"{option} {path}: {error}") from None
    if not annotations.videos:
        raise ExportError(f"{option} {path}: no videos")
    return annotations


def _read_rgb(path: Path, height: int, width: int) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ExportError(f"--calibration: {path} is not an image OpenCV reads")
    return cv2.cvtColor(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


def _constants_as_initializers(proto: object) -> None:
    """NNCF's ONNX backend looks for weights among the initializers only (a Gather's table in a Constant node
    stops it): every tensor Constant node becomes an initializer."""
    nodes = []
    for node in proto.graph.node:
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            tensor = proto.graph.initializer.add()
            tensor.CopyFrom(node.attribute[0].t)
            tensor.name = node.output[0]
        else:
            nodes.append(node)
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)


def _output_casts_as_identities(proto: object) -> None:
    """NNCF removes Casts to the type they already have, and fails where one writes a graph output (``numbers``):
    those become Identity nodes first."""
    from onnx import shape_inference

    inferred = shape_inference.infer_shapes(proto)
    types = {value.name: value.type.tensor_type.elem_type for value in (*inferred.graph.value_info,
                                                                        *inferred.graph.input)}
    outputs = {value.name for value in proto.graph.output}
    for node in proto.graph.node:
        if node.op_type == "Cast" and node.output[0] in outputs and types.get(node.input[0]) == node.attribute[0].i:
            node.op_type = "Identity"
            del node.attribute[:]
