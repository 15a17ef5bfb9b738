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
    """FCOS inference for one image: score = sqrt(sigmoid(class) * sigmoid(centerness)), at most
    ``candidates_per_level`` above the threshold per level, class-wise NMS, the best ``max_detections``."""
    boxes, scores, labels, locations = [], [], [], []
    start = 0
    for level, (height, width) in enumerate(pyramid.sizes):
        count = height * width
        class_prob = torch.sigmoid(outputs.class_logits[level][image].flatten(1))  # (C, h*w)
        centerness = torch.sigmoid(outputs.centerness[level][image].flatten(1))  # (1, h*w)
        level_scores = torch.sqrt(class_prob * centerness).t().flatten()  # (h*w*C,), location-major
        keep = torch.nonzero(level_scores > score_threshold).squeeze(1)
        if keep.numel() > candidates_per_level:
            keep = keep[level_scores[keep].topk(candidates_per_level).indices]
        num_classes = class_prob.shape[0]
        cell = keep // num_classes
        where = start + cell
        regression = outputs.box_regression[level][image].flatten(1).t()[cell]  # (k, 4)
        boxes.append(decode_boxes(regression, pyramid.centres[where], pyramid.strides[where]))
        scores.append(level_scores[keep])
        labels.append(keep % num_classes)
        locations.append(where)
        start += count
    boxes_t = clip_boxes_to_image(torch.cat(boxes), valid_size)
    scores_t, labels_t, where_t = torch.cat(scores), torch.cat(labels), torch.cat(locations)
    keep = batched_nms(boxes_t.float(), scores_t.float(), labels_t, nms_threshold)[:max_detections]
    where_t = where_t[keep]
    return Detections(boxes_t[keep], scores_t[keep], labels_t[keep], Locations(
        torch.full_like(where_t, image), pyramid.level[where_t], pyramid.y[where_t], pyramid.x[where_t]))


def box_pixels(boxes: Tensor, height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """Every pixel whose centre lies inside each box, batched over boxes.

    boxes (N, 4) in pixels of an height x width image -> (instance (P,), u (P,), v (P,)) column and row.
    """
    low = torch.ceil(boxes[:, :2] - 0.5).long()  # first pixel with centre u + 0.5 >= x1
    high = torch.ceil(boxes[:, 2:] - 0.5).long()  # one past the last pixel with centre < x2
    low[:, 0].clamp_(0, width)
    low[:, 1].clamp_(0, height)
    high[:, 0].clamp_(0, width)
    high[:, 1].clamp_(0, height)
    extent = (high - low).clamp(min=0)  # (N, 2): columns, rows
    areas = extent[:, 0] * extent[:, 1]
    instance = torch.repeat_interleave(torch.arange(boxes.shape[0], device=boxes.device), areas)
    first = torch.cumsum(areas, 0) - areas
    index = torch.arange(instance.numel(), device=boxes.device) - first[instance]
    columns = extent[instance, 0]
    return instance, low[instance, 0] + index % columns, low[instance, 1] + index // columns


def paste_masks(model: SGNet, outputs: PyramidOutputs, detections: Detections, scale: float,
                output_size: tuple[int, int]) -> Tensor:
    """Masks of the detections at the output resolution: (N, H, W) bool.

    ``scale`` maps output pixels to network-input pixels. Each output pixel inside a box is evaluated by the
    blender (Eq. 2) on F bilinearly sampled at that pixel's centre, which equals upsampling the mask logits
    within a sub-region; the mask is logit > 0 (probability 0.5). The work grows with the boxes' area, not
    with the number of instances times the frame.
    """
    height, width = output_size
    count = detections.boxes.shape[0]
    masks = torch.zeros((count, height * width), dtype=torch.bool, device=detections.boxes.device)
    if count == 0:
        return masks.view(count, height, width)
    instance, u, v = box_pixels(detections.boxes / scale, height, width)
    for chunk in torch.split(torch.arange(instance.numel(), device=instance.device), MAX_MASK_POINTS):
        points = torch.stack((u[chunk] + 0.5, v[chunk] + 0.5), dim=1) * scale  # network-input pixels
        logits = model.mask_logits(outputs, detections.locations, detections.boxes, instance[chunk],
                                   points.to(detections.boxes.dtype))
        masks[instance[chunk], v[chunk] * width + u[chunk]] = logits > 0
    return masks.view(count, height, width)
