"""SG-Net's mask head (paper, Section 3.2): spatial attention module, base mask module, granularity blender.

Reading of Eq. 2 (docs/model.md): an instance's box is split into r1 x r2 sub-regions (Eq. 1). Every pixel p inside
the box lies in exactly one sub-region j, and its mask value is sigmoid(a_j . F(p)): the base features F at p
combined by a 1x1 dynamic convolution whose weights a_j are the attention scores of sub-region j. Outside the
mask region (the box grown by ``mask_margin``, ``mask_regions``) the mask is zero; a pixel of the margin takes
the cell of the box nearest to it. The attention head predicts scores for a fixed max_grid x max_grid layout of
sub-regions; an instance with a coarser r1 x r2 grid uses, for its sub-region (row, col), the layout cell at
the same relative position (the cell containing the sub-region's centre), so that a slot always means the
same part of an object whatever its size.

Everything is evaluated on points (an instance index and image coordinates per point), so training and
inference share one function and no Python loop runs over instances.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sgnet_model.config import ModelConfig
from sgnet_model.network.locations import Locations, conv3x3_at


def grid_sizes(boxes: Tensor, cell_pixels: float, max_grid: int) -> Tensor:
    """Eq. 1: r1, r2 = min(6, ceil(w / 50)), min(6, ceil(h / 50)), w and h in input pixels.

    boxes (N, 4) x1 y1 x2 y2 -> (N, 2) int64 (r1 columns, r2 rows), at least 1 each.
    """
    sides = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0)  # (N, 2): w, h
    return torch.ceil(sides / cell_pixels).clamp(1, max_grid).long()  # clamped as floats: TensorRT clips no int64


def mask_regions(boxes: Tensor, margin: float) -> Tensor:
    """Where a mask may be non-zero: each (N, 4) box grown by ``margin`` of its width and height on each side
    (ModelConfig.mask_margin), so that a predicted box a little too tight does not cut its mask."""
    grow = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0) * margin  # (N, 2)
    return torch.cat((boxes[:, :2] - grow, boxes[:, 2:] + grow), dim=1)


class SpatialAttentionHead(nn.Module):
    """Two 3x3 convolutions on each of P3..P7 predicting, per location, the attention scores of every
    sub-region of a max_grid x max_grid layout: (max_grid^2, base_channels) numbers.

    The first convolution runs densely; the second only at the locations of instances (see locations.py).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        channels = config.fpn_channels
        self.max_grid = config.max_grid
        self.base_channels = config.base_channels
        self.tower = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.GroupNorm(32, channels),
                                   nn.ReLU())
        self.scores = nn.Conv2d(channels, config.max_grid ** 2 * config.base_channels, 3, padding=1)
        for conv in (self.tower[0], self.scores):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        return [self.tower(f) for f in features]

    def scores_at(self, towers: list[Tensor], locations: Locations) -> Tensor:
        """Attention scores at the given locations: (N, max_grid^2, base_channels)."""
        return conv3x3_at(self.scores, towers, locations).view(len(locations), self.max_grid ** 2,
                                                              self.base_channels)


class BaseMaskBranch(nn.Module):
    """The base features F (Section 3.2): P3..P5 upsampled to P3, concatenated, two 3x3 convs, then down to K
    channels and bilinearly upsampled: F is at H/2 x W/2 of the (padded) input with the default x4.

    Mask detail (docs/model.md): Eq. 2 is linear in F, and a linear map commutes with bilinear upsampling, so
    with the paper's branch every mask logit is an interpolation of a stride-8 grid. With base_detail_stride 4
    the P3-level features are upsampled x2, added to a 1x1 lateral of ResNet's stride-4 C2 and passed through a
    3x3 conv with GroupNorm and ReLU before the projection to K channels (a bottom module in the manner of
    BlendMask's and CondInst's mask branches): boundaries are placed at stride 4, not interpolated from stride 8.
    """

    def __init__(self, config: ModelConfig, detail_channels: int) -> None:
        super().__init__()
        hidden = config.base_hidden_channels
        self.levels = config.base_levels
        self.upsample = config.base_upsample
        self.fuse = nn.Sequential(
            nn.Conv2d(config.fpn_channels * config.base_levels, hidden, 3, padding=1), nn.GroupNorm(32, hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.GroupNorm(32, hidden), nn.ReLU(),
        )
        self.detail_lateral: nn.Module | None = None
        self.refine: nn.Module | None = None
        if config.base_detail_stride == 4:
            self.detail_lateral = nn.Conv2d(detail_channels, hidden, 1)
            self.refine = nn.Sequential(nn.Conv2d(hidden, hidden, 3, padding=1), nn.GroupNorm(32, hidden), nn.ReLU())
        self.project = nn.Conv2d(hidden, config.base_channels, 1)

    def forward(self, features: list[Tensor], detail: Tensor) -> Tensor:
        """features: P3..P7 (B, c, H / s, W / s); detail: C2 (B, c2, H / 4, W / 4). Returns F (B, K, .)."""
        p3 = features[0]
        size = p3.shape[-2:]
        stacked = [p3] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False)
                          for f in features[1:self.levels]]
        fused = self.fuse(torch.cat(stacked, dim=1))  # (B, hidden, H/8, W/8)
        upsample = self.upsample
        if self.refine is not None:
            fused = F.interpolate(fused, size=detail.shape[-2:], mode="bilinear", align_corners=False)
            fused = self.refine(fused + self.detail_lateral(detail))  # (B, hidden, H/4, W/4)
            upsample //= 2
        base = self.project(fused)
        if upsample == 1:
            return base
        return F.interpolate(base, scale_factor=upsample, mode="bilinear", align_corners=False)


def sample_base_features(base: Tensor, image_size: tuple[int, int], batch_of_point: Tensor,
                         points: Tensor) -> Tensor:
    """Bilinear samples of F at image points.

    base (B, K, Hf, Wf) covers the padded image of image_size (H, W); points (P, 2) as (x, y) in image
    pixels, continuous (a pixel's centre is at +0.5); batch_of_point (P,). Returns (P, K). The same numbers as
    ``F.grid_sample(mode="bilinear", padding_mode="border", align_corners=False)``, gathered from a
    channels-last view of F for all images at once (no loop over images, no host sync).
    """
    height, width = image_size
    base_height, base_width = base.shape[-2:]
    table = base.permute(0, 2, 3, 1).reshape(-1, base.shape[1])  # (B * Hf * Wf, K); no copy when F is channels-last
    # F pixel j has its centre at image (j + 0.5) * W / Wf; border padding clamps to the outer centres
    x = (points[:, 0].float() * (base_width / width) - 0.5).clamp(0, base_width - 1)
    y = (points[:, 1].float() * (base_height / height) - 0.5).clamp(0, base_height - 1)
    x0, y0 = x.floor(), y.floor()
    wx, wy = (x - x0).to(base.dtype)[:, None], (y - y0).to(base.dtype)[:, None]
    left, top = x0.long(), y0.long()
    right, bottom = (x0 + 1).clamp(max=base_width - 1).long(), (y0 + 1).clamp(max=base_height - 1).long()
    first = batch_of_point * (base_height * base_width)

    def at(row: Tensor, column: Tensor) -> Tensor:  # (P, K) rows of the table: index_select, the fast gather
        return table.index_select(0, first + row * base_width + column)

    upper = at(top, left) * (1 - wx) + at(top, right) * wx
    lower = at(bottom, left) * (1 - wx) + at(bottom, right) * wx
    return upper * (1 - wy) + lower * wy


class GranularityBlender(nn.Module):
    """Eq. 2: M^i(p) = sigmoid(a^i_j . F(p)) for the sub-region j of instance i that contains p.

    The module returns logits; sigmoid (or a threshold at 0, i.e. probability 0.5) is applied by the caller.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.max_grid = config.max_grid

    def forward(self, point_features: Tensor, attention: Tensor, boxes: Tensor, grids: Tensor,
                instance_of_point: Tensor, points: Tensor) -> Tensor:
        """point_features (P, K): F at each point; attention (N, G*G, K); boxes (N, 4) in image pixels;
        grids (N, 2) the (r1, r2) of Eq. 1; instance_of_point (P,); points (P, 2) (x, y) inside their box.
        Returns (P,) mask logits."""
        box = boxes.index_select(0, instance_of_point)  # (P, 4)
        grid = grids.index_select(0, instance_of_point)  # (P, 2): r1 columns, r2 rows
        size = (box[:, 2:] - box[:, :2]).clamp(min=1e-6)
        relative = ((points - box[:, :2]) / size).clamp(0.0, 1.0 - 1e-6)  # (P, 2) in [0, 1)
        cell = torch.minimum((relative * grid).floor().long(), grid - 1)  # (P, 2) sub-region column, row
        # The layout cell that holds the centre of sub-region (col, row) of an r1 x r2 grid.
        slot = ((cell.to(relative.dtype) + 0.5) * self.max_grid / grid).floor().long()  # (P, 2)
        slot_index = slot[:, 1] * self.max_grid + slot[:, 0]  # (P,)
        weights = attention.flatten(0, 1).index_select(0, instance_of_point * attention.shape[1] + slot_index)  # (P, K)
        return (point_features * weights).sum(dim=1)
