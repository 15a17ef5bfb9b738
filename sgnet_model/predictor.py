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
import torch.nn.functional as F

from .backbone import fold_batch_norms
from .checkpoint import load_checkpoint, load_model_state
from .config import TRACKER_PROFILES, ModelConfig, PredictorConfig, SGNetConfig, TrackerConfig
from .instances import FrameResult, TrackedInstance
from .model import PyramidOutputs, SGNet
from .postprocess import FrameTensors, frame_tensors
from .targets import Pyramid
from .tracker import CenterTracker

SIZE_DIVISOR = 32  # P7 has stride 128, but torchvision's FCOS pads to 32 as well; extra rows just stay empty


class PredictorError(RuntimeError):
    """The predictor cannot run as asked (a device that is not there, a frame it cannot take)."""


class StreamingPredictor:
    def __init__(self, model: SGNet, tracker_config: TrackerConfig = TrackerConfig(),
                 predictor_config: PredictorConfig = PredictorConfig(),
                 tracker_profiles: dict[str, TrackerConfig] | None = None, tracker_profile: str = "custom") -> None:
        """``tracker_config`` is what the tracker runs; ``tracker_profiles`` ("robot", "evaluation") the profiles
        the model came with and ``tracker_profile`` which of them ``tracker_config`` is ("custom": neither)."""
        self.device = resolve_device(predictor_config.device)
        if predictor_config.fp16 and self.device.type != "cuda":
            raise PredictorError("fp16 runs on CUDA only; set fp16 to false on the CPU")
        self.dtype = torch.float16 if predictor_config.fp16 else torch.float32
        # The predictor owns the model from here: BatchNorms folded into the convolutions, channels-last
        # memory (oneDNN and cuDNN run NHWC convolutions faster), inference mode.
        model = model.eval()
        fold_batch_norms(model.backbone)
        self.model = model.to(self.device, self.dtype, memory_format=torch.channels_last)
        self.model_config: ModelConfig = model.config
        self.predictor_config = predictor_config
        self.tracker = CenterTracker(tracker_config)
        self.tracker_profiles = dict(tracker_profiles or {})
        self.tracker_profile = tracker_profile
        self._previous_towers: list[torch.Tensor] | None = None
        self._graphs: dict[tuple, GraphedFrame] = {}
        self._previous_graph: GraphedFrame | None = None
        self._pyramids: dict[tuple[int, int], Pyramid] = {}
        self._previous_timestamp: float | None = None

    @classmethod
    def from_checkpoint(cls, path: str | Path, predictor_config: PredictorConfig = PredictorConfig(),
                        tracker_config: TrackerConfig | None = None, profile: str = "robot") -> "StreamingPredictor":
        """A trained model from a checkpoint file (errors name the file and what is wrong with it). The tracker
        runs the checkpoint's ``profile`` ("robot": few, confident tracks; "evaluation": low scores, as video AP
        rewards), or ``tracker_config`` when given (profile "custom")."""
        if profile not in TRACKER_PROFILES:
            raise PredictorError(f"tracker profile {profile!r} is not one of {list(TRACKER_PROFILES)}")
        checkpoint = load_checkpoint(path)
        model = SGNet(dataclasses.replace(checkpoint.model_config, pretrained="none"))
        load_model_state(model, checkpoint, path)
        profiles = checkpoint.tracker_profiles
        if tracker_config is None:
            return cls(model, profiles[profile], predictor_config, profiles, profile)
        return cls(model, tracker_config, predictor_config, profiles, "custom")

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
        self._previous_graph = None
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
        """Network and post-processing on the device: replayed from a CUDA graph on CUDA (fixed shapes, one graph
        per frame shape and thresholds), else eagerly with data-dependent shapes (less work on a CPU). ``elapsed``:
        seconds since the previous processed frame, whose towers are cached."""
        config = self.model_config
        if self.device.type == "cuda" and self.predictor_config.cuda_graphs:
            key = (tuple(batch.shape), scale, valid_size, output_size, config.score_threshold, config.nms_threshold,
                   config.detections_per_frame, config.candidates_per_level)
            if key not in self._graphs:
                self._graphs[key] = GraphedFrame(self.model, config, batch, scale, valid_size, output_size)
            graph = self._graphs[key]
            # the first frame, after a reset or a change of shape: no movement information, a still scene
            still = self._previous_graph is not graph
            frame = graph(batch, still=still, elapsed=0.0 if still else elapsed)
            self._previous_graph = graph
            return frame
        outputs = self.model.pyramid_outputs(batch)
        towers = outputs.regression_towers
        if self._previous_towers is None or self._previous_towers[0].shape != towers[0].shape:
            self._previous_towers = towers  # first frame: no movement information, the head sees a still scene
            elapsed = 0.0
        elapsed_s = torch.full((1,), elapsed, device=self.device)
        frame = frame_tensors(self.model, config, outputs, self._pyramid(outputs), self._previous_towers, elapsed_s,
                              scale, valid_size, output_size, fixed=False)
        self._previous_towers = towers
        return frame

    def _pyramid(self, outputs: PyramidOutputs) -> Pyramid:
        """The pyramid's locations for this input shape (built once per shape)."""
        if outputs.image_size not in self._pyramids:
            self._pyramids[outputs.image_size] = outputs.pyramid()
        return self._pyramids[outputs.image_size]

    def _prepare(self, image: np.ndarray) -> tuple[torch.Tensor, float, tuple[int, int]]:
        """Resize to fit the input size keeping the aspect, pad to a multiple of 32: (1, 3, H, W), the scale
        from frame to network pixels, and the valid (unpadded) size."""
        height, width = image.shape[:2]
        scale = min(self.model_config.input_width / width, self.model_config.input_height / height)
        resized = (max(1, round(height * scale)), max(1, round(width * scale)))
        frame = torch.from_numpy(np.ascontiguousarray(image)).to(self.device).permute(2, 0, 1)[None]
        frame = frame.to(self.dtype)
        if resized != (height, width):
            frame = F.interpolate(frame, size=resized, mode="bilinear", align_corners=False)
        padded = [math.ceil(side / SIZE_DIVISOR) * SIZE_DIVISOR for side in resized]
        frame = F.pad(frame, (0, padded[1] - resized[1], 0, padded[0] - resized[0]))
        return frame.contiguous(memory_format=torch.channels_last), scale, resized


def check_frame(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise PredictorError(f"a frame must be an (H, W, 3) uint8 RGB array, got "
                             f"{getattr(image, 'shape', None)} {getattr(image, 'dtype', type(image).__name__)}")
    if image.shape[0] < 8 or image.shape[1] < 8:
        raise PredictorError(f"frame of {image.shape[1]}x{image.shape[0]} pixels is too small (at least 8x8)")


def resolve_device(name: str) -> torch.device:
    """torch.device for 'cpu', 'cuda' or 'cuda:N', with a clear error when that GPU is not there."""
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise PredictorError(f"device {name!r} asked for, but CUDA is not available on this machine "
                                 f"(torch {torch.__version__}); use device 'cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise PredictorError(f"device {name!r} asked for, but this machine has "
                                 f"{torch.cuda.device_count()} CUDA device(s)")
    return device


class FixedFrame:
    """The network and the fixed-shape post-processing (postprocess.frame_tensors) for one input shape, frame
    size and set of thresholds, with the previous frame's regression towers kept in its own buffers for the
    movement head; ``still`` makes the head see this frame twice instead (first frame, reset, new shape).
    Runs eagerly on any device; GraphedFrame replays it from a CUDA graph."""

    def __init__(self, model: SGNet, config: ModelConfig, example: torch.Tensor, scale: float,
                 valid_size: tuple[int, int], output_size: tuple[int, int]) -> None:
        self.model, self.config = model, config
        self.scale, self.valid_size, self.output_size = scale, valid_size, output_size
        self.input = example.clone()
        self.still = torch.ones((), dtype=torch.bool, device=example.device)
        self.elapsed_s = torch.zeros(1, device=example.device)  # seconds since the previous frame
        eager = model.pyramid_outputs(self.input)
        self.pyramid = eager.pyramid()  # built here, outside any capture (it copies constants from the host)
        self.previous = [torch.zeros_like(t) for t in eager.regression_towers]

    def run(self) -> FrameTensors:
        outputs = self.model.pyramid_outputs(self.input)
        towers = outputs.regression_towers
        previous = [torch.where(self.still, now, before) for now, before in zip(towers, self.previous)]
        frame = frame_tensors(self.model, self.config, outputs, self.pyramid, previous, self.elapsed_s, self.scale,
                              self.valid_size, self.output_size, fixed=True)
        for before, now in zip(self.previous, towers):
            before.copy_(now)
        return frame

    def __call__(self, images: torch.Tensor, still: bool, elapsed: float = 0.0) -> FrameTensors:
        self.input.copy_(images)
        self.still.fill_(still)
        self.elapsed_s.fill_(elapsed)
        return self.run()


class GraphedFrame(FixedFrame):
    """FixedFrame captured once in a CUDA graph and replayed per frame.

    A ResNet-FPN forward launches hundreds of small kernels, and post-processing as many again; on a fast GPU
    launching them costs more than running them, and a post-processing whose shapes depend on the data makes
    the host wait for the device several times a frame. The replay runs all of it without the host and writes
    into the same output tensors each time.
    """

    def __init__(self, model: SGNet, config: ModelConfig, example: torch.Tensor, scale: float,
                 valid_size: tuple[int, int], output_size: tuple[int, int]) -> None:
        super().__init__(model, config, example, scale, valid_size, output_size)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the graph (cuDNN picks its algorithms here)
            for _ in range(2):
                self.run()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = self.run()

    def __call__(self, images: torch.Tensor, still: bool, elapsed: float = 0.0) -> FrameTensors:
        self.input.copy_(images)
        self.still.fill_(still)
        self.elapsed_s.fill_(elapsed)
        self.graph.replay()
        return self.output
