"""Feature-map locations (FCOS's points) and 3x3 convolutions evaluated only at chosen locations.

Several SG-Net outputs are needed only where an instance is: the attention scores (Section 3.2) and the
movement (Section 3.3). Evaluating their last 3x3 convolution densely over every location of P3..P7 would
cost more than the whole FCOS head; evaluating it at the N chosen locations gives the same numbers at a cost
proportional to N.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn


@dataclasses.dataclass
class Locations:
    """N chosen locations on the pyramid: which image, which level, which cell."""

    batch: Tensor  # (N,) int64
    level: Tensor  # (N,) int64, 0 = P3
    y: Tensor  # (N,) int64 row on that level
    x: Tensor  # (N,) int64 column on that level

    def __len__(self) -> int:
        return int(self.batch.numel())


def level_centres(height: int, width: int, stride: int, device: torch.device) -> Tensor:
    """Image coordinates of a level's locations, (h * w, 2) as (x, y), row-major.

    Location (i, j) sits at (j * stride, i * stride), torchvision FCOS's convention (its anchors are centred
    there), so that its COCO weights decode boxes correctly here.
    """
    ys = torch.arange(height, device=device, dtype=torch.float32) * stride
    xs = torch.arange(width, device=device, dtype=torch.float32) * stride
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((grid_x.reshape(-1), grid_y.reshape(-1)), dim=1)


def conv3x3_at(conv: nn.Conv2d, feature_maps: list[Tensor], locations: Locations) -> Tensor:
    """``conv(feature_maps[level])[batch, :, y, x]`` for every location, without the dense convolution.

    ``conv`` is a 3x3, stride 1, padding 1 convolution shared across levels. Returns (N, out_channels).
    The levels are flattened into one (B, sum h*w, C) table and the 3x3 neighbourhoods gathered from it with
    one index: no host sync and no shape that depends on the data, so it runs inside a CUDA graph.
    """
    weight = conv.weight.permute(0, 2, 3, 1).flatten(1)  # (out, 9 * C), ordered (ky, kx, C); no copy if NHWC
    table = torch.cat([fmap.permute(0, 2, 3, 1).flatten(1, 2) for fmap in feature_maps], dim=1)  # (B, L, C)
    height = torch.zeros_like(locations.level)
    width, start = torch.zeros_like(height), torch.zeros_like(height)
    first = 0
    for level, fmap in enumerate(feature_maps):  # five levels, not instances
        here = locations.level == level
        height = torch.where(here, fmap.shape[-2], height)
        width = torch.where(here, fmap.shape[-1], width)
        start = torch.where(here, first, start)
        first += fmap.shape[-2] * fmap.shape[-1]
    offsets = torch.arange(-1, 2, device=weight.device)
    ys = locations.y[:, None, None] + offsets[None, :, None]  # (N, 3, 1)
    xs = locations.x[:, None, None] + offsets[None, None, :]  # (N, 1, 3)
    h, w = height[:, None, None], width[:, None, None]
    inside = ((ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)).to(table.dtype)  # (N, 3, 3): zero padding
    zero = torch.zeros_like(ys[:1, :1, :1])  # Max with 0, not Clip: TensorRT's ONNX parser clips no int64
    cells = start[:, None, None] + torch.minimum(torch.maximum(ys, zero), h - 1) * w + torch.minimum(
        torch.maximum(xs, zero), w - 1)
    rows = (locations.batch[:, None, None] * table.shape[1] + cells).flatten()  # (N * 9,) rows of the table
    patches = table.flatten(0, 1).index_select(0, rows).view(len(locations), 3, 3, table.shape[-1])  # (N, 3, 3, C)
    out = ((patches * inside[..., None]).flatten(1) @ weight.t()).to(weight.dtype)  # autocast may give fp16
    if conv.bias is not None:
        out = out + conv.bias
    return out
