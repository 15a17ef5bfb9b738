"""SG-Net's tracking head (paper, Section 3.3): the centerness movement D = o_t - o_p since the previous frame.

The paper appends a 1x1 convolution after FCOS's centerness branch. Movement from one frame alone is
ill-posed (a head seeing only frame t cannot know where the object was), so the head also sees the previous
frame's regression-tower features at the same place: a 3x3 convolution over [tower_t, tower_p], ReLU, then the
1x1 convolution to the two movement components, in units of the level's stride. Both are evaluated only at the
locations of instances (locations.py); while streaming, the previous tower features are cached, so no frame
goes through the backbone twice.

Time: the previous frame is not always 1/6 s back. YouTube-VIS annotates every 5th frame of 30 fps footage, a
robot's camera runs at 30 Hz, and a loaded node processes only some of the frames it receives. So the head is
told the real elapsed time t - p (seconds, in units of ELAPSED_UNIT_S): a learned vector times the elapsed time
is added to the hidden features before the ReLU. The pair of feature maps shows how far the object moved; the
elapsed time conditions the hidden units on how far it can have moved (large displacements at long gaps, near
zero at 30 Hz) instead of the head learning one mean speed per annotation interval. Training feeds it the real
times: clip frames carry the times their file names give (ytvis.frame_times) and clips skip a random number of
annotated frames (``DataConfig.max_frame_gap``), so the head sees a range of elapsed times, and Eq. 4's target
is the movement over that time. A movement divided by its elapsed time is the velocity the tracker moves lost
tracks by.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from sgnet_model.config import ModelConfig
from sgnet_model.network.locations import Locations, conv3x3_at

ELAPSED_UNIT_S = 1.0 / 6.0  # the elapsed time is fed in units of YouTube-VIS's annotation interval


class MotionHead(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.pair = nn.Conv2d(2 * config.fpn_channels, config.motion_hidden_channels, 3, padding=1)
        self.elapsed = nn.Linear(1, config.motion_hidden_channels, bias=False)  # the elapsed time's share
        self.movement = nn.Linear(config.motion_hidden_channels, 2)  # the 1x1 convolution, at chosen points
        for layer in (self.pair, self.elapsed, self.movement):
            nn.init.normal_(layer.weight, std=0.01)
        nn.init.zeros_(self.pair.bias)
        nn.init.zeros_(self.movement.bias)

    def forward(self, towers: list[Tensor], previous_towers: list[Tensor], locations: Locations,
                elapsed_s: Tensor) -> Tensor:
        """towers, previous_towers: per level (B, C, h, w) regression-tower features of frames t and p;
        elapsed_s: (B,) seconds from frame p to frame t of each image. Returns (N, 2): movement (dx, dy) from p to
        t at each location, in strides of its level."""
        pairs = [torch.cat((now, before), dim=1) for now, before in zip(towers, previous_towers)]
        hidden = conv3x3_at(self.pair, pairs, locations)  # (N, hidden)
        elapsed = (elapsed_s[locations.batch] / ELAPSED_UNIT_S).to(hidden.dtype)[:, None]  # (N, 1)
        return self.movement(torch.relu(hidden + self.elapsed(elapsed)))
