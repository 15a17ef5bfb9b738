"""Greedy centre tracking with persistence (paper, Section 3.3; DESIGN.md, "Persistent tracking").

Each detection at frame t is represented by its centre o_t. FCOS's centerness target is 1 exactly at the centre
of the box, so the centerness location of a detection is its box centre: o_t = ((x1 + x2) / 2, (y1 + y2) / 2).
The tracking head predicts the movement D_t = o_t - o_{t-1} (Eq. 4), so o_t - D_t is where the detection was
at t-1. Detections, best score first, take the closest free live track whose expected position at t-1 lies
within r = radius_scale * mean(w, h) of that track's last box; a detection that finds none starts a new track.

Decisions beyond the paper:
- Persistence: a track that no detection matches is not dropped at once. It keeps moving by its last motion
  each frame and survives ``max_lost_frames`` unmatched frames; an object that reappears within the radius of
  where the track is expected takes its ID back. ``max_lost_frames = 0`` is the paper's behaviour.
- Two score thresholds: continuing a track needs ``continue_score``, starting one needs ``new_track_score``
  (higher), so weak detections extend tracks without spawning short spurious ones.
- Matching ignores the class: a detection may continue a track of another class, so that the class flickering
  between similar categories from frame to frame does not break the track. The track takes the new class.
- IDs start at 1 and are never reused: ``reset()`` forgets the tracks but not the ID counter, so IDs stay unique
  over the life of the tracker (of the predictor that owns it). A new tracker, e.g. after a node restart, counts
  from 1 again. ID 0 means "no track".
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .config import TrackerConfig


@dataclasses.dataclass(frozen=True)
class TrackState:
    """A copy of one live track, for inspection and debugging."""

    track_id: int
    box: np.ndarray  # (4,) x1 y1 x2 y2 of the last matched detection; its size sets the matching radius
    position: np.ndarray  # (2,) expected centre in the latest frame given to update()
    motion: np.ndarray  # (2,) the last predicted movement per frame
    lost_frames: int  # frames since the track was last matched (0: matched in the latest frame)
    class_id: int  # class of the last matched detection
    score: float  # score of the last matched detection


class CenterTracker:
    """Links detections of consecutive frames into tracks; see the module docstring for the rules."""

    def __init__(self, config: TrackerConfig = TrackerConfig()) -> None:
        self.config = config
        self._next_id = 1
        self.reset()

    def reset(self) -> None:
        """Forget all tracks (a new video). The ID counter goes on: IDs are never reused."""
        self._ids = np.zeros(0, np.int64)  # (T,)
        self._boxes = np.zeros((0, 4))  # (T, 4)
        self._positions = np.zeros((0, 2))  # (T, 2)
        self._motions = np.zeros((0, 2))  # (T, 2)
        self._lost = np.zeros(0, np.int64)  # (T,)
        self._class_ids = np.zeros(0, np.int64)  # (T,)
        self._scores = np.zeros(0)  # (T,)

    @property
    def tracks(self) -> tuple[TrackState, ...]:
        """The live tracks after the latest update, as copies."""
        return tuple(
            TrackState(int(self._ids[j]), self._boxes[j].copy(), self._positions[j].copy(), self._motions[j].copy(),
                       int(self._lost[j]), int(self._class_ids[j]), float(self._scores[j]))
            for j in range(len(self._ids)))

    def update(self, boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray,
               motions: np.ndarray) -> np.ndarray:
        """Track the detections of the next frame.

        boxes: (N, 4) x1 y1 x2 y2 pixels; scores: (N,); class_ids: (N,); motions: (N, 2) predicted movement
        D = o_t - o_{t-1} in pixels. Returns (N,) int64 track IDs, 0 for a detection that gets no track (score
        below ``continue_score``, or unmatched and below ``new_track_score``).
        """
        boxes, scores, class_ids, motions = _checked(boxes, scores, class_ids, motions)
        config = self.config
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2  # (N, 2) o_t
        sizes = self._boxes[:, 2:] - self._boxes[:, :2]  # (T, 2)
        radii = config.radius_scale * sizes.mean(axis=1)  # (T,) r = mean(w, h) of each track's box
        # (N, T): distance from o_t - D_t to where each track is expected at t-1.
        distances = np.linalg.norm((centres - motions)[:, None, :] - self._positions[None, :, :], axis=2)
        within = distances <= radii[None, :]

        track_ids = np.zeros(len(scores), np.int64)  # (N,)
        matched_track = np.full(len(scores), -1)  # (N,) index into the live tracks, -1 for none
        free = np.ones(len(self._ids), bool)  # (T,)
        for i in np.argsort(-scores, kind="stable"):
            if scores[i] < config.continue_score:
                break  # descending order: every later detection is weaker still
            candidates = np.flatnonzero(within[i] & free)
            if candidates.size:
                j = candidates[np.argmin(distances[i, candidates])]
                free[j] = False
                matched_track[i] = j
                track_ids[i] = self._ids[j]
            elif scores[i] >= config.new_track_score:
                track_ids[i] = self._next_id
                self._next_id += 1

        tracked = track_ids > 0
        lost = self._lost[free] + 1
        survives = lost <= config.max_lost_frames
        unmatched = np.flatnonzero(free)[survives]
        self._ids = np.concatenate([track_ids[tracked], self._ids[unmatched]])
        self._boxes = np.concatenate([boxes[tracked], self._boxes[unmatched]])
        self._positions = np.concatenate([centres[tracked], self._positions[unmatched] + self._motions[unmatched]])
        self._motions = np.concatenate([motions[tracked], self._motions[unmatched]])
        self._lost = np.concatenate([np.zeros(int(tracked.sum()), np.int64), lost[survives]])
        self._class_ids = np.concatenate([class_ids[tracked], self._class_ids[unmatched]])
        self._scores = np.concatenate([scores[tracked], self._scores[unmatched]])
        return track_ids


def _checked(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray,
             motions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The inputs as float64/int64 arrays, or a ValueError naming the argument with the wrong shape."""
    boxes, scores, motions = (np.asarray(a, np.float64) for a in (boxes, scores, motions))
    class_ids = np.asarray(class_ids, np.int64)
    if scores.ndim != 1:
        raise ValueError(f"CenterTracker.update: scores must have shape (N,), got {scores.shape}")
    count = len(scores)
    for name, array, shape in (("boxes", boxes, (count, 4)), ("class_ids", class_ids, (count,)),
                               ("motions", motions, (count, 2))):
        if array.shape != shape:
            raise ValueError(f"CenterTracker.update: {name} must have shape {shape} for {count} scores, "
                             f"got {array.shape}")
    for name, array in (("boxes", boxes), ("scores", scores), ("motions", motions)):
        if not np.isfinite(array).all():
            raise ValueError(f"CenterTracker.update: {name} contains NaN or infinite values")
    return boxes, scores, class_ids, motions
