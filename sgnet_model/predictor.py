"""The streaming predictor: the one seam between SG-Net and everything that feeds it frames (the ROS node,
the evaluator, the replay tool).

Per frame: resize to fit the model's input size (keeping the aspect), pad to a multiple of 32, one forward
pass, FCOS post-processing, masks at the frame's resolution, the movement of each instance from the cached
tower features of the previous processed frame and the real time since it, and the centre tracker.

Gaps: the tracks reset when the timestamps go back, or when the stream itself has a gap: a frame stamped more
than ``max_gap_s`` after the frame the source delivered before it (``received_before``; processed or not). A
model slower than ``max_gap_s`` that processes only some of the frames it receives therefore keeps its tracks;
the motion head and the tracker are told the real time since the previous processed frame.

Cameras: one predictor serves several streams with one model in memory. Each stream (a camera) has its own
``StreamState``: tracker, cached previous towers, previous timestamp and gap logic, so a camera's IDs, gaps and
resets never depend on another camera's frames. ``step_batch`` runs the frames of several cameras that have the
same size through the network in one batch and post-processes each with its own stream's state; ``step`` is its
one-frame case.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
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
DEFAULT_STREAM = ""  # the stream of step() calls that name no camera


class PredictorError(RuntimeError):
    """The predictor cannot run as asked (a device that is not there, a frame it cannot take)."""


@dataclasses.dataclass
class StreamFrame:
    """One camera's frame for ``step_batch``: image (H, W, 3) uint8 RGB, its stamp in seconds, and the stamp of
    the newest frame that camera delivered before it, processed or not (None: its previous processed frame's)."""

    camera: str
    image: np.ndarray
    timestamp: float
    received_before: float | None = None


class StreamState:
    """One stream's (one camera's) state: its tracker, the previous processed frame's regression towers (what the
    motion head compares against) and timestamp, and the gap rule that resets them."""

    def __init__(self, tracker_config: TrackerConfig) -> None:
        self.tracker = CenterTracker(tracker_config)
        self.towers: list[torch.Tensor] | None = None  # per level (1, C, h, w)
        self.timestamp: float | None = None

    def reset(self) -> None:
        """Forget the tracks and the cached previous frame (the tracker's ID counter goes on)."""
        self.tracker.reset()
        self.towers = None
        self.timestamp = None

    def advance(self, timestamp: float, received_before: float | None, max_gap_s: float) -> tuple[bool, float]:
        """Take the next frame's stamp: whether the stream reset first (first frame, stamps going back, a gap of
        more than ``max_gap_s`` after ``received_before``) and the seconds since the previous processed frame."""
        previous = self.timestamp
        before = previous if received_before is None else received_before
        reset = previous is None or timestamp < previous or timestamp < before or timestamp - before > max_gap_s
        if reset:
            self.reset()
        self.timestamp = timestamp
        return reset, 0.0 if reset else timestamp - previous

    def previous_towers(self, towers: list[torch.Tensor]) -> list[torch.Tensor] | None:
        """The cached towers when they can be compared with ``towers`` (the same shapes), else None (the head then
        sees a still scene)."""
        if self.towers is None or self.towers[0].shape[1:] != towers[0].shape[1:]:
            return None
        return self.towers


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
        self._tracker_config = tracker_config
        self.tracker_profiles = dict(tracker_profiles or {})
        self.tracker_profile = tracker_profile
        self.streams: dict[str, StreamState] = {}
        self._graphs: dict[tuple, GraphedFrame] = {}
        self._pyramids: dict[tuple[int, int], Pyramid] = {}

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

    @property
    def tracker_config(self) -> TrackerConfig:
        """What every stream's tracker runs; setting it changes all of them."""
        return self._tracker_config

    @tracker_config.setter
    def tracker_config(self, config: TrackerConfig) -> None:
        self._tracker_config = config
        for stream in self.streams.values():
            stream.tracker.config = config

    @property
    def tracker(self) -> CenterTracker:
        """The tracker of the default stream (``step`` without a camera)."""
        return self.stream(DEFAULT_STREAM).tracker

    def stream(self, camera: str) -> StreamState:
        """The state of ``camera``'s stream, created empty on its first frame."""
        if camera not in self.streams:
            self.streams[camera] = StreamState(self._tracker_config)
        return self.streams[camera]

    def reset(self, camera: str | None = None) -> None:
        """Forget tracks and the cached previous frame (a new video, a restarted bag) of one camera's stream, or of
        every stream when ``camera`` is None."""
        for name, stream in self.streams.items():
            if camera is None or name == camera:
                stream.reset()

    def step(self, image: np.ndarray, timestamp: float, received_before: float | None = None,
             camera: str = DEFAULT_STREAM) -> FrameResult:
        """image: (H, W, 3) uint8 RGB; timestamp in seconds; received_before: the stamp of the newest frame the
        source delivered before this one, processed or not (None: the previous processed frame's).

        Tracks reset first when the timestamp goes back (before the previous processed frame's, or before
        ``received_before``) or lies more than ``max_gap_s`` after ``received_before``. ``camera`` names the
        stream whose tracks and previous frame this frame continues."""
        return self.step_batch([StreamFrame(camera, image, timestamp, received_before)])[0]

    @torch.inference_mode()
    def step_batch(self, frames: Sequence[StreamFrame]) -> list[FrameResult]:
        """One frame from each of several cameras (at most one per camera), in order of the results. Frames of the
        same size go through the network in one batch; each is then post-processed and tracked with its own
        camera's stream state, as ``step`` would. A result's ``inference_ms`` is the time from the call until its
        batch was done (what the frame waited)."""
        cameras = [frame.camera for frame in frames]
        if len(set(cameras)) != len(cameras):
            raise PredictorError(f"step_batch takes at most one frame per camera, got cameras {cameras}")
        for frame in frames:
            check_frame(frame.image)
            if not math.isfinite(frame.timestamp) or (
                    frame.received_before is not None and not math.isfinite(frame.received_before)):
                raise PredictorError(f"timestamps must be finite, got {frame.timestamp} (received_before "
                                     f"{frame.received_before}) for camera {frame.camera!r}")
        started = time.perf_counter()
        steps = [(frame, *self.stream(frame.camera).advance(frame.timestamp, frame.received_before,
                                                              self.predictor_config.max_gap_s))
                 for frame in frames]
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, frame in enumerate(frames):
            by_size.setdefault(frame.image.shape[:2], []).append(index)
        results: list[FrameResult | None] = [None] * len(frames)
        for indices in by_size.values():  # one network pass per frame size
            group = [steps[i] for i in indices]
            prepared = [self._prepare(frame.image) for frame, _, _ in group]
            batch = torch.cat([images for images, _, _ in prepared])  # (B, 3, H, W)
            _, scale, valid_size = prepared[0]
            streams = [self.stream(frame.camera) for frame, _, _ in group]
            tensors = self._frame_tensors(batch, scale, valid_size, group[0][0].image.shape[:2], streams,
                                          [elapsed for _, _, elapsed in group])
            for i, (frame, reset, _), stream, frame_tensors_ in zip(indices, group, streams, tensors):
                instances = self._track(stream, frame_tensors_, frame.timestamp)
                results[i] = FrameResult(timestamp=frame.timestamp, instances=instances,
                                         inference_ms=(time.perf_counter() - started) * 1000.0, tracks_reset=reset)
        return results

    def _track(self, stream: StreamState, frame: FrameTensors, timestamp: float) -> list[TrackedInstance]:
        """One frame's instances from the device, tracked by its stream's tracker."""
        numbers, masks_np = self._to_host(frame)
        boxes, motion_np, scores = numbers[:, :4], numbers[:, 4:6], numbers[:, 6]
        labels = numbers[:, 7].astype(np.int64)
        track_ids = stream.tracker.update(boxes, scores, labels, motion_np, timestamp)
        return [
            TrackedInstance(track_id=int(track_ids[i]), class_id=int(labels[i]),
                            class_name=self.class_names[int(labels[i])], score=float(scores[i]), box=boxes[i],
                            mask=masks_np[i], centre=(boxes[i, :2] + boxes[i, 2:]) / 2, motion=motion_np[i])
            for i in np.flatnonzero(track_ids > 0)
        ]

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
                       output_size: tuple[int, int], streams: list[StreamState], elapsed: list[float]
                       ) -> list[FrameTensors]:
        """Network and post-processing on the device for a batch (B, 3, H, W) of frames of one size, image i of
        ``streams[i]``, ``elapsed[i]`` seconds after that stream's previous processed frame (whose towers it has
        cached). Replayed from a CUDA graph on CUDA (fixed shapes, one graph per batch size, frame shape and
        thresholds), else eagerly with data-dependent shapes (less work on a CPU)."""
        config = self.model_config
        if self.device.type == "cuda" and self.predictor_config.cuda_graphs:
            key = (tuple(batch.shape), scale, valid_size, output_size, config.score_threshold, config.nms_threshold,
                   config.detections_per_frame, config.candidates_per_level)
            if key not in self._graphs:
                self._graphs[key] = GraphedFrame(self.model, config, batch, scale, valid_size, output_size)
            graph = self._graphs[key]
            # each stream's cached towers into its slot; a stream with none (first frame, reset, new shape) makes
            # the head see a still scene
            still = []
            for slot, stream in enumerate(streams):
                previous = stream.previous_towers(graph.previous)
                still.append(previous is None)
                for buffer, tower in zip(graph.previous, previous or ()):
                    buffer[slot:slot + 1].copy_(tower)
            frames = graph(batch, still=still, elapsed=[0.0 if s else e for s, e in zip(still, elapsed)])
            for slot, stream in enumerate(streams):  # the run left this batch's towers in graph.previous
                stream.towers = [buffer[slot:slot + 1].clone() for buffer in graph.previous]
            return frames
        outputs = self.model.pyramid_outputs(batch)
        pyramid = self._pyramid(outputs)
        frames = []
        for image, (stream, seconds) in enumerate(zip(streams, elapsed)):
            one = image_outputs(outputs, image)
            towers = one.regression_towers
            previous = stream.previous_towers(towers)
            elapsed_s = torch.full((1,), 0.0 if previous is None else seconds, device=self.device)
            frames.append(frame_tensors(self.model, config, one, pyramid, previous or towers, elapsed_s, scale,
                                        valid_size, output_size, fixed=False))
            stream.towers = towers
        return frames

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


def image_outputs(outputs: PyramidOutputs, image: int) -> PyramidOutputs:
    """The pyramid outputs of one image of a batch, as a batch of one (views, no copies)."""
    def one(value: object) -> object:
        if isinstance(value, torch.Tensor):
            return value[image:image + 1]
        if isinstance(value, list):
            return [one(item) for item in value]
        return value
    return PyramidOutputs(**{field.name: one(getattr(outputs, field.name)) for field in dataclasses.fields(outputs)})


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
    """The network and the fixed-shape post-processing (postprocess.frame_tensors) for a batch of B images of one
    input shape, frame size and set of thresholds, with each image's previous frame's regression towers in its
    own slot of the buffers ``previous`` (B, C, h, w) for the movement head; an image marked ``still`` makes the
    head see that image twice instead (first frame, reset, new shape). A run leaves its own towers in
    ``previous``: the next run's previous frames when the same streams come back in the same slots. Runs eagerly
    on any device; GraphedFrame replays it from a CUDA graph."""

    def __init__(self, model: SGNet, config: ModelConfig, example: torch.Tensor, scale: float,
                 valid_size: tuple[int, int], output_size: tuple[int, int]) -> None:
        self.model, self.config = model, config
        self.scale, self.valid_size, self.output_size = scale, valid_size, output_size
        self.input = example.clone()  # (B, 3, H, W)
        self.still = torch.ones(example.shape[0], dtype=torch.bool, device=example.device)  # (B,)
        self.elapsed_s = torch.zeros(example.shape[0], device=example.device)  # (B,) seconds since the previous
        eager = model.pyramid_outputs(self.input)
        self.pyramid = eager.pyramid()  # built here, outside any capture (it copies constants from the host)
        self.previous = [torch.zeros_like(t) for t in eager.regression_towers]

    def run(self) -> list[FrameTensors]:
        outputs = self.model.pyramid_outputs(self.input)
        towers = outputs.regression_towers
        still = self.still[:, None, None, None]
        previous = [torch.where(still, now, before) for now, before in zip(towers, self.previous)]
        frames = [frame_tensors(self.model, self.config, image_outputs(outputs, image), self.pyramid,
                                [level[image:image + 1] for level in previous], self.elapsed_s[image:image + 1],
                                self.scale, self.valid_size, self.output_size, fixed=True)
                  for image in range(self.input.shape[0])]
        for before, now in zip(self.previous, towers):
            before.copy_(now)
        return frames

    def load(self, images: torch.Tensor, still: bool | Sequence[bool], elapsed: float | Sequence[float]) -> None:
        """The next batch (B, 3, H, W), whether each image is still and its seconds since its previous frame (one
        value for all, or one per image); written with device-side fills, never a wait for the device."""
        count = self.input.shape[0]
        self.input.copy_(images)
        for image, (is_still, seconds) in enumerate(zip(
                [still] * count if isinstance(still, bool) else still,
                [elapsed] * count if isinstance(elapsed, (int, float)) else elapsed)):
            self.still[image].fill_(bool(is_still))
            self.elapsed_s[image].fill_(float(seconds))

    def __call__(self, images: torch.Tensor, still: bool | Sequence[bool], elapsed: float | Sequence[float] = 0.0
                 ) -> list[FrameTensors]:
        self.load(images, still, elapsed)
        return self.run()


class GraphedFrame(FixedFrame):
    """FixedFrame captured once in a CUDA graph and replayed per batch.

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

    def __call__(self, images: torch.Tensor, still: bool | Sequence[bool], elapsed: float | Sequence[float] = 0.0
                 ) -> list[FrameTensors]:
        self.load(images, still, elapsed)
        self.graph.replay()
        return self.output
