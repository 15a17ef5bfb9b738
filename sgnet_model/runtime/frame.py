"""A frame's way into the network and the torch runners that take it from there.

``prepare_frame`` resizes a frame keeping its aspect and pads it to the network's one input size. ``fixed_frame``
is a frame's whole fixed-shape work (network, fixed-shape post-processing, movement) in one call: FixedFrame runs
it for a batch and GraphedFrames replays that from a CUDA graph. ``fixed_frame_for_host`` is the same up to the
masks, in network pixels: export.py writes it as one ONNX graph that serves frames of every size, and
``paste_host_masks`` brings its outputs to the frame's own size. EagerFrames is what the CPU runs by default:
data-dependent shapes, less work where nothing is captured.

Runners hold no stream state. A runner serves one frame size at one set of thresholds and one precision (its
``key``) and is called with a batch of frames of that size, each with its own camera's previous regression towers
(None: a still frame, the head sees this frame twice) and the seconds since them; it returns each frame's
tensors and its own towers, which the camera keeps for its next frame (predictor.StreamState). The backends'
runners (backends.py) follow the same contract.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F

from collections.abc import Sequence

from sgnet_model.config import ModelConfig
from sgnet_model.inference.postprocess import (Detections, FrameTensors, frame_tensors, paste_masks,
                                               select_detections_fixed, slot_logits_fixed)
from sgnet_model.network.locations import Locations
from sgnet_model.network.mask_head import GranularityBlender
from sgnet_model.network.model import PyramidOutputs, SGNet
from sgnet_model.network.targets import Pyramid

SIZE_DIVISOR = 32  # P7 has stride 128, but torchvision's FCOS pads to 32 as well; extra rows just stay empty
Towers = list  # one frame's regression towers, per level (1, C, h, w): torch tensors, or numpy arrays from a runtime
RunnerKey = tuple  # what a runner serves: frame size, thresholds, precision (predictor.StreamingPredictor.runner_key)


def graph_key(key: RunnerKey) -> RunnerKey:
    """A runner key without its frame size: what one frame graph and its runtime session serve (every size)."""
    return (None, *key[1:])


def prepare_frame(image: np.ndarray, config: ModelConfig, device: torch.device, dtype: torch.dtype,
                  channels_last: bool = True) -> tuple[torch.Tensor, float, tuple[int, int]]:
    """Resize to fit the input size keeping the aspect, pad to a multiple of 32: (1, 3, H, W), the scale
    from frame to network pixels, and the valid (unpadded) size. ``channels_last``: in the memory layout torch's
    convolutions run fastest (oneDNN, cuDNN); an ONNX runtime takes the plain layout (no copy back)."""
    height, width = image.shape[:2]
    scale, resized, padded = frame_geometry(config, height, width)
    frame = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None]
    frame = frame.to(dtype)
    if resized != (height, width):
        frame = F.interpolate(frame, size=resized, mode="bilinear", align_corners=False)
    frame = F.pad(frame, (0, padded[1] - resized[1], 0, padded[0] - resized[0]))
    layout = torch.channels_last if channels_last else torch.contiguous_format
    return frame.contiguous(memory_format=layout), scale, resized


def frame_geometry(config: ModelConfig, height: int, width: int) -> tuple[float, tuple[int, int], tuple[int, int]]:
    """How a height x width frame enters the network: the scale from frame to network pixels, the resized (valid)
    size and the padded size, both (H, W). Every frame is resized keeping its aspect to fit the input size and
    padded (below and to the right) to ``input_size``: one network input for frames of every size, so that one
    frame graph serves them all."""
    scale = min(config.input_width / width, config.input_height / height)
    resized = (max(1, round(height * scale)), max(1, round(width * scale)))
    return scale, resized, input_size(config)


def input_size(config: ModelConfig) -> tuple[int, int]:
    """The network's padded input (H, W): the input size rounded up to multiples of 32, whatever the frame's size."""
    return (math.ceil(config.input_height / SIZE_DIVISOR) * SIZE_DIVISOR,
            math.ceil(config.input_width / SIZE_DIVISOR) * SIZE_DIVISOR)


def fixed_frame(model: SGNet, config: ModelConfig, pyramid: Pyramid, images: torch.Tensor, still: torch.Tensor,
                elapsed_s: torch.Tensor, previous_towers: list[torch.Tensor], scale: float, valid_size: tuple[int, int],
                output_size: tuple[int, int]) -> tuple[FrameTensors, list[torch.Tensor]]:
    """One frame's whole fixed-shape work (what sgnet-export writes as one ONNX graph): ``fixed_frames`` for a
    batch of one, ``still`` a 0-d bool. Returns the frame's tensors and its own towers."""
    frames, towers = fixed_frames(model, config, pyramid, images, still.reshape(1), elapsed_s, previous_towers, scale,
                                  valid_size, output_size)
    return frames[0], towers


def fixed_frames(model: SGNet, config: ModelConfig, pyramid: Pyramid, images: torch.Tensor, still: torch.Tensor,
                 elapsed_s: torch.Tensor, previous_towers: list[torch.Tensor], scale: float,
                 valid_size: tuple[int, int], output_size: tuple[int, int]
                 ) -> tuple[list[FrameTensors], list[torch.Tensor]]:
    """The network on images (B, 3, H, W) in one pass, then each image's fixed-shape post-processing and its
    movement since the frame whose regression towers are its slot of ``previous_towers`` (per level (B, C, h, w)),
    ``elapsed_s`` (B,) seconds earlier; ``still`` (B,) bool makes the head see that image twice instead. Returns
    each image's tensors and the batch's towers (per level (B, C, h, w))."""
    outputs = model.pyramid_outputs(images)
    towers = outputs.regression_towers
    previous = [torch.where(still[:, None, None, None], now, before) for now, before in zip(towers, previous_towers)]
    frames = [frame_tensors(model, config, image_outputs(outputs, image), pyramid,
                            [level[image:image + 1] for level in previous], elapsed_s[image:image + 1], scale,
                            valid_size, output_size, fixed=True)
              for image in range(images.shape[0])]
    return frames, towers


def image_outputs(outputs: PyramidOutputs, image: int) -> PyramidOutputs:
    """The pyramid outputs of one image of a batch, as a batch of one (views, no copies)."""
    def one(value: object) -> object:
        if isinstance(value, torch.Tensor):
            return value[image:image + 1]
        if isinstance(value, list):
            return [one(item) for item in value]
        return value
    return PyramidOutputs(**{field.name: one(getattr(outputs, field.name)) for field in dataclasses.fields(outputs)})


def fixed_frame_for_host(model: SGNet, config: ModelConfig, pyramid: Pyramid, images: torch.Tensor,
                         still: torch.Tensor, elapsed_s: torch.Tensor, previous_towers: list[torch.Tensor],
                         valid_size: torch.Tensor, slot_logits: bool
                         ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], list[torch.Tensor]]:
    """``fixed_frame`` up to the masks, in the network's pixels: what a frame graph computes, for frames of every
    size (``valid_size`` (2,) the resized frame's H, W inside the padded input). The host scales the numbers to
    the frame and pastes the valid slots' masks at the frame's own size (``paste_host_masks``, the data-dependent
    path torch runs on the CPU: pasting every slot over the whole frame costs a CPU more than the network).

    Returns the numbers (slots, 10) as frame_tensors makes them but in network pixels and for the mask quality
    (column 9, 0 here: the host fills it in as it pastes), what the masks are pasted from and the frame's towers.
    ``slot_logits``: the blender's logits at every F pixel of each slot, ((slots, h, w),) (masks "graph": the
    graph does the blending, which a GPU absorbs); else each slot's attention scores (slots, G*G, K) and the
    base features F (1, K, h, w) (masks "host": the host blends the valid slots' mask regions only)."""
    outputs = model.pyramid_outputs(images)
    towers = outputs.regression_towers
    previous = [torch.where(still, now, before) for now, before in zip(towers, previous_towers)]
    detections = select_detections_fixed(outputs, pyramid, 0, valid_size, config.score_threshold,
                                         config.nms_threshold, config.detections_per_frame, config.candidates_per_level,
                                         class_agnostic=config.class_agnostic_nms)
    # the rest of frame_tensors(fixed=True) but the masks: movement, the numbers laid out alike
    strides = 8 * 2 ** detections.locations.level.to(detections.boxes.dtype)
    motion = model.motion(towers, previous, detections.locations, elapsed_s) * strides[:, None]
    numbers = torch.cat((detections.boxes, motion, detections.scores[:, None], detections.labels[:, None],
                         detections.valid[:, None], torch.zeros_like(detections.scores)[:, None]), dim=1).float()
    if slot_logits:
        return numbers, (slot_logits_fixed(model, outputs, detections),), towers
    attention = model.attention.scores_at(outputs.attention_towers, detections.locations)
    return numbers, (attention, outputs.base), towers


class _SlotAttention:
    """What postprocess.paste_masks reads of the model when a frame graph has computed the slots' attention
    scores (or their logits): the config, the blender (it has no weights) and ``scores_at``, answered with the
    graph's scores."""

    def __init__(self, config: ModelConfig, scores: torch.Tensor | None) -> None:
        self.config, self.blender, self.attention, self.scores = config, GranularityBlender(config), self, scores

    def scores_at(self, towers: list[torch.Tensor], locations: Locations) -> torch.Tensor | None:
        return self.scores


def paste_host_masks(config: ModelConfig, numbers: torch.Tensor, pasted_from: Sequence[torch.Tensor],
                     input_size: tuple[int, int], scale: float, output_size: tuple[int, int]
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The masks (N, H, W) and their quality (N,) of the first N slots of ``fixed_frame_for_host``'s outputs
    (numbers (N, 10) in network pixels; ``pasted_from`` its attention (N, G*G, K) and base (1, K, h, w), or its
    slots' logits (N, h, w)), pasted by postprocess.paste_masks at the frame's resolution (``scale``: frame to
    network pixels)."""
    count = numbers.shape[0]
    zeros = torch.zeros(count, dtype=torch.long, device=numbers.device)
    detections = Detections(numbers[:, :4], numbers[:, 6], numbers[:, 7].long(), Locations(zeros, zeros, zeros, zeros))
    if len(pasted_from) == 1:
        [logits] = pasted_from
        base = logits.new_zeros((1, 0, *logits.shape[-2:]))  # only its size is read
        outputs = PyramidOutputs([], [], [], [], [], base, input_size)
        return paste_masks(_SlotAttention(config, None), outputs, detections, scale, output_size, logits[:count])
    attention, base = pasted_from
    outputs = PyramidOutputs([], [], [], [], [], base, input_size)
    return paste_masks(_SlotAttention(config, attention), outputs, detections, scale, output_size)


class EagerFrames:
    """The network in torch, eagerly, on a batch of frames of one size in one pass (or in passes of at most
    ``batch_pixels`` input pixels), then each frame's post-processing with data-dependent shapes (the work follows
    what is found: what a CPU wants). bf16: the network under autocast, boxes, masks and movement from its outputs
    in float32."""

    def __init__(self, model: SGNet, config: ModelConfig, key: RunnerKey, scale: float, valid_size: tuple[int, int],
                 output_size: tuple[int, int], precision: str, batch_pixels: int | None = None) -> None:
        """``batch_pixels``: at most this many input pixels per network pass (the CPU's budget), None: the whole
        batch in one pass."""
        self.model, self.config, self.key, self.bf16 = model, config, key, precision == "bf16"
        self.batch_pixels = batch_pixels
        self.scale, self.valid_size, self.output_size = scale, valid_size, output_size
        self.pyramid: Pyramid | None = None  # built on the first batch (one input shape per runner)
        self.description = f"torch {next(model.parameters()).device} {precision}"

    def __call__(self, images: torch.Tensor, previous: Sequence[Towers | None], elapsed: Sequence[float]
                 ) -> list[tuple[FrameTensors, Towers]]:
        per_pass = images.shape[0] if self.batch_pixels is None else max(
            1, self.batch_pixels // (images.shape[2] * images.shape[3]))
        results = []
        for start in range(0, images.shape[0], per_pass):
            end = start + per_pass
            results += self._run(images[start:end], previous[start:end], elapsed[start:end])
        return results

    def _run(self, images: torch.Tensor, previous: Sequence[Towers | None], elapsed: Sequence[float]
             ) -> list[tuple[FrameTensors, Towers]]:
        with torch.autocast("cpu", torch.bfloat16, enabled=self.bf16):
            outputs = self.model.pyramid_outputs(images)
        if self.bf16:
            outputs = dataclasses.replace(outputs, **{
                field.name: [t.float() for t in value] if isinstance(value, list) else value.float()
                for field in dataclasses.fields(outputs) if isinstance(value := getattr(outputs, field.name),
                                                                        (list, torch.Tensor))})
        if self.pyramid is None:
            self.pyramid = outputs.pyramid()
        results = []
        for image, (before, seconds) in enumerate(zip(previous, elapsed)):
            one = image_outputs(outputs, image)
            towers = one.regression_towers
            elapsed_s = torch.full((1,), 0.0 if before is None else seconds, device=images.device)
            frame = frame_tensors(self.model, self.config, one, self.pyramid, towers if before is None else before,
                                  elapsed_s, self.scale, self.valid_size, self.output_size, fixed=False)
            results.append((frame, towers))
        return results


class FixedFrame:
    """``fixed_frames`` for batches of frames of one input shape, frame size and set of thresholds, with every
    input in a buffer of its own: what GraphedFrames captures, run eagerly here (any device). ``load`` writes the
    next batch into the buffers, ``run`` computes it."""

    def __init__(self, model: SGNet, config: ModelConfig, key: RunnerKey, example: torch.Tensor, scale: float,
                 valid_size: tuple[int, int], output_size: tuple[int, int]) -> None:
        self.model, self.config, self.key = model, config, key
        self.scale, self.valid_size, self.output_size = scale, valid_size, output_size
        self.input = example.clone()  # (B, 3, H, W)
        count, device = example.shape[0], example.device
        self.still = torch.ones(count, dtype=torch.bool, device=device)  # (B,)
        self.elapsed_s = torch.zeros(count, device=device)  # (B,) seconds since each image's previous frame
        eager = model.pyramid_outputs(self.input)
        self.pyramid = eager.pyramid()  # built here, outside any capture (it copies constants from the host)
        self.previous = [torch.zeros_like(t) for t in eager.regression_towers]  # per level (B, C, h, w)
        self.description = f"torch {device} fixed shapes"

    def run(self) -> tuple[list[FrameTensors], list[torch.Tensor]]:
        return fixed_frames(self.model, self.config, self.pyramid, self.input, self.still, self.elapsed_s,
                            self.previous, self.scale, self.valid_size, self.output_size)

    def load(self, images: torch.Tensor, previous: Sequence[Towers | None], elapsed: Sequence[float]) -> None:
        """The next batch into the buffers, with device-side copies and fills only (never a wait for the device):
        each image's previous towers into its slot (a still image keeps whatever the slot holds: it is not read)."""
        self.input.copy_(images)
        for slot, (before, seconds) in enumerate(zip(previous, elapsed)):
            self.still[slot].fill_(before is None)
            self.elapsed_s[slot].fill_(0.0 if before is None else float(seconds))
            for buffer, tower in zip(self.previous, before or ()):
                buffer[slot:slot + 1].copy_(tower)

    def __call__(self, images: torch.Tensor, previous: Sequence[Towers | None], elapsed: Sequence[float]
                 ) -> list[tuple[FrameTensors, Towers]]:
        self.load(images, previous, elapsed)
        frames, towers = self.run()
        return [(frame, [level[slot:slot + 1] for level in towers]) for slot, frame in enumerate(frames)]


class GraphedFrames:
    """FixedFrame captured in a CUDA graph and replayed, one capture per batch size (at most the node's
    max_batch_size of them) under one runner.

    A ResNet-FPN forward launches hundreds of small kernels, and post-processing as many again; on a fast GPU
    launching them costs more than running them, and a post-processing whose shapes depend on the data makes
    the host wait for the device several times a frame. The replay runs all of it without the host and writes
    into the same output tensors each time: a frame's tensors are valid until the next call, its towers are
    copies.
    """

    def __init__(self, model: SGNet, config: ModelConfig, key: RunnerKey, scale: float, valid_size: tuple[int, int],
                 output_size: tuple[int, int]) -> None:
        self.model, self.config, self.key = model, config, key
        self.scale, self.valid_size, self.output_size = scale, valid_size, output_size
        self.captures: dict[int, tuple[FixedFrame, torch.cuda.CUDAGraph, list[FrameTensors], list[torch.Tensor]]] = {}
        self.description = f"torch {next(model.parameters()).device} CUDA graphs"

    def _capture(self, example: torch.Tensor) -> tuple[FixedFrame, torch.cuda.CUDAGraph, list[FrameTensors],
                                                        list[torch.Tensor]]:
        fixed = FixedFrame(self.model, self.config, self.key, example, self.scale, self.valid_size, self.output_size)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the graph (cuDNN picks its algorithms here)
            for _ in range(2):
                fixed.run()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            frames, towers = fixed.run()
        return fixed, graph, frames, towers

    def __call__(self, images: torch.Tensor, previous: Sequence[Towers | None], elapsed: Sequence[float]
                 ) -> list[tuple[FrameTensors, Towers]]:
        count = images.shape[0]
        if count not in self.captures:
            self.captures[count] = self._capture(images)
        fixed, graph, frames, towers = self.captures[count]
        fixed.load(images, previous, elapsed)
        graph.replay()
        return [(frame, [level[slot:slot + 1].clone() for level in towers]) for slot, frame in enumerate(frames)]
