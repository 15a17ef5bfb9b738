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
    """
    weight = conv.weight.permute(0, 2, 3, 1).flatten(1)  # (out, 9 * C), ordered (ky, kx, C); no copy if NHWC
    offsets = torch.arange(-1, 2, device=weight.device)
    order = torch.argsort(locations.level, stable=True)  # locations grouped by level
    counts = torch.bincount(locations.level, minlength=len(feature_maps)).tolist()  # the one host sync
    results = []
    for fmap, chosen in zip(feature_maps, torch.split(order, counts)):  # five levels, not instances
        if chosen.numel() == 0:
            continue
        height, width = fmap.shape[-2:]
        b = locations.batch[chosen][:, None, None]
        ys = locations.y[chosen][:, None, None] + offsets[None, :, None]  # (n, 3, 1)
        xs = locations.x[chosen][:, None, None] + offsets[None, None, :]  # (n, 1, 3)
        inside = ((ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)).to(fmap.dtype)  # (n, 3, 3): zero padding
        patches = fmap[b, :, ys.clamp(0, height - 1), xs.clamp(0, width - 1)]  # (n, 3, 3, C)
        results.append((patches * inside[..., None]).flatten(1) @ weight.t())  # (n, out)
    out = weight.new_empty((len(locations), weight.shape[0]))
    if results:
        out[order] = torch.cat(results).to(out.dtype)  # autocast may compute the products in fp16
    if conv.bias is not None:
        out = out + conv.bias
    return out
