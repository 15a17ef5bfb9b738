"""A plain mask-IoU tracker: links a per-frame instance segmenter's masks into tracks (sgnet-peer-bench links
Mask R-CNN's this way).

Per frame, detections best score first each take the free track of the previous frame, of the same class, whose
mask overlaps theirs most, if that mask IoU is at least ``iou_threshold`` (0.5); a detection that finds none
starts a new track. With ``match_across_classes`` (as SG-Net's robot profile has it) the class is not compared. Only the previous frame's tracks can be continued: a track not matched in a frame ends
(no motion model, no persistence). Two score gates, as SG-Net's tracker profiles have them: a detection under
``continue_score`` is left out, and starting a track needs ``new_track_score``. With both at 0 every detection
is tracked. IDs start at 1 and are never reused (``reset()`` keeps the counter); 0 means "no track".

A track's video-level score is the mean of its detections' scores: that is what
:func:`sgnet_model.data.ytvis.build_video_results` makes of the per-frame instances.
"""
from __future__ import annotations

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


class MaskIoUTracker:
    """Greedy linking of each frame's masks to the previous frame's tracks by mask IoU."""

    def __init__(self, new_track_score: float = 0.0, continue_score: float = 0.0,
                 iou_threshold: float = MATCH_IOU, match_across_classes: bool = False) -> None:
        if not 0.0 <= continue_score <= new_track_score <= 1.0:
            raise ValueError(f"MaskIoUTracker: need 0 <= continue_score <= new_track_score <= 1, got "
                             f"{continue_score} and {new_track_score}")
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"MaskIoUTracker: iou_threshold must lie in (0, 1], got {iou_threshold}")
        self.new_track_score, self.continue_score, self.iou_threshold = new_track_score, continue_score, iou_threshold
        self.match_across_classes = match_across_classes
        self._next_id = 1
        self.reset()

    def reset(self) -> None:
        """Forget the tracks (a new video); the ID counter goes on."""
        self._ids = np.zeros(0, np.int64)  # (T,)
        self._masks: np.ndarray | None = None  # (T, H, W) bool
        self._class_ids = np.zeros(0, np.int64)  # (T,)

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
        track_ids, _, self._next_id = greedy_assign(scores, iou >= self.iou_threshold, -iou, self._ids,
                                                    self._next_id, self.continue_score, self.new_track_score)
        tracked = track_ids > 0
        self._ids, self._masks, self._class_ids = track_ids[tracked], masks[tracked], class_ids[tracked]
        return track_ids
