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
``StreamState``: tracker, the previous processed frame's towers with the key of the runner that made them,
previous timestamp and gap logic, so a camera's IDs, movement, gaps and resets never depend on another camera's
frames. The runners (frame.py, backends.py) hold no stream state: ``step_batch`` runs the frames of several cameras
that have the same size through one runner (torch: one network pass for the batch; the ONNX runtimes: their
single-image graph once per frame), then tracks each with its own stream's state. ``step`` is its one-frame case.
A frame that cannot be served (a bad array, a graph that does not fit its size, a runtime's failure) is that
frame's error in the results; the other cameras' frames are served as if it had not been there.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from sgnet_model.checkpoint import CheckpointError, load_checkpoint, load_model_state
from sgnet_model.config import TRACKER_PROFILES, ModelConfig, PredictorConfig, SGNetConfig, TrackerConfig
from sgnet_model.inference.mask_nms import suppress_overlapping_masks
from sgnet_model.inference.mask_rescoring import rescored
from sgnet_model.inference.postprocess import FrameTensors
from sgnet_model.inference.tracker import CenterTracker
from sgnet_model.inference.uncertainty import FrameUncertainty, frame_uncertainty
from sgnet_model.instances import FrameResult, TrackedInstance, moved
from sgnet_model.network.backbone import fold_batch_norms
from sgnet_model.network.model import SGNet
from sgnet_model.runtime.backends import (BackendError, FrameRunner, TensorRtFrame, check_precision, choose_runtime,
                                          cpu_supports_bf16, cpu_supports_int8, for_frame, graph_precision,
                                          graph_to_run, host_masks, installed_runtimes, int8_graph_for, open_runner)
from sgnet_model.runtime.export import (THRESHOLDS, ExportError, GraphInfo, cached_frame_graph, check_streams,
                                        file_sha256, read_graph_info)
from sgnet_model.runtime.frame import (EagerFrames, GraphedFrames, RunnerKey, Towers, frame_geometry, graph_key,
                                       prepare_frame)
from sgnet_model.stages import stage

__all__ = ["PredictorError", "StreamFrame", "StreamingPredictor", "check_frame"]  # the seam's public surface

DEFAULT_STREAM = ""  # the stream of step() calls that name no camera
Runner = EagerFrames | GraphedFrames | FrameRunner | TensorRtFrame


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
    motion head compares against) with the key of the runner that made them, its timestamp, and the gap rule
    that resets them; with ``fill_gaps_s``, each live track's last detected instance."""

    def __init__(self, tracker_config: TrackerConfig) -> None:
        self.tracker = CenterTracker(tracker_config)
        self.towers: Towers | None = None  # per level (1, C, h, w), in the representation of the runner that made them
        self.runner_key: RunnerKey | None = None
        self.timestamp: float | None = None
        self.last_detected: dict[int, TrackedInstance] = {}  # track id -> its latest detected instance
        self.classes: dict[int, int] | None = None  # track id -> class of the previous frame's detected tracks

    def reset(self) -> None:
        """Forget the tracks and the cached previous frame (the tracker's ID counter goes on)."""
        self.tracker.reset()
        self.forget_towers()
        self.timestamp = None
        self.last_detected = {}
        self.classes = None

    def carried(self, detected: list[TrackedInstance], elapsed: float) -> list[TrackedInstance]:
        """The tracks of the latest update that no detection continued but were matched at most
        ``TrackerConfig.fill_gaps_s`` ago, each as its last detected instance moved to where the tracker expects the
        object (it moves at its last velocity); ``detected`` are this frame's instances, ``elapsed`` the seconds
        since the previous frame. Ended tracks are forgotten."""
        live = {track.track_id: track for track in self.tracker.tracks}
        self.last_detected = {track_id: instance for track_id, instance in self.last_detected.items()
                              if track_id in live}
        self.last_detected.update((instance.track_id, instance) for instance in detected)
        return [moved(self.last_detected[track.track_id], track.position, track.velocity * elapsed)
                for track in live.values()
                if 0 < track.lost_s <= self.tracker.config.fill_gaps_s and track.track_id in self.last_detected]

    def forget_towers(self) -> None:
        """The next frame is a still one (its movement cannot be measured against anything)."""
        self.towers, self.runner_key = None, None

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

    def previous_towers(self, key: RunnerKey) -> Towers | None:
        """The cached towers when the runner ``key`` made them, else None (another frame size, thresholds or
        precision: the head then sees a still scene)."""
        return self.towers if self.runner_key == key else None


class StreamingPredictor:
    """SG-Net over a stream of frames: each frame in, its tracked instances out (track id, class, score, box, mask at
    the frame's resolution, centre, movement), one tracker per camera.

    Example::

        predictor = StreamingPredictor.from_checkpoint("runs/small/model.pt")
        result = predictor.step(rgb, timestamp=1.25)  # rgb: (H, W, 3) uint8; seconds
        for instance in result.instances:
            print(instance.track_id, instance.class_id, instance.score, instance.box)
    """

    def __init__(self, model: SGNet | None, tracker_config: TrackerConfig = TrackerConfig(),
                 predictor_config: PredictorConfig = PredictorConfig(),
                 tracker_profiles: dict[str, TrackerConfig] | None = None, tracker_profile: str = "custom",
                 graph: tuple[Path, GraphInfo] | None = None, checkpoint_sha256: str = "",
                 int8: tuple[tuple[Path, GraphInfo] | None, str] = (None, "")) -> None:
        """``tracker_config`` is what the tracker runs; ``tracker_profiles`` ("robot", "evaluation") the profiles
        the model came with and ``tracker_profile`` which of them ``tracker_config`` is ("custom": neither).
        ``model`` None: a frame graph written by sgnet-export (``graph``: its path and metadata) runs alone.

        A backend other than torch runs a frame graph: the one given, the model's int8 one where int8 runs
        (``int8``: it and what the search found, backends.int8_graph_for), or the model's exported now or cached
        (export.cached_frame_graph); one session serves every frame size, other thresholds get theirs when asked."""
        self.device = resolve_device(predictor_config.device)
        backend, (int8_graph, int8_search) = predictor_config.backend, int8
        given_int8 = graph is not None and graph[1].precision == "int8"
        if model is None and backend == "torch":  # a .onnx checkpoint asks for no backend: the one that runs it
            backend = "openvino" if given_int8 else "onnxruntime"
        cpu = self.device.type == "cpu"
        choice = choose_runtime(backend, predictor_config.run_precision, self.device.type == "cuda",
                                cpu and cpu_supports_bf16(), installed_runtimes(), graph_only=model is None,
                                int8_cpu=cpu and cpu_supports_int8(), int8_graph=int8_graph is not None or given_int8)
        backend, self.runtime_choice = choice.backend, choice.reason + (f"; {int8_search}" if int8_search else "")
        predictor_config = dataclasses.replace(predictor_config, backend=backend, precision=choice.precision,
                                               fp16=predictor_config.fp16 and choice.precision == "fp16")
        self.precision = predictor_config.run_precision
        try:
            graph = graph_to_run(self.precision, graph, int8_graph, int8_search)
            check_precision(backend, self.precision, self.device, predictor_config.openvino_device)
        except BackendError as error:
            raise PredictorError(str(error)) from None
        model = None if graph is not None else model  # a graph runs alone
        self.dtype = torch.float16 if backend == "torch" and self.precision == "fp16" else torch.float32
        self.predictor_config, self._tracker_config = predictor_config, tracker_config
        self.model_config: ModelConfig = model.config if model is not None else graph[1].model_config
        self.streams: dict[str, StreamState] = {}
        self.tracker_profiles, self.tracker_profile = dict(tracker_profiles or {}), tracker_profile
        self._graph, self._checkpoint_sha256 = graph, checkpoint_sha256
        self.model = model
        if model is not None:
            # The predictor owns the model from here: BatchNorms folded into the convolutions, channels-last
            # memory (oneDNN and cuDNN run NHWC convolutions faster), inference mode. A backend that exports keeps
            # it on the CPU in float32, where it is traced.
            model = model.eval()
            fold_batch_norms(model.backbone)
            self.model = model.to(*((torch.device("cpu"), torch.float32) if backend != "torch" else
                                    (self.device, self.dtype)), memory_format=torch.channels_last)
        self.backend_description = f"torch {self.device} {self.precision}"
        self._runners: dict[RunnerKey, Runner] = {}
        self._sessions: dict[RunnerKey, Runner] = {}  # a backend's graph sessions, one per graph: for every frame size
        self._failed: dict[RunnerKey, PredictorError] = {}  # runners that could not be built, with the reason
        self.prepare()

    @property
    def expected_frame_size(self) -> tuple[int, int]:
        """(H, W) of the frames this predictor expects unless told otherwise: the model's input size."""
        return self.model_config.input_height, self.model_config.input_width

    def prepare(self, frame_sizes: Iterable[tuple[int, int]] = ()) -> None:
        """Build now (at configure or activate, not on a camera's first frame) the runners for frames of these
        sizes (H, W) and of the expected size at the current thresholds: for a backend other than torch an export
        or the cache's and the runtime's session, for CUDA graphs the capture of one frame. A given graph that
        cannot serve a size or the current thresholds is a PredictorError saying so. The eager torch runner
        needs no preparing."""
        if self.predictor_config.backend == "torch" and not self._cuda_graphs:
            return
        for height, width in {self.expected_frame_size, *frame_sizes}:
            if self.runner_key((height, width)) in self._runners:
                continue  # prepared already (at construction, or by an earlier call)
            runner = self._runner((height, width))
            if isinstance(runner, GraphedFrames):  # the capture for one frame at a time
                runner(self._prepare(np.zeros((height, width, 3), np.uint8))[0], [None], [0.0])

    def prepared(self, frame_size: tuple[int, int]) -> bool:
        """Whether frames of ``frame_size`` (H, W) are served now without an export or a runtime's session to
        build first (or would fail at once: a size that could not be prepared keeps its error). Torch always is:
        the CPU runs eagerly, and a CUDA graph's capture takes a few frames' time; so is every size once the
        graph's session is up (it serves them all)."""
        key = self.runner_key(frame_size)
        return self.predictor_config.backend == "torch" or key in self._runners or key in self._failed or \
            graph_key(key) in self._sessions

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
        int8 = int8_graph_for(path, digest) if model is not None and predictor_config.backend in (
            "auto", "openvino") and predictor_config.run_precision in ("auto", "int8") else (None, "")
        if tracker_config is None:
            return cls(model, profiles[profile], predictor_config, profiles, profile, graph, digest, int8)
        return cls(model, tracker_config, predictor_config, profiles, "custom", graph, digest, int8)

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
                          detections_per_frame: int | None = None, mask_nms_threshold: float | None = None) -> None:
        """Change inference thresholds at run time (validated as the config fields are)."""
        changes = {k: v for k, v in (("score_threshold", score_threshold), ("nms_threshold", nms_threshold),
                                     ("detections_per_frame", detections_per_frame),
                                     ("mask_nms_threshold", mask_nms_threshold)) if v is not None}
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
        stream whose tracks and previous frame this frame continues. A frame that cannot be served raises."""
        [result] = self.step_batch([StreamFrame(camera, image, timestamp, received_before)])
        if isinstance(result, Exception):
            raise result
        return result

    @torch.inference_mode()
    def step_batch(self, frames: Sequence[StreamFrame]) -> list[FrameResult | Exception]:
        """One frame from each of several cameras (at most one per camera), results in the same order. Frames of
        one size go through one runner together; each is then tracked with its own camera's stream state, as
        ``step`` would. A frame that cannot be served is its own PredictorError (or the runtime's exception) in
        the results, and leaves its camera's next frame a still one; the other frames are served as if it had
        not been there. A result's ``inference_ms`` is the time from the call until its frame was tracked."""
        cameras = [frame.camera for frame in frames]
        if len(set(cameras)) != len(cameras):
            raise PredictorError(f"step_batch takes at most one frame per camera, got cameras {cameras}")
        started = time.perf_counter()
        results: list[FrameResult | Exception | None] = [None] * len(frames)
        groups: dict[tuple[int, int], list[tuple[int, bool, float]]] = {}  # frame size -> (index, reset, elapsed)
        for index, frame in enumerate(frames):
            try:
                check_stream_frame(frame)
            except PredictorError as error:
                results[index] = error
                continue
            reset, elapsed = self.stream(frame.camera).advance(frame.timestamp, frame.received_before,
                                                               self.predictor_config.max_gap_s)
            groups.setdefault(frame.image.shape[:2], []).append((index, reset, elapsed))
        for size, members in groups.items():
            streams = [self.stream(frames[index].camera) for index, _, _ in members]
            try:
                runner = self._runner(size)
                with stage("prepare"):
                    images = torch.cat([self._prepare(frames[index].image)[0] for index, _, _ in members])
                with stage("runtime"):
                    outputs = runner(images, [stream.previous_towers(runner.key) for stream in streams],
                                     [elapsed for _, _, elapsed in members])
            except Exception as error:  # these frames only; the node logs it with its type
                for (index, _, _), stream in zip(members, streams):
                    results[index] = error
                    stream.forget_towers()
                continue
            for (index, reset, elapsed), stream, (tensors, towers) in zip(members, streams, outputs):
                stream.towers, stream.runner_key = towers, runner.key
                instances, uncertainty = self._track(stream, tensors, frames[index].timestamp, elapsed)
                results[index] = FrameResult(timestamp=frames[index].timestamp, instances=instances,
                                             inference_ms=(time.perf_counter() - started) * 1000.0,
                                             tracks_reset=reset, uncertainty=uncertainty)
        return results

    def _track(self, stream: StreamState, frame: FrameTensors, timestamp: float,
               elapsed: float) -> tuple[list[TrackedInstance], FrameUncertainty]:
        """One frame's instances from the device, tracked by its stream's tracker (with ``fill_gaps_s``, the
        tracks it missed carried over the gap), and the frame's uncertainty events."""
        with stage("to_host"):
            numbers, masks_np = self._to_host(frame)
        with stage("tracking"):  # ranking by mask quality and the suppression by mask overlap, when on; the tracker
            # (N,) each: what ranks the detections and what the tracker's start and continue scores compare
            scores, tracker_scores = rescored(numbers[:, 6], numbers[:, 9], self.model_config.mask_rescoring)
            if self.model_config.mask_nms_threshold > 0:
                keep = suppress_overlapping_masks(scores, masks_np, self.model_config.mask_nms_threshold)
                numbers, masks_np = numbers[keep], masks_np[keep]
                scores, tracker_scores = scores[keep], tracker_scores[keep]
            boxes, motion_np = numbers[:, :4], numbers[:, 4:6]
            labels = numbers[:, 7].astype(np.int64)
            track_ids = stream.tracker.update(boxes, tracker_scores, labels, motion_np, timestamp)
            uncertainty = frame_uncertainty(tracker_scores, track_ids, labels, stream.classes, stream.tracker.config)
            stream.classes = {int(t): int(c) for t, c in zip(track_ids, labels) if t > 0}
            detected = [
                TrackedInstance(track_id=int(track_ids[i]), class_id=int(labels[i]),
                                class_name=self.class_names[int(labels[i])], score=float(scores[i]), box=boxes[i],
                                mask=masks_np[i], centre=(boxes[i, :2] + boxes[i, 2:]) / 2, motion=motion_np[i])
                for i in np.flatnonzero(track_ids > 0)
            ]
            if stream.tracker.config.fill_gaps_s > 0:
                detected += stream.carried(detected, elapsed)
        return detected, uncertainty

    @staticmethod
    def _to_host(frame: FrameTensors) -> tuple[np.ndarray, np.ndarray]:
        """The valid instances' numbers (N, 10) and masks (N, H, W) as numpy arrays.

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

    @property
    def _cuda_graphs(self) -> bool:
        return self.predictor_config.backend == "torch" and self.device.type == "cuda" and \
            self.predictor_config.cuda_graphs

    def runner_key(self, frame_size: tuple[int, int]) -> RunnerKey:
        """What a runner serves: the frame size (H, W), the thresholds and the precision; never a batch size."""
        return (tuple(frame_size), *(getattr(self.model_config, name) for name in THRESHOLDS), self.precision)

    def _runner(self, frame_size: tuple[int, int]) -> Runner:
        """The runner for frames of ``frame_size`` at the current thresholds and precision, built on first use:
        torch eagerly (the CPU's default), torch's CUDA graphs, or the backend's runtime on a frame graph (the one
        given, or exported now)."""
        key = self.runner_key(frame_size)
        if key in self._runners:
            return self._runners[key]
        if key in self._failed:
            raise self._failed[key]
        scale, valid_size, _ = frame_geometry(self.model_config, *frame_size)
        if self.predictor_config.backend == "torch":
            arguments = (self.model, self.model_config, key, scale, valid_size, tuple(frame_size))
            batch_pixels = self.predictor_config.cpu_batch_pixels if self.device.type == "cpu" else None
            runner = GraphedFrames(*arguments) if self._cuda_graphs else EagerFrames(*arguments, self.precision,
                                                                                     batch_pixels)
        else:
            try:
                if graph_key(key) not in self._sessions:
                    path, info = self._frame_graph()
                    self._sessions[graph_key(key)] = open_runner(path, info, self.predictor_config, self.device,
                                                                 graph_key(key))
                runner = for_frame(self._sessions[graph_key(key)], key, tuple(frame_size))
            except (ExportError, BackendError) as error:
                self._failed[key] = PredictorError(str(error))
                raise self._failed[key] from None
        self.backend_description = runner.description
        self._runners[key] = runner
        return runner

    def _frame_graph(self) -> tuple[Path, GraphInfo]:
        """The frame graph (for frames of every size) at the current thresholds: the one given (when it has them),
        or the model's from the export cache."""
        if self.model is None:
            path, info = self._graph
            mismatch = info.mismatch(self.model_config)
            if mismatch:
                raise ExportError(f"{path} cannot serve {mismatch}: its thresholds are fixed at export; export the "
                                  f"checkpoint again with sgnet-export and the thresholds wanted (--score-threshold, "
                                  f"--nms-threshold, --detections-per-frame)")
            return path, info
        backend = self.predictor_config.backend
        return cached_frame_graph(self.model, self.model_config, self.tracker_profiles,
                                  graph_precision(backend, self.precision) == "fp16",
                                  host_masks(backend, self.device), check_streams(self.model_config),
                                  self._checkpoint_sha256)

    def _prepare(self, image: np.ndarray) -> tuple[torch.Tensor, float, tuple[int, int]]:
        return prepare_frame(image, self.model_config, self.device, self.dtype,
                             channels_last=self.predictor_config.backend == "torch")


def check_stream_frame(frame: StreamFrame) -> None:
    """A PredictorError naming the camera when its frame cannot be taken (not an RGB array, not finite stamps)."""
    try:
        check_frame(frame.image)
    except PredictorError as error:
        raise PredictorError(f"camera {frame.camera!r}: {error}" if frame.camera else str(error)) from None
    if not math.isfinite(frame.timestamp) or (frame.received_before is not None
                                              and not math.isfinite(frame.received_before)):
        raise PredictorError(f"timestamps must be finite, got {frame.timestamp} (received_before "
                             f"{frame.received_before})" + (f" for camera {frame.camera!r}" if frame.camera else ""))


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
