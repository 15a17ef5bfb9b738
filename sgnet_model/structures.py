"""Training inputs: what the datasets produce and the model's loss computation consumes."""
from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass
class FrameTargets:
    """Ground truth of one frame, in the pixels of the frame as resized for the network (before padding)."""

    boxes: torch.Tensor  # (n, 4) float32: x1, y1, x2, y2
    labels: torch.Tensor  # (n,) int64: 0-based class index
    masks: torch.Tensor  # (n, h, w) uint8 in {0, 1}: h, w of the resized frame
    track_ids: torch.Tensor  # (n,) int64: the object's id within its video, the same in every frame

    def to(self, device: torch.device | str) -> "FrameTargets":
        return FrameTargets(*(getattr(self, f.name).to(device) for f in dataclasses.fields(self)))


@dataclasses.dataclass
class ClipBatch:
    """A batch of short clips (sampled frames of one video each, in time order), padded to one size.

    Frame t of a clip comes after frame t-1 (by ``frame_times``), so the motion loss (Eq. 4) is taken on frames
    1..T-1 over the real time between them.
    """

    images: torch.Tensor  # (B, T, 3, H, W) uint8 RGB, H and W multiples of 32, zero padding at bottom/right
    targets: list[list[FrameTargets]]  # B lists of T frames
    frame_times: torch.Tensor  # (B, T) float32: seconds from the clip's first frame (ytvis.frame_times)

    def to(self, device: torch.device | str) -> "ClipBatch":
        return ClipBatch(self.images.to(device, non_blocking=True),
                         [[t.to(device) for t in clip] for clip in self.targets], self.frame_times.to(device))
