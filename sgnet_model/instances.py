"""What the streaming predictor hands to everything downstream: tracked instances of one frame."""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class TrackedInstance:
    """One tracked object in one frame, in the pixel coordinates of the frame that went in."""

    track_id: int  # >= 1, never reused within a predictor's life
    class_id: int  # 0-based index into the model's class_names
    class_name: str
    score: float  # detection score in [0, 1]
    box: np.ndarray  # (4,) float32: x1, y1, x2, y2
    mask: np.ndarray  # (H, W) bool, the frame's full resolution
    centre: np.ndarray  # (2,) float32: x, y of the centerness location o_t
    motion: np.ndarray  # (2,) float32: predicted movement D = o_t - o_{t-1} in pixels (Eq. 4)


@dataclasses.dataclass
class FrameResult:
    """The predictor's answer for one frame."""

    timestamp: float  # the timestamp that came in with the frame, seconds
    instances: list[TrackedInstance]
    inference_ms: float  # the predictor's own time for this frame: preprocessing, network, post-processing, tracking
    tracks_reset: bool  # True when the tracks were reset before this frame (first frame, stamp jump or gap)
