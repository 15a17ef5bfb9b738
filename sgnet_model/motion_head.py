"""SG-Net's tracking head (paper, Section 3.3): the centerness movement D = o_t - o_{t-1}.

The paper appends a 1x1 convolution after FCOS's centerness branch. Movement from one frame alone is
ill-posed (a head seeing only frame t cannot know where the object was), so the head also sees the previous
frame's regression-tower features at the same place: a 3x3 convolution over [tower_t, tower_{t-1}], ReLU,
then the 1x1 convolution to the two movement components, in units of the level's stride. Both are evaluated
only at the locations of instances (locations.py); while streaming, the previous tower features are cached,
so no frame goes through the backbone twice.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import ModelConfig
from .locations import Locations, conv3x3_at


class MotionHead(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.pair = nn.Conv2d(2 * config.fpn_channels, config.motion_hidden_channels, 3, padding=1)
        self.movement = nn.Linear(config.motion_hidden_channels, 2)  # the 1x1 convolution, at chosen points
        nn.init.normal_(self.pair.weight, std=0.01)
        nn.init.zeros_(self.pair.bias)
        nn.init.normal_(self.movement.weight, std=0.01)
        nn.init.zeros_(self.movement.bias)

    def forward(self, towers: list[Tensor], previous_towers: list[Tensor], locations: Locations) -> Tensor:
        """towers, previous_towers: per level (B, C, h, w) regression-tower features of frames t and t-1.
        Returns (N, 2): movement (dx, dy) at each location, in strides of its level."""
        pairs = [torch.cat((now, before), dim=1) for now, before in zip(towers, previous_towers)]
        hidden = torch.relu(conv3x3_at(self.pair, pairs, locations))
        return self.movement(hidden)
