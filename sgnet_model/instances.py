"""What the streaming predictor hands to everything downstream: tracked instances of one frame."""
from __future__ import annotations

import dataclasses

import numpy as np

from sgnet_model.inference.uncertainty import FrameUncertainty


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
    # True: no detection in this frame; the track's last detected instance moved to where the tracker expects the
    # object (TrackerConfig.fill_gaps_s)
    predicted: bool = False


def moved(instance: TrackedInstance, centre: np.ndarray, motion: np.ndarray) -> TrackedInstance:
    """``instance`` carried over a gap: its centre moved to ``centre`` (2,) by a whole-pixel offset, the box and
    the mask with it (mask pixels pushed out of the frame are lost, the box is clipped to it), ``motion`` (2,) the
    movement since the previous frame, marked ``predicted``."""
    height, width = instance.mask.shape
    dx, dy = np.clip(np.rint(centre - instance.centre).astype(int), (-width, -height), (width, height))
    mask = np.zeros_like(instance.mask)
    mask[max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] = \
        instance.mask[max(-dy, 0):height - max(dy, 0), max(-dx, 0):width - max(dx, 0)]
    offset = np.array([dx, dy], np.float32)
    box = np.clip(instance.box + np.tile(offset, 2), 0, np.array([width, height] * 2, np.float32))
    return dataclasses.replace(instance, box=box.astype(np.float32), mask=mask, centre=instance.centre + offset,
                               motion=np.asarray(motion, np.float32), predicted=True)


@dataclasses.dataclass
class FrameResult:
    """The predictor's answer for one frame."""

    timestamp: float  # the timestamp that came in with the frame, seconds
    instances: list[TrackedInstance]
    inference_ms: float  # the predictor's own time for this frame: preprocessing, network, post-processing, tracking
    tracks_reset: bool  # True when the tracks were reset before this frame (first frame, stamp jump or gap)
    # events that make an error in this frame likely (sgnet_model/inference/uncertainty.py, docs/flywheel.md)
    uncertainty: FrameUncertainty = FrameUncertainty()
