"""The predictor's uncertainty signal: events in one frame that make an error in it likely (docs/flywheel.md).

Counted from what the tracker decides anyway, so it costs a few array operations a frame:
- ``borderline``: detections scored within ``BORDERLINE_BAND`` of the continue or the start score. The tracker's
  thresholds cut through them: one a little lower is a missed object, one a little higher a false track.
- ``started``: tracks started in this frame (a stream's first frame excepted): a new object, or a duplicate or a
  broken track that will cost an ID.
- ``lost``: tracks reported in the previous frame that no detection continued in this one: an object that left,
  or a missed detection (the track flickers).
- ``class_changes``: tracks whose class differs from the previous frame's (with ``match_across_classes``): the
  model is unsure what the object is.

``events`` is their sum, the frame's signal; ``tracks`` names the tracks involved. What each part is worth was
measured on held-out videos (how well it ranks the frames where the model is wrong): test/uncertainty_ranking.py.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from sgnet_model.config import TrackerConfig

BORDERLINE_BAND = 0.1  # score distance from the continue or start score that counts as borderline


@dataclasses.dataclass(frozen=True)
class FrameUncertainty:
    borderline: int = 0
    started: int = 0
    lost: int = 0
    class_changes: int = 0
    tracks: tuple[int, ...] = ()  # ids of the tracks with an event: started, borderline score or class changed

    @property
    def events(self) -> int:
        return self.borderline + self.started + self.lost + self.class_changes


def frame_uncertainty(scores: np.ndarray, track_ids: np.ndarray, class_ids: np.ndarray,
                      previous: dict[int, int] | None, config: TrackerConfig) -> FrameUncertainty:
    """One frame's events. scores (N,) of every detection the tracker was given, track_ids (N,) what it assigned
    (0: none), class_ids (N,); ``previous``: track id -> class of the tracks reported in the stream's previous
    frame, None on its first frame (after a reset), where no track counts as started or lost."""
    near = ((np.abs(scores - config.continue_score) < BORDERLINE_BAND)
            | (np.abs(scores - config.new_track_score) < BORDERLINE_BAND))  # (N,)
    tracked = track_ids > 0
    before = previous or {}
    started = tracked & ~np.isin(track_ids, list(before)) & (previous is not None)
    changed = tracked & np.array([before.get(int(t), int(c)) != int(c) for t, c in zip(track_ids, class_ids)], bool)
    lost = len(set(before) - set(track_ids[tracked].tolist()))
    involved = track_ids[tracked & (near | started | changed)]
    return FrameUncertainty(borderline=int(near.sum()), started=int(started.sum()), lost=lost,
                            class_changes=int(changed.sum()), tracks=tuple(sorted(set(involved.tolist()))))
