"""FCOS target assignment with centre sampling (Tian et al., FCOS; the detection part of SG-Net).

A location (x, y) of level l with stride s is a positive for ground-truth box b when
- it lies inside b (all of l*, t*, r*, b* > 0),
- it lies within radius * s of b's centre in both x and y (centre sampling, radius 1.5),
- max(l*, t*, r*, b*) falls in the level's range (m_{l-1}, m_l], m = 0, 64, 128, 256, 512, inf for P3..P7.
A location that qualifies for several boxes takes the one of smallest area.
"""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from sgnet_model.network.locations import level_centres

# The FCOS paper's regression ranges for P3..P7, in input pixels.
LEVEL_RANGES: tuple[tuple[float, float], ...] = ((0, 64), (64, 128), (128, 256), (256, 512), (512, math.inf))


@dataclasses.dataclass
class Pyramid:
    """All locations of P3..P7 for one padded input size, concatenated level by level, row-major."""

    centres: Tensor  # (L, 2) x, y in input pixels
    strides: Tensor  # (L,) float
    level: Tensor  # (L,) int64
    y: Tensor  # (L,) int64 row on its level
    x: Tensor  # (L,) int64 column on its level
    ranges: Tensor  # (L, 2) the level's regression range
    sizes: list[tuple[int, int]]  # (h, w) per level

    @staticmethod
    def build(sizes: list[tuple[int, int]], strides: tuple[int, ...], device: torch.device) -> "Pyramid":
        parts: dict[str, list[Tensor]] = {k: [] for k in ("centres", "strides", "level", "y", "x", "ranges")}
        for level, ((height, width), stride) in enumerate(zip(sizes, strides)):
            count = height * width
            cells = torch.arange(count, device=device)
            parts["centres"].append(level_centres(height, width, stride, device))
            parts["strides"].append(torch.full((count,), float(stride), device=device))
            parts["level"].append(torch.full((count,), level, device=device, dtype=torch.long))
            parts["y"].append(cells // width)
            parts["x"].append(cells % width)
            low, high = LEVEL_RANGES[level]
            parts["ranges"].append(torch.stack((torch.full((count,), low, device=device),
                                                torch.full((count,), high, device=device)), dim=1))
        return Pyramid(**{k: torch.cat(v) for k, v in parts.items()}, sizes=list(sizes))


def assign_locations(boxes: Tensor, pyramid: Pyramid, radius: float) -> Tensor:
    """boxes (n, 4) x1 y1 x2 y2 -> (L,) int64: the index of the box each location regresses, -1 for background."""
    if boxes.numel() == 0:
        return torch.full((pyramid.centres.shape[0],), -1, dtype=torch.long, device=pyramid.centres.device)
    x, y = pyramid.centres[:, 0:1], pyramid.centres[:, 1:2]  # (L, 1)
    ltrb = torch.stack((x - boxes[:, 0], y - boxes[:, 1], boxes[:, 2] - x, boxes[:, 3] - y), dim=2)  # (L, n, 4)
    inside = ltrb.min(dim=2).values > 0
    box_centres = (boxes[:, :2] + boxes[:, 2:]) / 2  # (n, 2)
    offset = (pyramid.centres[:, None, :] - box_centres[None]).abs().max(dim=2).values  # (L, n)
    near_centre = offset < radius * pyramid.strides[:, None]
    extent = ltrb.max(dim=2).values
    in_range = (extent > pyramid.ranges[:, 0:1]) & (extent <= pyramid.ranges[:, 1:2])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # (n,)
    candidate_area = torch.where(inside & near_centre & in_range, areas[None, :], torch.full_like(extent, math.inf))
    smallest, index = candidate_area.min(dim=1)
    return torch.where(torch.isfinite(smallest), index, torch.full_like(index, -1))


def regression_targets(centres: Tensor, boxes: Tensor) -> Tensor:
    """Distances (l*, t*, r*, b*) from locations (n, 2) to their boxes (n, 4): (n, 4)."""
    return torch.cat((centres - boxes[:, :2], boxes[:, 2:] - centres), dim=1)


def centerness_targets(ltrb: Tensor) -> Tensor:
    """FCOS centerness sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b)) for (n, 4) distances: (n,)."""
    left_right, top_bottom = ltrb[:, 0::2], ltrb[:, 1::2]
    ratio = (left_right.min(dim=1).values / left_right.max(dim=1).values) * (
        top_bottom.min(dim=1).values / top_bottom.max(dim=1).values)
    return ratio.clamp(min=0).sqrt()
