"""A mask-IoU tracker with persistence: links a per-frame instance segmenter's masks into tracks (sgnet-peer-bench
links Mask R-CNN's this way).

Per frame, detections best score first each take the free live track, of the same class, whose last mask overlaps
theirs most, if that mask IoU is at least ``iou_threshold`` (0.5); a detection that finds none starts a new track.
With ``match_across_classes`` (as SG-Net's robot profile has it) the class is not compared. Persistence, as SG-Net's
tracker has it in seconds (``max_lost_s``), here in frames: a track left unmatched in up to ``max_lost_frames``
frames in a row stays live and can be continued by an object that reappears over its last mask (no motion model:
the mask stays where it was last seen); one more unmatched frame ends it. ``max_lost_frames = 0``: only the
previous frame's tracks can be continued (a plain IoU tracker). Two score gates, as SG-Net's tracker profiles have
them: a detection under ``continue_score`` is left out, and starting a track needs ``new_track_score``. With both at
0 every detection is tracked. IDs start at 1 and are never reused (``reset()`` keeps the counter); 0 means "no
track".

A track's video-level score is the mean of its detections' scores: that is what
:func:`sgnet_model.data.ytvis.build_video_results` makes of the per-frame instances.
"""
from __future__ import annotations

import math

import numpy as np

from sgnet_model.inference.tracker import greedy_assign

MATCH_IOU = 0.5


def mask_iou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(N, M) IoU of the masks (N, H, W) and (M, H, W); 0 where both are empty."""
    pixels = int(np.prod(first.shape[1:]))
    a = first.reshape(len(first), pixels).astype(np.float32)  # (N, HW)
    b = second.reshape(len(second), pixels).astype(np.float32)  # (M, HW)
    intersection = a @ b.T  # (N, M)
    union = a.sum(axis=1)[:, None] + b.sum(axis=1)[None, :] - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def lost_frames(max_lost_s: float, fps: float) -> int:
    """SG-Net's persistence ``max_lost_s`` as :class:`MaskIoUTracker`'s ``max_lost_frames`` at ``fps`` frames a
    second. SG-Net continues a track up to ``max_lost_s`` after its last match: at the frames k = 1 ..
    floor(max_lost_s * fps) after it (k = 1 always), so up to floor(max_lost_s * fps) - 1 frames in between go
    unmatched. 2.5 s at the synthetic set's 6 frames a second: 14."""
    return max(0, math.floor(max_lost_s * fps + 1e-9) - 1)


class MaskIoUTracker:
    """Greedy linking of each frame's masks to the live tracks' last masks by mask IoU."""

    def __init__(self, new_track_score: float = 0.0, continue_score: float = 0.0,
                 iou_threshold: float = MATCH_IOU, match_across_classes: bool = False,
                 max_lost_frames: int = 0) -> None:
        if not 0.0 <= continue_score <= new_track_score <= 1.0:
            raise ValueError(f"MaskIoUTracker: need 0 <= continue_score <= new_track_score <= 1, got "
                             f"{continue_score} and {new_track_score}")
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"MaskIoUTracker: iou_threshold must lie in (0, 1], got {iou_threshold}")
        if max_lost_frames < 0:
            raise ValueError(f"MaskIoUTracker: max_lost_frames must be 0 or more, got {max_lost_frames}")
        self.new_track_score, self.continue_score, self.iou_threshold = new_track_score, continue_score, iou_threshold
        self.match_across_classes, self.max_lost_frames = match_across_classes, max_lost_frames
        self._next_id = 1
        self.reset()

    def reset(self) -> None:
        """Forget the tracks (a new video); the ID counter goes on."""
        self._ids = np.zeros(0, np.int64)  # (T,)
        self._masks: np.ndarray | None = None  # (T, H, W) bool
        self._class_ids = np.zeros(0, np.int64)  # (T,)
        self._lost = np.zeros(0, np.int64)  # (T,) frames in a row each track has gone unmatched

    def update(self, masks: np.ndarray, scores: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
        """masks: (N, H, W) bool; scores: (N,); class_ids: (N,). Returns (N,) int64 track IDs, 0 for a
        detection left without a track (under ``continue_score``, or unmatched and under ``new_track_score``)."""
        masks, scores, class_ids = np.asarray(masks, bool), np.asarray(scores, float), np.asarray(class_ids, np.int64)
        if masks.ndim != 3 or scores.shape != (len(masks),) or class_ids.shape != (len(masks),):
            raise ValueError(f"MaskIoUTracker.update: need masks (N, H, W), scores (N,) and class_ids (N,), got "
                             f"{masks.shape}, {scores.shape} and {class_ids.shape}")
        if self._masks is not None and len(self._ids) and masks.shape[1:] != self._masks.shape[1:]:
            raise ValueError(f"MaskIoUTracker.update: masks of {masks.shape[1:]} after {self._masks.shape[1:]}; "
                             f"call reset() for a new video")
        iou = mask_iou(masks, self._masks) if len(self._ids) else np.zeros((len(masks), 0), np.float32)  # (N, T)
        if not self.match_across_classes:
            iou[class_ids[:, None] != self._class_ids[None, :]] = 0.0
        track_ids, free, self._next_id = greedy_assign(scores, iou >= self.iou_threshold, -iou, self._ids,
                                                       self._next_id, self.continue_score, self.new_track_score)
        tracked = track_ids > 0
        kept = np.flatnonzero(free & (self._lost < self.max_lost_frames))  # unmatched once more, still live
        self._ids = np.concatenate([track_ids[tracked], self._ids[kept]])
        self._masks = np.concatenate([masks[tracked], self._masks[kept]]) if len(kept) else masks[tracked]
        self._class_ids = np.concatenate([class_ids[tracked], self._class_ids[kept]])
        self._lost = np.concatenate([np.zeros(int(tracked.sum()), np.int64), self._lost[kept] + 1])
        return track_ids
