"""A frame's way into the network and its whole fixed-shape work: the frame resized and padded for the network
(``prepare_frame``), and the network, fixed-shape post-processing and movement in one call (``fixed_frame``), which
FixedFrame runs eagerly, GraphedFrame replays from a CUDA graph and export.py writes as one ONNX graph."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .config import ModelConfig
from .locations import Locations
from .mask_head import GranularityBlender
from .model import PyramidOutputs, SGNet
from .postprocess import Detections, FrameTensors, frame_tensors, paste_masks, select_detections_fixed
from .targets import Pyramid

SIZE_DIVISOR = 32  # P7 has stride 128, but torchvision's FCOS pads to 32 as well; extra rows just stay empty


def prepare_frame(image: np.ndarray, config: ModelConfig, device: torch.device, dtype: torch.dtype
                  ) -> tuple[torch.Tensor, float, tuple[int, int]]:
    """Resize to fit the input size keeping the aspect, pad to a multiple of 32: (1, 3, H, W), the scale
    from frame to network pixels, and the valid (unpadded) size."""
    height, width = image.shape[:2]
    scale, resized, padded = frame_geometry(config, height, width)
    frame = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None]
    frame = frame.to(dtype)
    if resized != (height, width):
        frame = F.interpolate(frame, size=resized, mode="bilinear", align_corners=False)
    frame = F.pad(frame, (0, padded[1] - resized[1], 0, padded[0] - resized[0]))
    return frame.contiguous(memory_format=torch.channels_last), scale, resized


def frame_geometry(config: ModelConfig, height: int, width: int) -> tuple[float, tuple[int, int], tuple[int, int]]:
    """How a height x width frame enters the network: the scale from frame to network pixels, the resized (valid)
    size and the padded size (multiples of 32), both (H, W)."""
    scale = min(config.input_width / width, config.input_height / height)
    resized = (max(1, round(height * scale)), max(1, round(width * scale)))
    return scale, resized, tuple(math.ceil(side / SIZE_DIVISOR) * SIZE_DIVISOR for side in resized)


def fixed_frame(model: SGNet, config: ModelConfig, pyramid: Pyramid, images: torch.Tensor, still: torch.Tensor,
                elapsed_s: torch.Tensor, previous_towers: list[torch.Tensor], scale: float, valid_size: tuple[int, int],
                output_size: tuple[int, int]) -> tuple[FrameTensors, list[torch.Tensor]]:
    """A frame's whole fixed-shape work (what FixedFrame runs, GraphedFrame replays and sgnet-export writes as one
    ONNX graph): the network on images (1, 3, H, W), the fixed-shape post-processing, and the movement since the
    frame whose regression towers are ``previous_towers``, ``elapsed_s`` (1,) seconds earlier; ``still`` (0-d
    bool) makes the head see this frame twice instead. Returns the frame's tensors and its own towers."""
    outputs = model.pyramid_outputs(images)
    towers = outputs.regression_towers
    previous = [torch.where(still, now, before) for now, before in zip(towers, previous_towers)]
    frame = frame_tensors(model, config, outputs, pyramid, previous, elapsed_s, scale, valid_size, output_size,
                          fixed=True)
    return frame, towers


def fixed_frame_for_host_masks(model: SGNet, config: ModelConfig, pyramid: Pyramid, images: torch.Tensor,
                               still: torch.Tensor, elapsed_s: torch.Tensor, previous_towers: list[torch.Tensor],
                               scale: float, valid_size: tuple[int, int]
                               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """``fixed_frame`` up to the masks, for runtimes on a CPU: pasting every slot over the whole frame (what a GPU
    absorbs) costs a CPU more than the network, so the masks of the valid slots are pasted on the host instead
    (``paste_host_masks``, the data-dependent path torch runs on the CPU). Returns the frame's numbers (slots, 9)
    as frame_tensors makes them, each slot's attention scores (slots, G*G, K), the base features F (1, K, h, w) and
    the frame's towers."""
    outputs = model.pyramid_outputs(images)
    towers = outputs.regression_towers
    previous = [torch.where(still, now, before) for now, before in zip(towers, previous_towers)]
    detections = select_detections_fixed(outputs, pyramid, 0, valid_size, config.score_threshold,
                                         config.nms_threshold, config.detections_per_frame, config.candidates_per_level,
                                         class_agnostic=config.class_agnostic_nms)
    # the rest of frame_tensors(fixed=True) but the masks: movement in frame pixels, the numbers laid out alike
    strides = (8 * 2 ** detections.locations.level).to(detections.boxes.dtype)
    motion = model.motion(towers, previous, detections.locations, elapsed_s) * strides[:, None]
    numbers = torch.cat((detections.boxes / scale, motion / scale, detections.scores[:, None],
                         detections.labels[:, None], detections.valid[:, None]), dim=1).float()
    attention = model.attention.scores_at(outputs.attention_towers, detections.locations)
    return numbers, attention, outputs.base, towers


class _SlotAttention:
    """What postprocess.paste_masks reads of the model when a frame graph has computed the slots' attention
    scores: the config, the blender (it has no weights) and ``scores_at``, answered with the graph's scores."""

    def __init__(self, config: ModelConfig, scores: torch.Tensor) -> None:
        self.config, self.blender, self.attention, self.scores = config, GranularityBlender(config), self, scores

    def scores_at(self, towers: list[torch.Tensor], locations: Locations) -> torch.Tensor:
        return self.scores


def paste_host_masks(config: ModelConfig, numbers: torch.Tensor, attention: torch.Tensor, base: torch.Tensor,
                     input_size: tuple[int, int], scale: float, output_size: tuple[int, int]) -> torch.Tensor:
    """The masks (N, H, W) of the first N slots of ``fixed_frame_for_host_masks``'s outputs (numbers (N, 9),
    attention (N, G*G, K)), pasted by postprocess.paste_masks at the frame's resolution."""
    count = numbers.shape[0]
    zeros = torch.zeros(count, dtype=torch.long)
    detections = Detections(numbers[:, :4] * scale, numbers[:, 6], numbers[:, 7].long(),
                            Locations(zeros, zeros, zeros, zeros))
    outputs = PyramidOutputs([], [], [], [], [], base, input_size)
    return paste_masks(_SlotAttention(config, attention), outputs, detections, scale, output_size)


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
        frame, towers = fixed_frame(self.model, self.config, self.pyramid, self.input, self.still, self.elapsed_s,
                                    self.previous, self.scale, self.valid_size, self.output_size)
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
