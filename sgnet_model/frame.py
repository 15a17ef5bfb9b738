"""A frame's way into the network and its whole fixed-shape work: the frame resized and padded for the network
(``prepare_frame``), and the network, fixed-shape post-processing and movement in one call (``fixed_frame``), which
FixedFrame runs eagerly, GraphedFrame replays from a CUDA graph and export.py writes as one ONNX graph."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .config import ModelConfig
from .model import SGNet
from .postprocess import FrameTensors, frame_tensors
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
