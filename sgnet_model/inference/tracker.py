"""Greedy, time-aware centre tracking with persistence (paper, Section 3.3; docs/tracking.md).

Each detection at time t is represented by its centre o_t, the centre of its box (the paper's o_t is the
centerness location that produced the detection; FCOS's centerness target peaks at the box centre, and the box
centre does not jump between neighbouring locations from frame to frame). The tracking head predicts the
movement D_t = o_t - o_p since the previous frame the tracker was given (time p; Eq. 4, with the real elapsed
time t - p as the head's input, motion_head.py), so o_t - D_t is where the detection was at p. Detections, best
score first, take the closest free live track (of the same class, unless matching across classes) whose
expected position at p lies within r = radius_scale * mean(w, h) of that track's last box; a detection that
finds none starts a new track.

Decisions beyond the paper:
- Time: every update carries the frame's timestamp. A matched track's velocity is D_t / (t - p) pixels per
  second; a track that no detection matches moves by velocity x elapsed time at each update, so its expected
  position does not depend on how many frames arrive (30 Hz camera, 6 Hz annotations, frames dropped under load).
- Persistence: an unmatched track is not dropped at once. It lives on until ``max_lost_s`` seconds after its
  last match, however many frames come in between, and an object that reappears within the radius of where the
  track is expected takes its ID back. A track matched in one frame can always be continued in the next, however
  late that frame comes (a slow model, a low frame rate). ``max_lost_s = 0`` is the paper's behaviour
  (unmatched tracks end).
- Two score thresholds: continuing a track needs ``continue_score``, starting one needs ``new_track_score``
  (higher), so weak detections extend tracks without spawning short spurious ones.
- Classes (``match_across_classes``): in the robot profile a detection may continue a track of any class, so an
  object whose class flickers keeps one track (measured on held-out synthetic videos: no ID switch, where
  class-wise matching had four; docs/model.md). Class-wise matching (the evaluation profile) lets a rider and a
  horse that overlap never swap IDs, at the price of a new track when a class flickers. Either way
  post-processing keeps one detection per object (class-agnostic NMS).
- IDs start at 1 and are never reused: ``reset()`` forgets the tracks but not the ID counter, so IDs stay unique
  over the life of the tracker (of the predictor that owns it). A new tracker, e.g. after a node restart, counts
  from 1 again. ID 0 means "no track".
"""
from __future__ import annotations

import dataclasses

import numpy as np

from sgnet_model.config import TrackerConfig


@dataclasses.dataclass(frozen=True)
class TrackState:
    """A copy of one live track, for inspection and debugging."""

    track_id: int
    box: np.ndarray  # (4,) x1 y1 x2 y2 of the last matched detection; its size sets the matching radius
    position: np.ndarray  # (2,) expected centre at the time of the latest update()
    velocity: np.ndarray  # (2,) pixels per second, from the last matched detection's predicted movement
    lost_s: float  # seconds since the track was last matched (0: matched in the latest update)
    class_id: int  # class of the track's detections
    score: float  # score of the last matched detection


class CenterTracker:
    """Links detections of successive frames into tracks; see the module docstring for the rules."""

    def __init__(self, config: TrackerConfig = TrackerConfig()) -> None:
        self.config = config
        self._next_id = 1
        self.reset()

    def reset(self) -> None:
        """Forget all tracks (a new video). The ID counter goes on: IDs are never reused."""
        self._time: float | None = None  # timestamp of the latest update
        self._ids = np.zeros(0, np.int64)  # (T,)
        self._boxes = np.zeros((0, 4))  # (T, 4)
        self._positions = np.zeros((0, 2))  # (T, 2)
        self._velocities = np.zeros((0, 2))  # (T, 2) pixels per second
        self._last_seen = np.zeros(0)  # (T,) timestamp of the last match
        self._class_ids = np.zeros(0, np.int64)  # (T,)
        self._scores = np.zeros(0)  # (T,)

    @property
    def tracks(self) -> tuple[TrackState, ...]:
        """The live tracks after the latest update, as copies."""
        return tuple(
            TrackState(int(self._ids[j]), self._boxes[j].copy(), self._positions[j].copy(),
                       self._velocities[j].copy(), float(self._time - self._last_seen[j]), int(self._class_ids[j]),
                       float(self._scores[j]))
            for j in range(len(self._ids)))

    def update(self, boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, motions: np.ndarray,
               timestamp: float) -> np.ndarray:
        """Track the detections of the next frame.

        boxes: (N, 4) x1 y1 x2 y2 pixels; scores: (N,); class_ids: (N,); motions: (N, 2) predicted movement
        D = o_t - o_p in pixels since the previous update (ignored on the first update after a reset);
        timestamp: the frame's time in seconds, not before the previous update's. Returns (N,) int64 track IDs,
        0 for a detection that gets no track (score below ``continue_score``, or unmatched and below
        ``new_track_score``).
        """
        boxes, scores, class_ids, motions = _checked(boxes, scores, class_ids, motions)
        if not np.isfinite(timestamp):
            raise ValueError(f"CenterTracker.update: timestamp must be finite, got {timestamp}")
        if self._time is not None and timestamp < self._time:
            raise ValueError(f"CenterTracker.update: timestamp {timestamp} is before the previous update's "
                             f"{self._time}; call reset() for a new video")
        elapsed = 0.0 if self._time is None else timestamp - self._time
        config = self.config
        # tracks already lost at the previous update, and lost too long ago now, end before matching
        self._keep((self._last_seen == self._time) | (timestamp - self._last_seen <= config.max_lost_s))
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2  # (N, 2) o_t
        sizes = self._boxes[:, 2:] - self._boxes[:, :2]  # (T, 2)
        radii = config.radius_scale * sizes.mean(axis=1)  # (T,) r = mean(w, h) of each track's box
        # (N, T): distance from o_t - D_t to where each track is expected at the previous update.
        distances = np.linalg.norm((centres - motions)[:, None, :] - self._positions[None, :, :], axis=2)
        within = distances <= radii[None, :]
        if not config.match_across_classes:
            within &= class_ids[:, None] == self._class_ids[None, :]

        track_ids, free, self._next_id = greedy_assign(scores, within, distances, self._ids, self._next_id,
                                                       config.continue_score, config.new_track_score)

        tracked = track_ids > 0
        unmatched = np.flatnonzero(free & (timestamp - self._last_seen <= config.max_lost_s))
        velocities = motions[tracked] / elapsed if elapsed > 0 else np.zeros((int(tracked.sum()), 2))
        self._ids = np.concatenate([track_ids[tracked], self._ids[unmatched]])
        self._boxes = np.concatenate([boxes[tracked], self._boxes[unmatched]])
        self._positions = np.concatenate([centres[tracked],
                                          self._positions[unmatched] + self._velocities[unmatched] * elapsed])
        self._velocities = np.concatenate([velocities, self._velocities[unmatched]])
        self._last_seen = np.concatenate([np.full(int(tracked.sum()), float(timestamp)), self._last_seen[unmatched]])
        self._class_ids = np.concatenate([class_ids[tracked], self._class_ids[unmatched]])
        self._scores = np.concatenate([scores[tracked], self._scores[unmatched]])
        self._time = float(timestamp)
        return track_ids

    def _keep(self, live: np.ndarray) -> None:
        """Drop the tracks where ``live`` (T,) is False."""
        for name in ("_ids", "_boxes", "_positions", "_velocities", "_last_seen", "_class_ids", "_scores"):
            setattr(self, name, getattr(self, name)[live])


def greedy_assign(scores: np.ndarray, allowed: np.ndarray, cost: np.ndarray, track_ids: np.ndarray, next_id: int,
                  continue_score: float, new_track_score: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Detections in descending score order each take the free allowed track of lowest cost, or a new ID.

    scores (N,); allowed, cost (N, T); track_ids (T,) the tracks' IDs. A detection under ``continue_score`` gets
    no track (0); one that finds no allowed free track starts ``next_id`` if it scores ``new_track_score``.
    Returns the (N,) IDs, the (T,) tracks left free and the next unused ID."""
    assigned = np.zeros(len(scores), np.int64)  # (N,)
    free = np.ones(len(track_ids), bool)  # (T,)
    for i in np.argsort(-scores, kind="stable"):
        if scores[i] < continue_score:
            break  # descending order: every later detection is weaker still
        candidates = np.flatnonzero(allowed[i] & free)
        if candidates.size:
            j = candidates[np.argmin(cost[i, candidates])]
            free[j] = False
            assigned[i] = track_ids[j]
        elif scores[i] >= new_track_score:
            assigned[i] = next_id
            next_id += 1
    return assigned, free, next_id


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
