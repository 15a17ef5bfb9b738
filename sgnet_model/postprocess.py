"""From dense pyramid outputs to a frame's instances: score threshold, top-k, NMS, masks at the frame's
resolution."""
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor
from torchvision.ops import batched_nms, clip_boxes_to_image

from .locations import Locations
from .model import PyramidOutputs, SGNet, decode_boxes
from .targets import Pyramid

MAX_MASK_POINTS = 1 << 21  # mask pixels evaluated per chunk (about 300 MB of temporaries at K = 36)


@dataclasses.dataclass
class Detections:
    """The instances kept in one image, in network-input pixels."""

    boxes: Tensor  # (N, 4) x1 y1 x2 y2
    scores: Tensor  # (N,)
    labels: Tensor  # (N,) int64
    locations: Locations  # where on the pyramid each was found


def select_detections(outputs: PyramidOutputs, pyramid: Pyramid, image: int, valid_size: tuple[int, int],
                      score_threshold: float, nms_threshold: float, max_detections: int,
                      candidates_per_level: int) -> Detections:
    """FCOS inference for one image: score = sqrt(sigmoid(class) * sigmoid(centerness)), the best
    ``candidates_per_level`` per level and then over all levels, those above the threshold, class-wise NMS, the
    best ``max_detections``."""
    boxes, scores, labels, locations = [], [], [], []
    start = 0
    for level, (height, width) in enumerate(pyramid.sizes):  # five levels; no host sync inside the loop
        class_prob = torch.sigmoid(outputs.class_logits[level][image].flatten(1))  # (C, h*w)
        centerness = torch.sigmoid(outputs.centerness[level][image].flatten(1))  # (1, h*w)
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
    above = best[all_scores[best] > score_threshold]
    boxes_t = clip_boxes_to_image(torch.cat(boxes)[above], valid_size)
    scores_t, labels_t, where_t = torch.cat(scores)[above], torch.cat(labels)[above], torch.cat(locations)[above]
    keep = batched_nms(boxes_t.float(), scores_t.float(), labels_t, nms_threshold)[:max_detections]
    where_t = where_t[keep]
    return Detections(boxes_t[keep], scores_t[keep], labels_t[keep], Locations(
        torch.full_like(where_t, image), pyramid.level[where_t], pyramid.y[where_t], pyramid.x[where_t]))


@dataclasses.dataclass
class PixelBlocks:
    """For each box, the block of pixels whose centres lie inside it, enumerated flat over all boxes."""

    low: Tensor  # (N, 2) first column and row of each block
    extent: Tensor  # (N, 2) columns and rows of each block (0 when the box misses the image)
    first: Tensor  # (N,) position of each block's first pixel in the flat enumeration
    instance: Tensor  # (P,) which box
    u: Tensor  # (P,) column
    v: Tensor  # (P,) row


def box_pixels(boxes: Tensor, height: int, width: int) -> PixelBlocks:
    """Every pixel of an height x width image whose centre lies inside each (N, 4) box, batched over boxes,
    row-major within each box's block."""
    limit = torch.tensor([width, height], device=boxes.device)
    low = torch.minimum(torch.ceil(boxes[:, :2] - 0.5).long().clamp(min=0), limit)  # first centre >= x1
    high = torch.minimum(torch.ceil(boxes[:, 2:] - 0.5).long().clamp(min=0), limit)  # past the last centre < x2
    extent = (high - low).clamp(min=0)
    areas = extent[:, 0] * extent[:, 1]
    instance = torch.repeat_interleave(torch.arange(boxes.shape[0], device=boxes.device), areas)
    first = torch.cumsum(areas, 0) - areas
    index = torch.arange(instance.numel(), device=boxes.device) - first[instance]
    columns = extent[instance, 0]
    return PixelBlocks(low, extent, first, instance, low[instance, 0] + index % columns,
                       low[instance, 1] + index // columns)


def paste_masks(model: SGNet, outputs: PyramidOutputs, detections: Detections, scale: float,
                output_size: tuple[int, int]) -> Tensor:
    """Masks of the detections at the output resolution: (N, H, W) bool.

    ``scale`` maps output pixels to network-input pixels. The blender (Eq. 2) runs at the resolution of the
    base features F (H/2 x W/2 of the input, Section 3.2), on each box grown by one F pixel so that every
    output pixel has its four neighbours; the logits are then bilinearly upsampled to the output pixels
    inside the box, and the mask is logit > 0 (probability 0.5). Zero outside the box. The work grows with
    the boxes' area, not with the number of instances times the frame.
    """
    height, width = output_size
    count = detections.boxes.shape[0]
    masks = torch.zeros((count, height * width), dtype=torch.bool, device=detections.boxes.device)
    if count == 0:
        return masks.view(count, height, width)
    base_height, base_width = outputs.base.shape[-2:]
    base_pixel = outputs.image_size[1] / base_width  # input pixels per F pixel
    grown = detections.boxes / base_pixel + torch.tensor([-1.0, -1.0, 1.0, 1.0], device=detections.boxes.device)
    low_res = box_pixels(grown, base_height, base_width)
    logits = torch.cat([
        model.mask_logits(outputs, detections.locations, detections.boxes, instance,
                          (torch.stack((u, v), dim=1) + 0.5).to(detections.boxes.dtype) * base_pixel).float()
        for instance, u, v in zip(*(torch.split(t, MAX_MASK_POINTS) for t in (
            low_res.instance, low_res.u, low_res.v)))])
    full_res = box_pixels(detections.boxes / scale, height, width)
    for instance, u, v in zip(*(torch.split(t, MAX_MASK_POINTS) for t in (full_res.instance, full_res.u,
                                                                           full_res.v))):
        # the output pixel's centre in F pixel units, where F pixel (i, j) has its centre at (j, i)
        fx = (u.float() + 0.5) * (scale / base_pixel) - 0.5
        fy = (v.float() + 0.5) * (scale / base_pixel) - 0.5
        masks[instance, v * width + u] = _bilinear_in_blocks(logits, low_res, instance, fx, fy) > 0
    return masks.view(count, height, width)


def _bilinear_in_blocks(values: Tensor, blocks: PixelBlocks, instance: Tensor, fx: Tensor, fy: Tensor) -> Tensor:
    """Bilinear interpolation at (fx, fy) of each point's own block of ``values`` (a flat PixelBlocks list)."""
    low, extent, first = blocks.low[instance], blocks.extent[instance], blocks.first[instance]
    x0, y0 = fx.floor(), fy.floor()
    wx, wy = (fx - x0).clamp(0, 1), (fy - y0).clamp(0, 1)

    def at(x: Tensor, y: Tensor) -> Tensor:
        column = (x.long() - low[:, 0]).clamp(min=0).minimum(extent[:, 0] - 1)
        row = (y.long() - low[:, 1]).clamp(min=0).minimum(extent[:, 1] - 1)
        return values[first + row * extent[:, 0] + column]

    top = at(x0, y0) * (1 - wx) + at(x0 + 1, y0) * wx
    bottom = at(x0, y0 + 1) * (1 - wx) + at(x0 + 1, y0 + 1) * wx
    return top * (1 - wy) + bottom * wy
