"""From dense pyramid outputs to a frame's instances: score threshold, top-k, NMS, masks at the frame's
resolution, movement.

Two paths compute the same instances:
- ``select_detections`` / ``paste_masks``: shapes follow the data (the boxes above the threshold, the pixels
  inside each box). The work is proportional to what is found, which is what a CPU wants; the host learns the
  counts on the way (boolean indexing, NMS output, per-box pixel counts).
- ``select_detections_fixed`` / ``paste_masks_fixed``: every shape is fixed by the configuration
  (``detections_per_frame`` slots with a validity flag, masks pasted for every slot over the whole frame), so
  the device never waits for the host and the whole frame can be captured in a CUDA graph with the network
  (frame.GraphedFrames). The work is that of all slots over the whole frame, which a GPU absorbs.
Both share the candidate selection, the box geometry and the mask head's functions, and return the same boxes,
scores, labels, masks and mask qualities (test_predictor.py checks the one against the other).
"""
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor
from torchvision.ops import batched_nms, box_iou, clip_boxes_to_image

from sgnet_model.config import ModelConfig
from sgnet_model.network.locations import Locations
from sgnet_model.network.mask_head import grid_sizes, mask_regions
from sgnet_model.network.model import PyramidOutputs, SGNet, decode_boxes
from sgnet_model.network.targets import Pyramid
from sgnet_model.stages import stage

MAX_MASK_POINTS = 1 << 21  # mask pixels evaluated per chunk (about 300 MB of temporaries at K = 36)


@dataclasses.dataclass
class Detections:
    """The instances kept in one image, in network-input pixels."""

    boxes: Tensor  # (N, 4) x1 y1 x2 y2
    scores: Tensor  # (N,)
    labels: Tensor  # (N,) int64
    locations: Locations  # where on the pyramid each was found


@dataclasses.dataclass
class FixedDetections(Detections):
    """``slots`` detections of one image in decreasing score order, the valid ones first; the fields of the
    invalid slots hold some candidate's numbers and must be ignored."""

    valid: Tensor  # (slots,) bool


ValidSize = tuple[int, int] | Tensor  # (H, W) of the image inside the padded input: numbers, or a frame graph's input


def clip_to_valid(boxes: Tensor, valid_size: ValidSize) -> Tensor:
    """(N, 4) boxes clipped to the valid image; ``valid_size`` a (2,) tensor in a frame graph, which serves frames of
    every size (Max and Min against it: TensorRT's parser clips no tensor bounds)."""
    if not isinstance(valid_size, Tensor):
        return clip_boxes_to_image(boxes, valid_size)
    limits = valid_size.flip(0).to(boxes.dtype).repeat(2)  # (4,) W H W H
    return torch.minimum(torch.maximum(boxes, torch.zeros_like(limits)), limits)


def _candidates(outputs: PyramidOutputs, pyramid: Pyramid, image: int, valid_size: ValidSize,
                candidates_per_level: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """FCOS's candidates for one image: score = sqrt(sigmoid(class) * sigmoid(centerness)), the best
    ``candidates_per_level`` per level and then over all levels, in decreasing score order: boxes (K, 4)
    clipped to the valid image, scores (K,), labels (K,), pyramid locations (K,). A location whose centre lies in
    the padding, outside the valid image (a frame of another aspect than the input's leaves much of it), scores
    0: it sees no frame. Fixed shapes, no host sync."""
    boxes, scores, labels, locations = [], [], [], []
    # (L,) numbers or 0-d tensors compared: no copy from the host (a CUDA graph's capture allows none)
    inside = (pyramid.centres[:, 0] < valid_size[1]) & (pyramid.centres[:, 1] < valid_size[0])
    start = 0
    for level, (height, width) in enumerate(pyramid.sizes):  # five levels
        class_prob = torch.sigmoid(outputs.class_logits[level][image].flatten(1))  # (C, h*w)
        centerness = torch.sigmoid(outputs.centerness[level][image].flatten(1))  # (1, h*w)
        centerness = centerness * inside[start:start + height * width]
        level_scores = torch.sqrt(class_prob * centerness).t().flatten()  # (h*w*C,), location-major
        top = level_scores.topk(min(candidates_per_level, level_scores.numel()))
        num_classes = class_prob.shape[0]
        cell = top.indices // num_classes
        where = start + cell
        regression = outputs.box_regression[level][image].flatten(1).t()[cell]  # (k, 4)
        boxes.append(decode_boxes(regression, pyramid.centres[where], pyramid.strides[where]))
        scores.append(top.values)
        labels.append(top.indices % num_classes)
        locations.append(where)
        start += height * width
    all_scores = torch.cat(scores)
    # then the best candidates_per_level over all levels: NMS time grows with its input, and no more than
    # max_detections survive it anyway
    best = all_scores.topk(min(candidates_per_level, all_scores.numel())).indices
    return (clip_to_valid(torch.cat(boxes)[best], valid_size), all_scores[best], torch.cat(labels)[best],
            torch.cat(locations)[best])


def _detections(pyramid: Pyramid, image: int, boxes: Tensor, scores: Tensor, labels: Tensor, where: Tensor,
                chosen: Tensor) -> Detections:
    return Detections(boxes[chosen], scores[chosen], labels[chosen], Locations(
        torch.full_like(where[chosen], image), pyramid.level[where[chosen]], pyramid.y[where[chosen]],
        pyramid.x[where[chosen]]))


def _nms_groups(labels: Tensor, class_agnostic: bool) -> Tensor:
    """The groups NMS suppresses within: one for all (class-agnostic: one object, one detection, whatever
    classes compete for it) or one per class."""
    return torch.zeros_like(labels) if class_agnostic else labels


def select_detections(outputs: PyramidOutputs, pyramid: Pyramid, image: int, valid_size: tuple[int, int],
                      score_threshold: float, nms_threshold: float, max_detections: int,
                      candidates_per_level: int, *, class_agnostic: bool) -> Detections:
    """FCOS inference for one image: the candidates (``_candidates``) above the threshold, NMS (across classes
    or class-wise), the best ``max_detections``."""
    boxes, scores, labels, where = _candidates(outputs, pyramid, image, valid_size, candidates_per_level)
    above = torch.nonzero(scores > score_threshold).squeeze(1)
    keep = above[batched_nms(boxes[above].float(), scores[above].float(),
                             _nms_groups(labels[above], class_agnostic), nms_threshold)]
    return _detections(pyramid, image, boxes, scores, labels, where, keep[:max_detections])


def select_detections_fixed(outputs: PyramidOutputs, pyramid: Pyramid, image: int, valid_size: ValidSize,
                            score_threshold: float, nms_threshold: float, max_detections: int,
                            candidates_per_level: int, *, class_agnostic: bool) -> FixedDetections:
    """``select_detections`` with fixed shapes: ``max_detections`` slots, the valid ones first."""
    boxes, scores, labels, where = _candidates(outputs, pyramid, image, valid_size, candidates_per_level)
    slot, valid = greedy_nms_fixed(boxes, scores > score_threshold, _nms_groups(labels, class_agnostic),
                                   nms_threshold, max_detections)
    detections = _detections(pyramid, image, boxes, scores, labels, where, slot)
    return FixedDetections(detections.boxes, detections.scores, detections.labels, detections.locations, valid)


def greedy_nms_fixed(boxes: Tensor, candidate: Tensor, labels: Tensor, threshold: float, count: int
                     ) -> tuple[Tensor, Tensor]:
    """Greedy NMS within groups (``labels``) over (K, 4) boxes already in decreasing score order, of which
    ``candidate`` (K,) may be kept: the first ``count`` kept, as (count,) indices and (count,) validity (False
    once none is left).

    The same rule as torchvision's ``batched_nms`` (a box is dropped when its IoU with a kept box of the same
    group is above ``threshold``), taken one kept box at a time, ``count`` steps whatever the data: one
    (K, K) IoU matrix, then per step the first live box, whose row of the matrix removes its neighbours.
    """
    suppresses = (box_iou(boxes.float(), boxes.float()) > threshold) & (labels[:, None] == labels[None, :])
    suppresses |= torch.eye(boxes.shape[0], dtype=torch.bool, device=boxes.device)  # a kept box leaves the pool
    alive = candidate.clone()
    picks, valid = [], []
    for _ in range(count):  # detections_per_frame steps, the same number every frame
        # the first live box, the best one left; kept as a (1,) tensor: indexing with a 0-d tensor would read it
        # on the host. ArgMax of int32: TensorRT's ONNX parser takes no ArgMax of uint8 or bool
        pick = torch.argmax(alive.to(torch.int32), dim=0, keepdim=True)
        picks.append(pick)
        valid.append(alive.index_select(0, pick))
        alive = alive & ~suppresses.index_select(0, pick)[0]
    if not picks:
        return torch.zeros(0, dtype=torch.long, device=boxes.device), torch.zeros(0, dtype=torch.bool,
                                                                                   device=boxes.device)
    return torch.cat(picks), torch.cat(valid)


def pixel_spans(boxes: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """The pixels of an height x width image whose centres lie inside each (N, 4) box: (N, 2) first column and
    row, (N, 2) one past the last (equal to the first when the box misses the image)."""
    corners = torch.ceil(boxes - 0.5)  # the first centre >= x1, and one past the last centre < x2
    # clamped as floats (exact for these whole numbers): TensorRT's ONNX parser clips no int64
    columns, rows = corners[:, 0::2].clamp(0, width).long(), corners[:, 1::2].clamp(0, height).long()  # (N, 2)
    low = torch.stack((columns[:, 0], rows[:, 0]), dim=1)
    return low, torch.maximum(torch.stack((columns[:, 1], rows[:, 1]), dim=1), low)


def enumerate_counts(counts: Tensor) -> tuple[Tensor, Tensor]:
    """counts (n,) >= 0 -> for each of their sum(counts) items, in order: the entry it belongs to and its position
    within that entry. Nested, it enumerates the rows of rectangles and then the pixels of those rows, row-major,
    with no division per pixel."""
    owner = torch.repeat_interleave(torch.arange(counts.shape[0], device=counts.device), counts)
    first = torch.cumsum(counts, 0) - counts
    return owner, torch.arange(owner.shape[0], device=counts.device) - first[owner]


def _base_pixel(outputs: PyramidOutputs) -> float:
    """Input pixels per pixel of the base features F."""
    return outputs.image_size[1] / outputs.base.shape[-1]


def _grown_boxes(boxes: Tensor, base_pixel: float) -> Tensor:
    """Boxes in F pixels, grown by one F pixel on each side so that every output pixel inside the box has its
    four F neighbours in the block."""
    grown = boxes / base_pixel
    return torch.cat((grown[:, :2] - 1.0, grown[:, 2:] + 1.0), dim=1)


def _frame_to_base(pixels: Tensor, scale: float, base_pixel: float) -> Tensor:
    """Integer output pixel columns (or rows) -> their centres in F pixel units, where F pixel j has its centre
    at j."""
    return (pixels.float() + 0.5) * (scale / base_pixel) - 0.5


def _base_points(columns: Tensor, rows: Tensor, dtype: torch.dtype, base_pixel: float) -> Tensor:
    """Centres of F pixels (P,) columns and rows, in input pixels: (P, 2)."""
    return (torch.stack((columns, rows), dim=1) + 0.5).to(dtype) * base_pixel


def _at(values: Tensor, index: Tensor) -> Tensor:
    """``values[index]`` along the first dimension, through index_select: several times faster than advanced
    indexing on the CPU, and these gathers run once per mask pixel."""
    return values.index_select(0, index)


def _first(counts: Tensor) -> Tensor:
    """Where each of n consecutive runs of ``counts`` items starts."""
    return torch.cumsum(counts, 0) - counts


def _logits_at_base_pixels(model: SGNet, outputs: PyramidOutputs, attention: Tensor, boxes: Tensor, grids: Tensor,
                           batch: Tensor, instance: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """Eq. 2 at the centres of F pixels (u, v) (P,) for ``instance`` (P,) of the (N, 4) ``boxes``: (P,) float32.
    At a pixel centre the base features are F's value there (bilinear sampling would weigh its neighbours by 0)."""
    base_height, base_width = outputs.base.shape[-2:]
    table = outputs.base.permute(0, 2, 3, 1).reshape(-1, outputs.base.shape[1])  # (B * Hf * Wf, K)
    features = _at(table, (_at(batch, instance) * base_height + v) * base_width + u)  # (P, K)
    points = _base_points(u, v, boxes.dtype, _base_pixel(outputs))
    return model.blender(features, attention, boxes, grids, instance, points).float()


def _instance_groups(cost: Tensor, limit: int) -> list[Tensor]:
    """Consecutive instances in groups whose summed ``cost`` (N,) stays within ``limit`` (one instance over it goes
    alone): bounds the temporaries of mask pasting."""
    groups: list[list[int]] = []
    total = limit + 1
    for index, value in enumerate(cost.tolist()):  # one host sync; the loop is over instances, tens of them
        if total + value > limit:
            groups.append([])
            total = 0
        groups[-1].append(index)
        total += value
    return [torch.tensor(group, device=cost.device) for group in groups]


def mask_quality(kept_probability_sum: Tensor, kept_pixels: Tensor) -> Tensor:
    """Each mask's quality (N,) float32 in [0, 1] from (N,) sums over the pixels it keeps (probability > 0.5): the
    mean foreground probability over those pixels, SOLOv2's "maskness" (Wang et al., NeurIPS 2020: the class score
    times the mean of the soft mask over its pixels above 0.5 ranks sharp masks first); 0 for an empty mask."""
    return kept_probability_sum / torch.clamp(kept_pixels, min=1.0)


def paste_masks(model: SGNet, outputs: PyramidOutputs, detections: Detections, scale: float,
                output_size: tuple[int, int], slot_logits: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Masks of the detections at the output resolution, (N, H, W) bool, and their quality (N,) float32
    (``mask_quality``: the mean probability over each mask's pixels).

    ``scale`` maps output pixels to network-input pixels. The blender (Eq. 2) runs at the resolution of the
    base features F (H/2 x W/2 of the input, Section 3.2), on each mask region (the box grown by the model's
    ``mask_margin``, ``mask_regions``) grown by one F pixel into a block of F pixels, so that every output pixel
    inside the region has its four neighbours there; the logits are then bilinearly upsampled to the output
    pixels inside the region, and the mask is logit > 0 (probability 0.5). Zero outside the region. The
    sub-regions of Eq. 1-2 follow the box itself: a pixel of the margin takes the box's nearest cell. The
    upsampling is separable: along x for every row of the block at the box's output columns, then along y at the
    box's output pixels. The work grows with the boxes' area, not with the number
    of instances times the frame. ``slot_logits`` (N, h, w): the blender's logits at every F pixel, computed
    already (``slot_logits_fixed``, in a frame graph), read here instead of computed.
    """
    height, width = output_size
    count = detections.boxes.shape[0]
    device = detections.boxes.device
    masks = torch.zeros(count * height * width, dtype=torch.bool, device=device)
    kept_probability_sum = torch.zeros(count, dtype=torch.float32, device=device)  # (N,) over each mask's pixels
    kept_pixels = torch.zeros(count, dtype=torch.float32, device=device)  # (N,)
    if count == 0:
        return masks.view(count, height, width), mask_quality(kept_probability_sum, kept_pixels)
    base_height, base_width = outputs.base.shape[-2:]
    base_pixel = _base_pixel(outputs)
    regions = mask_regions(detections.boxes, model.config.mask_margin)
    block_low, block_high = pixel_spans(_grown_boxes(regions, base_pixel), base_height, base_width)
    out_low, out_high = pixel_spans(regions / scale, height, width)
    block, out = block_high - block_low, out_high - out_low  # (N, 2) columns and rows of F block and output box
    if slot_logits is None:
        attention = model.attention.scores_at(outputs.attention_towers, detections.locations)  # (N, G*G, K)
    grids = grid_sizes(detections.boxes, model.config.grid_cell_pixels, model.config.max_grid)  # (N, 2)
    cost = block[:, 0] * block[:, 1] + block[:, 1] * out[:, 0] + out[:, 0] * out[:, 1]
    for group in _instance_groups(cost, MAX_MASK_POINTS):
        b_low, b_size, o_low, o_size = block_low[group], block[group], out_low[group], out[group]
        # 1. logits at every F pixel of each block, row-major per block: block row i of box b starts at
        #    row_start[i] in the flat logits
        row_box, row = enumerate_counts(b_size[:, 1])
        pixel_row, column = enumerate_counts(_at(b_size[:, 0], row_box))
        instance = _at(row_box, pixel_row)
        u, v = _at(b_low[:, 0], instance) + column, _at(b_low[:, 1], instance) + _at(row, pixel_row)
        if slot_logits is None:
            logits = _logits_at_base_pixels(model, outputs, attention[group], detections.boxes[group], grids[group],
                                            detections.locations.batch[group], instance, u, v)
        else:
            logits = slot_logits[group][instance, v, u].float()
        row_start = _first(_at(b_size[:, 0], row_box))
        # 2. along x: every block row at every output column of its box; the x neighbours (clamped to the
        #    block) and weights of each output column first
        column_box, column = enumerate_counts(o_size[:, 0])
        fx = _frame_to_base(o_low[column_box, 0] + column, scale, base_pixel)
        x0 = fx.floor()
        wx = (fx - x0).clamp(0, 1)
        left, right = (torch.minimum((x.long() - b_low[column_box, 0]).clamp(min=0), b_size[column_box, 0] - 1)
                       for x in (x0, x0 + 1))
        x_row, x_column = enumerate_counts(_at(o_size[:, 0], row_box))
        which = _at(_at(_first(o_size[:, 0]), row_box), x_row) + x_column  # the output column of each element
        start = _at(row_start, x_row)
        along_x = (_at(logits, start + _at(left, which)) * _at(1 - wx, which)
                   + _at(logits, start + _at(right, which)) * _at(wx, which))
        along_x_start = _first(_at(o_size[:, 0], row_box))  # where block row i's stretch of along_x starts
        # 3. along y: every output pixel of each box from the two block rows around it
        out_box, out_row = enumerate_counts(o_size[:, 1])
        fy = _frame_to_base(o_low[out_box, 1] + out_row, scale, base_pixel)
        y0 = fy.floor()
        wy = (fy - y0).clamp(0, 1)
        top, bottom = (_at(along_x_start, _first(b_size[:, 1])[out_box] + torch.minimum(
            (y.long() - b_low[out_box, 1]).clamp(min=0), b_size[out_box, 1] - 1)) for y in (y0, y0 + 1))
        pixel, pixel_column = enumerate_counts(o_size[out_box, 0])
        value = (_at(along_x, _at(top, pixel) + pixel_column) * _at(1 - wy, pixel)
                 + _at(along_x, _at(bottom, pixel) + pixel_column) * _at(wy, pixel))
        target = (group[out_box] * height + o_low[out_box, 1] + out_row) * width + o_low[out_box, 0]
        kept = value > 0  # (P,) logit > 0: probability > 0.5
        masks[_at(target, pixel) + pixel_column] = kept
        owner = _at(group[out_box], pixel)  # (P,) the instance of each output pixel
        kept_probability_sum.index_add_(0, owner, torch.sigmoid(value) * kept)
        kept_pixels.index_add_(0, owner, kept.float())
    return masks.view(count, height, width), mask_quality(kept_probability_sum, kept_pixels)


def paste_masks_fixed(model: SGNet, outputs: PyramidOutputs, detections: FixedDetections, scale: float,
                      output_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """``paste_masks`` with fixed shapes: (slots, H, W) bool, False in the invalid slots, and (slots,) quality,
    0 in the invalid slots.

    The same numbers as paste_masks: the blender's logits at the centres of F pixels, bilinear at the output
    pixels inside each mask region from the four neighbours within the region's grown block. Here the logits are taken
    at every F pixel for every slot and the interpolation runs over the whole frame (separably: along x for
    every F row, then along y), with each slot's neighbours clamped to its block as paste_masks clamps them.
    Slots are processed in groups of a fixed size so that the temporaries stay near MAX_MASK_POINTS.
    """
    height, width = output_size
    slots = detections.boxes.shape[0]
    device = detections.boxes.device
    base_height, base_width = outputs.base.shape[-2:]
    base_pixel = _base_pixel(outputs)
    regions = mask_regions(detections.boxes, model.config.mask_margin)
    low, high = pixel_spans(_grown_boxes(regions, base_pixel), base_height, base_width)  # (S, 2) each
    # the block's last column and row, relative to low (Max, not Clip: TensorRT's parser clips no int64)
    last = torch.maximum(high - low - 1, torch.zeros_like(low))
    inside_low, inside_high = pixel_spans(regions / scale, height, width)
    logits = slot_logits_fixed(model, outputs, detections)  # (S, h, w)
    fx, fy = _frame_to_base(torch.arange(width, device=device), scale, base_pixel), _frame_to_base(
        torch.arange(height, device=device), scale, base_pixel)  # (W,), (H,)
    x0, y0 = fx.floor(), fy.floor()
    wx, wy = (fx - x0).clamp(0, 1), (fy - y0).clamp(0, 1)
    masks, qualities = [], []
    group = max(1, MAX_MASK_POINTS // max(base_height * base_width, height * width))
    for first in range(0, slots, group):  # a fixed number of groups of slots
        s = torch.arange(first, min(first + group, slots), device=device)
        n = s.shape[0]

        def neighbour(at: Tensor, axis: int) -> Tensor:  # (n, len(at)) F index clamped to each slot's block
            relative = at.long()[None, :] - low[s, axis, None]
            relative = torch.maximum(relative, torch.zeros_like(relative))
            return torch.minimum(relative, last[s, axis, None]) + low[s, axis, None]

        part = logits[first:first + n]  # (n, h, w)
        along_x = (part.gather(2, neighbour(x0, 0)[:, None, :].expand(n, base_height, width)) * (1 - wx)
                   + part.gather(2, neighbour(x0 + 1, 0)[:, None, :].expand(n, base_height, width)) * wx)
        top = along_x.gather(1, neighbour(y0, 1)[:, :, None].expand(n, height, width))
        bottom = along_x.gather(1, neighbour(y0 + 1, 1)[:, :, None].expand(n, height, width))
        value = top * (1 - wy[:, None]) + bottom * wy[:, None]  # (n, H, W)
        u, v = torch.arange(width, device=device), torch.arange(height, device=device)
        in_columns = (u[None, :] >= inside_low[s, 0, None]) & (u[None, :] < inside_high[s, 0, None])  # (n, W)
        in_rows = (v[None, :] >= inside_low[s, 1, None]) & (v[None, :] < inside_high[s, 1, None])  # (n, H)
        inside = in_rows[:, :, None] & in_columns[:, None, :] & detections.valid[s, None, None]
        kept = inside & (value > 0)  # (n, H, W)
        masks.append(kept)
        qualities.append(mask_quality((torch.sigmoid(value) * kept).sum(dim=(1, 2)), kept.sum(dim=(1, 2)).float()))
    if not masks:
        return torch.zeros((0, height, width), dtype=torch.bool, device=device), torch.zeros(0, device=device)
    return torch.cat(masks), torch.cat(qualities)


def slot_logits_fixed(model: SGNet, outputs: PyramidOutputs, detections: FixedDetections) -> Tensor:
    """The blender's logits (Eq. 2) at every F pixel for every slot, (S, h, w) float32, in groups of slots that
    keep the temporaries near MAX_MASK_POINTS: what ``paste_masks_fixed`` upsamples, and what a frame graph with
    masks "graph" outputs for the host to paste at the frame's own size (``paste_masks`` with ``slot_logits``)."""
    slots = detections.boxes.shape[0]
    device = detections.boxes.device
    base_height, base_width = outputs.base.shape[-2:]
    rows, columns = torch.meshgrid(torch.arange(base_height, device=device), torch.arange(base_width, device=device),
                                   indexing="ij")
    rows, columns = rows.flatten(), columns.flatten()  # every F pixel, row-major
    attention = model.attention.scores_at(outputs.attention_towers, detections.locations)  # (S, G*G, K)
    grids = grid_sizes(detections.boxes, model.config.grid_cell_pixels, model.config.max_grid)  # (S, 2)
    group = max(1, MAX_MASK_POINTS // rows.shape[0])
    logits = []
    for first in range(0, slots, group):  # a fixed number of groups of slots
        s = torch.arange(first, min(first + group, slots), device=device)
        n = s.shape[0]
        logits.append(_logits_at_base_pixels(model, outputs, attention, detections.boxes, grids,
                                             detections.locations.batch, s[:, None].expand(n, rows.shape[0]).flatten(),
                                             columns.repeat(n), rows.repeat(n)).view(n, base_height, base_width))
    return torch.cat(logits) if logits else torch.zeros((0, base_height, base_width), device=device)


@dataclasses.dataclass
class FrameTensors:
    """A frame's instances on the device, ready for one transfer to the host."""

    # (N, 10) float32: x1 y1 x2 y2 and movement dx dy in frame pixels, score, label, valid, mask quality
    # (mask_quality; the predictor multiplies it into the score with ModelConfig.mask_rescoring)
    numbers: Tensor
    masks: Tensor  # (N, H, W) bool at the frame's resolution


def frame_tensors(model: SGNet, config: ModelConfig, outputs: PyramidOutputs, pyramid: Pyramid,
                  previous_towers: list[Tensor], elapsed_s: Tensor, scale: float, valid_size: tuple[int, int],
                  output_size: tuple[int, int], fixed: bool) -> FrameTensors:
    """Everything the predictor needs from one image's pyramid outputs, with ``config``'s thresholds: detections
    (``fixed``: with fixed shapes, ``config.detections_per_frame`` slots), their masks at the frame's resolution
    and their movement since the frame whose regression towers are ``previous_towers``, ``elapsed_s`` (1,)
    seconds earlier (Section 3.3). ``scale`` maps frame pixels to input pixels."""
    select, paste = (select_detections_fixed, paste_masks_fixed) if fixed else (select_detections, paste_masks)
    detections = select(outputs, pyramid, 0, valid_size, config.score_threshold, config.nms_threshold,
                        config.detections_per_frame, config.candidates_per_level,
                        class_agnostic=config.class_agnostic_nms)
    with stage("masks"):
        masks, quality = paste(model, outputs, detections, scale, output_size)
    strides = 8 * 2 ** detections.locations.level.to(detections.boxes.dtype)  # a float Pow (TensorRT: no int64 Pow)
    motion = model.motion(outputs.regression_towers, previous_towers, detections.locations, elapsed_s)
    motion = motion * strides[:, None]
    valid = detections.valid if fixed else torch.ones_like(detections.scores, dtype=torch.bool)
    numbers = torch.cat((detections.boxes / scale, motion / scale, detections.scores[:, None],
                         detections.labels[:, None], valid[:, None], quality[:, None]), dim=1).float()
    return FrameTensors(numbers, masks)
