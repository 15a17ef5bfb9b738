"""The streaming predictor: the one seam between SG-Net and everything that feeds it frames (the ROS node,
the evaluator, the replay tool).

Per frame: resize to fit the model's input size (keeping the aspect), pad to a multiple of 32, one forward
pass, FCOS post-processing, masks at the frame's resolution, the movement of each instance from the cached
tower features of the previous processed frame and the real time since it, and the centre tracker.

Gaps: the tracks reset when the timestamps go back, or when the stream itself has a gap: a frame stamped more
than ``max_gap_s`` after the frame the source delivered before it (``received_before``; processed or not). A
model slower than ``max_gap_s`` that processes only some of the frames it receives therefore keeps its tracks;
the motion head and the tracker are told the real time since the previous processed frame.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch

from .backbone import fold_batch_norms
from .backends import (BackendError, FrameRunner, TensorRtFrame, check_precision, graph_precision, host_masks,
                       open_runner)
from .checkpoint import CheckpointError, load_checkpoint, load_model_state
from .config import TRACKER_PROFILES, ModelConfig, PredictorConfig, SGNetConfig, TrackerConfig
from .export import (THRESHOLDS, ExportError, GraphInfo, cached_frame_graph, check_stream, file_sha256,
                     read_graph_info)
from .frame import FixedFrame, GraphedFrame, prepare_frame
from .instances import FrameResult, TrackedInstance
from .model import PyramidOutputs, SGNet
from .postprocess import FrameTensors, frame_tensors
from .targets import Pyramid
from .tracker import CenterTracker


class PredictorError(RuntimeError):
    """The predictor cannot run as asked (a device that is not there, a frame it cannot take)."""


class StreamingPredictor:
    def __init__(self, model: SGNet | None, tracker_config: TrackerConfig = TrackerConfig(),
                 predictor_config: PredictorConfig = PredictorConfig(),
                 tracker_profiles: dict[str, TrackerConfig] | None = None, tracker_profile: str = "custom",
                 graph: tuple[Path, GraphInfo] | None = None, checkpoint_sha256: str = "") -> None:
        """``tracker_config`` is what the tracker runs; ``tracker_profiles`` ("robot", "evaluation") the profiles
        the model came with and ``tracker_profile`` which of them ``tracker_config`` is ("custom": neither).
        ``model`` None: a frame graph written by sgnet-export (``graph``: its path and metadata) runs alone.

        A backend other than torch runs a frame graph: the one given, or the model's, exported now for frames of
        the model's input size (or found in the cache, see export.cached_frame_graph); other frame sizes and
        thresholds get theirs when they first come."""
        self.device = resolve_device(predictor_config.device)
        backend = predictor_config.backend
        if model is None and backend == "torch":
            backend = "onnxruntime"  # a .onnx checkpoint asks for no backend: the one that runs it everywhere
            predictor_config = dataclasses.replace(predictor_config, backend=backend)
        self.precision = predictor_config.run_precision
        try:
            check_precision(backend, self.precision, self.device, predictor_config.openvino_device)
        except BackendError as error:
            raise PredictorError(str(error)) from None
        self.dtype = torch.float16 if backend == "torch" and self.precision == "fp16" else torch.float32
        self.predictor_config = predictor_config
        self.model_config: ModelConfig = model.config if model is not None else graph[1].model_config
        self.tracker = CenterTracker(tracker_config)
        self.tracker_profiles = dict(tracker_profiles or {})
        self.tracker_profile = tracker_profile
        self._graph = graph
        self._checkpoint_sha256 = checkpoint_sha256
        self.model = model
        if model is not None:
            # The predictor owns the model from here: BatchNorms folded into the convolutions, channels-last
            # memory (oneDNN and cuDNN run NHWC convolutions faster), inference mode. A backend that exports keeps
            # it on the CPU in float32, where it is traced.
            model = model.eval()
            fold_batch_norms(model.backbone)
            exports = backend != "torch"
            self.model = model.to(torch.device("cpu") if exports else self.device,
                                  torch.float32 if exports else self.dtype, memory_format=torch.channels_last)
        self.backend_description = f"torch {self.device} {self.precision}"
        self._previous_towers: list[torch.Tensor] | None = None
        self._runners: dict[tuple, FixedFrame | FrameRunner | TensorRtFrame] = {}
        self._previous_runner: FixedFrame | FrameRunner | TensorRtFrame | None = None
        self._pyramids: dict[tuple[int, int], Pyramid] = {}
        self._previous_timestamp: float | None = None
        self.prepare()

    def prepare(self) -> None:
        """Build now (at configure, not on the first frame) what a backend other than torch runs for frames of the
        expected size (a given graph's, else the model's input size) at the current thresholds: an export or the
        cache's, and the runtime's session. A given graph that cannot serve the current thresholds is a
        PredictorError saying so."""
        if self.predictor_config.backend == "torch":
            return
        height, width = self._graph[1].frame_size if self._graph else (self.model_config.input_height,
                                                                       self.model_config.input_width)
        self._runner(*self._prepare(np.zeros((height, width, 3), np.uint8)), (height, width))

    @classmethod
    def from_checkpoint(cls, path: str | Path, predictor_config: PredictorConfig = PredictorConfig(),
                        tracker_config: TrackerConfig | None = None, profile: str = "robot") -> "StreamingPredictor":
        """A trained model from a checkpoint file (errors name the file and what is wrong with it), or a frame
        graph written by sgnet-export (a ``.onnx`` file: backend onnxruntime unless another is asked for). The
        tracker runs the checkpoint's ``profile`` ("robot": few, confident tracks; "evaluation": low scores, as
        video AP rewards), or ``tracker_config`` when given (profile "custom")."""
        if profile not in TRACKER_PROFILES:
            raise PredictorError(f"tracker profile {profile!r} is not one of {list(TRACKER_PROFILES)}")
        path = Path(path)
        if path.suffix == ".onnx":
            try:
                info = read_graph_info(path)
            except ExportError as error:
                raise CheckpointError(str(error)) from None
            model, graph, profiles, digest = None, (path, info), info.tracker_profiles, info.checkpoint_sha256
        else:
            checkpoint = load_checkpoint(path)
            model = SGNet(dataclasses.replace(checkpoint.model_config, pretrained="none"))
            load_model_state(model, checkpoint, path)
            graph, profiles = None, checkpoint.tracker_profiles
            digest = file_sha256(path) if predictor_config.backend != "torch" else ""
        if tracker_config is None:
            return cls(model, profiles[profile], predictor_config, profiles, profile, graph, digest)
        return cls(model, tracker_config, predictor_config, profiles, "custom", graph, digest)

    @classmethod
    def from_config(cls, config: SGNetConfig, predictor_config: PredictorConfig = PredictorConfig(),
                    profile: str = "robot") -> "StreamingPredictor":
        """Random weights (or the torchvision weights the config names): smoke tests and benchmarks only."""
        profiles = config.tracker_profiles()
        if profile not in profiles:
            raise PredictorError(f"tracker profile {profile!r} is not one of {list(profiles)}")
        return cls(SGNet(config.model), profiles[profile], predictor_config, profiles, profile)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.model_config.class_names

    def update_thresholds(self, score_threshold: float | None = None, nms_threshold: float | None = None,
                          detections_per_frame: int | None = None) -> None:
        """Change inference thresholds at run time (validated as the config fields are)."""
        changes = {k: v for k, v in (("score_threshold", score_threshold), ("nms_threshold", nms_threshold),
                                     ("detections_per_frame", detections_per_frame)) if v is not None}
        self.model_config = dataclasses.replace(self.model_config, **changes)

    def reset(self) -> None:
        """Forget tracks and the cached previous frame (a new video, a restarted bag)."""
        self.tracker.reset()
        self._previous_towers = None
        self._previous_runner = None
        self._previous_timestamp = None

    @torch.inference_mode()
    def step(self, image: np.ndarray, timestamp: float, received_before: float | None = None) -> FrameResult:
        """image: (H, W, 3) uint8 RGB; timestamp in seconds; received_before: the stamp of the newest frame the
        source delivered before this one, processed or not (None: the previous processed frame's).

        Tracks reset first when the timestamp goes back (before the previous processed frame's, or before
        ``received_before``) or lies more than ``max_gap_s`` after ``received_before``."""
        check_frame(image)
        if not math.isfinite(timestamp) or (received_before is not None and not math.isfinite(received_before)):
            raise PredictorError(f"timestamps must be finite, got {timestamp} (received_before {received_before})")
        started = time.perf_counter()
        previous = self._previous_timestamp
        before = previous if received_before is None else received_before
        reset = previous is None or timestamp < previous or timestamp < before or (
            timestamp - before > self.predictor_config.max_gap_s)
        if reset:
            self.reset()
        elapsed = 0.0 if reset else timestamp - previous  # since the frame whose towers are cached
        self._previous_timestamp = timestamp
        height, width = image.shape[:2]
        batch, scale, valid_size = self._prepare(image)
        frame = self._frame_tensors(batch, scale, valid_size, (height, width), elapsed)
        numbers, masks_np = self._to_host(frame)
        boxes, motion_np, scores = numbers[:, :4], numbers[:, 4:6], numbers[:, 6]
        labels = numbers[:, 7].astype(np.int64)
        track_ids = self.tracker.update(boxes, scores, labels, motion_np, timestamp)
        instances = [
            TrackedInstance(track_id=int(track_ids[i]), class_id=int(labels[i]),
                            class_name=self.class_names[int(labels[i])], score=float(scores[i]), box=boxes[i],
                            mask=masks_np[i], centre=(boxes[i, :2] + boxes[i, 2:]) / 2, motion=motion_np[i])
            for i in np.flatnonzero(track_ids > 0)
        ]
        return FrameResult(timestamp=timestamp, instances=instances,
                           inference_ms=(time.perf_counter() - started) * 1000.0, tracks_reset=reset)

    @staticmethod
    def _to_host(frame: FrameTensors) -> tuple[np.ndarray, np.ndarray]:
        """The valid instances' numbers (N, 9) and masks (N, H, W) as numpy arrays.

        From a GPU: the numbers first (a few hundred bytes), then the masks of the valid slots only (the
        fixed-shape path pads to detections_per_frame, and masks are the biggest output by far), each through
        page-locked memory (torch's caching host allocator reuses the blocks once the arrays are gone): a copy
        into pageable memory runs at a fraction of the bus speed."""
        if frame.masks.device.type != "cuda":
            numbers = frame.numbers.numpy()
            count = int(numbers[:, 8].sum())  # the valid slots come first
            return numbers[:count], frame.masks[:count].numpy()

        def fetch(tensor: torch.Tensor) -> np.ndarray:
            host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
            host.copy_(tensor, non_blocking=True)
            torch.cuda.current_stream(tensor.device).synchronize()
            return host.numpy()

        numbers = fetch(frame.numbers)
        count = int(numbers[:, 8].sum())
        return numbers[:count], fetch(frame.masks[:count])

    def _frame_tensors(self, batch: torch.Tensor, scale: float, valid_size: tuple[int, int],
                       output_size: tuple[int, int], elapsed: float) -> FrameTensors:
        """Network and post-processing: with fixed shapes from a runner (another backend's frame graph, or a
        CUDA graph replay on CUDA; one per frame shape and thresholds), else eagerly in torch with data-dependent
        shapes (less work on a CPU). ``elapsed``: seconds since the previous processed frame, whose towers are
        cached."""
        if self.predictor_config.backend != "torch" or (self.device.type == "cuda"
                                                         and self.predictor_config.cuda_graphs):
            runner = self._runner(batch, scale, valid_size, output_size)
            # the first frame, after a reset or a change of shape: no movement information, a still scene
            still = self._previous_runner is not runner
            frame = runner(batch, still=still, elapsed=0.0 if still else elapsed)
            self._previous_runner = runner
            return frame
        with torch.autocast("cpu", torch.bfloat16, enabled=self.precision == "bf16"):
            outputs = self.model.pyramid_outputs(batch)
        if self.precision == "bf16":  # the network in bf16; boxes, masks and movement from float32 outputs
            outputs = dataclasses.replace(outputs, **{
                field.name: [t.float() for t in value] if isinstance(value, list) else value.float()
                for field in dataclasses.fields(outputs) if isinstance(value := getattr(outputs, field.name),
                                                                        (list, torch.Tensor))})
        towers = outputs.regression_towers
        if self._previous_towers is None or self._previous_towers[0].shape != towers[0].shape:
            self._previous_towers = towers  # first frame: no movement information, the head sees a still scene
            elapsed = 0.0
        elapsed_s = torch.full((1,), elapsed, device=self.device)
        frame = frame_tensors(self.model, self.model_config, outputs, self._pyramid(outputs), self._previous_towers,
                              elapsed_s, scale, valid_size, output_size, fixed=False)
        self._previous_towers = towers
        return frame

    def _runner(self, batch: torch.Tensor, scale: float, valid_size: tuple[int, int], output_size: tuple[int, int]
                ) -> FixedFrame | FrameRunner | TensorRtFrame:
        """The fixed-shape runner for this frame shape and these thresholds, built on first use: a CUDA graph
        (backend torch), or the backend's runtime on a frame graph (the one given, or exported now)."""
        config = self.model_config
        key = (tuple(batch.shape), scale, valid_size, output_size, *(getattr(config, name) for name in THRESHOLDS))
        if key in self._runners:
            return self._runners[key]
        if self.predictor_config.backend == "torch":
            runner = GraphedFrame(self.model, config, batch, scale, valid_size, output_size)
        else:
            try:
                path, info = self._frame_graph(output_size)
                runner = open_runner(path, info, self.predictor_config, self.device)
            except (ExportError, BackendError) as error:
                raise PredictorError(str(error)) from None
            self.backend_description = runner.description
        self._runners[key] = runner
        return runner

    def _frame_graph(self, frame_size: tuple[int, int]) -> tuple[Path, GraphInfo]:
        """The frame graph for frames of ``frame_size`` (H, W) at the current thresholds: the one given (when it
        fits), or the model's from the export cache."""
        if self.model is None:
            path, info = self._graph
            mismatch = info.mismatch(self.model_config, frame_size)
            if mismatch:
                raise ExportError(f"{path} cannot serve {mismatch}: its frame size and thresholds are fixed at export; "
                                  f"export the checkpoint again with sgnet-export --width {frame_size[1]} --height "
                                  f"{frame_size[0]} (thresholds from the checkpoint's config or --set)")
            return path, info
        backend = self.predictor_config.backend
        fp16 = graph_precision(backend, self.precision) == "fp16"
        return cached_frame_graph(self.model, self.model_config, self.tracker_profiles, frame_size, fp16,
                                  host_masks(backend, self.device), check_stream(*frame_size), self._checkpoint_sha256)

    def _pyramid(self, outputs: PyramidOutputs) -> Pyramid:
        """The pyramid's locations for this input shape (built once per shape)."""
        if outputs.image_size not in self._pyramids:
            self._pyramids[outputs.image_size] = outputs.pyramid()
        return self._pyramids[outputs.image_size]

    def _prepare(self, image: np.ndarray) -> tuple[torch.Tensor, float, tuple[int, int]]:
        return prepare_frame(image, self.model_config, self.device, self.dtype)


def check_frame(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise PredictorError(f"a frame must be an (H, W, 3) uint8 RGB array, got "
                             f"{getattr(image, 'shape', None)} {getattr(image, 'dtype', type(image).__name__)}")
    if image.shape[0] < 8 or image.shape[1] < 8:
        raise PredictorError(f"frame of {image.shape[1]}x{image.shape[0]} pixels is too small (at least 8x8)")


def resolve_device(name: str) -> torch.device:
    """torch.device for 'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA where torch sees a GPU, else the CPU), with a clear
    error when that GPU is not there."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise PredictorError(f"device {name!r} asked for, but CUDA is not available on this machine "
                                 f"(torch {torch.__version__}); use device 'cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise PredictorError(f"device {name!r} asked for, but this machine has "
                                 f"{torch.cuda.device_count()} CUDA device(s)")
    return device
