"""The uncertainty signal's events (sgnet_model/inference/uncertainty.py), worked out by hand."""
import numpy as np

from sgnet_model.config import TrackerConfig
from sgnet_model.inference.uncertainty import BORDERLINE_BAND, FrameUncertainty, frame_uncertainty

PROFILE = TrackerConfig(new_track_score=0.5, continue_score=0.3)


def test_scores_near_either_threshold_are_borderline():
    # 0.25 and 0.35 lie within 0.1 of 0.3, 0.45 and 0.58 within 0.1 of 0.5; 0.15, 0.65 and 0.9 do not
    scores = np.array([0.15, 0.25, 0.35, 0.45, 0.58, 0.65, 0.9])
    ids = np.array([0, 0, 1, 2, 3, 4, 5])
    events = frame_uncertainty(scores, ids, np.zeros(7, np.int64), {1: 0, 2: 0, 3: 0, 4: 0, 5: 0}, PROFILE)
    assert BORDERLINE_BAND == 0.1
    assert events == FrameUncertainty(borderline=4, tracks=(1, 2, 3))  # the untracked 0.25 counts, no id


def test_started_lost_and_changed_tracks_against_the_previous_frame():
    # previous frame: tracks 1 (class 0), 2 (class 1), 3 (class 0); now 1 keeps class 0, 2 turns class 0,
    # 3 is gone, 7 is new; every score far from the thresholds
    scores = np.array([0.9, 0.9, 0.95])
    ids, classes = np.array([1, 2, 7]), np.array([0, 0, 1])
    events = frame_uncertainty(scores, ids, classes, {1: 0, 2: 1, 3: 0}, PROFILE)
    assert events == FrameUncertainty(started=1, lost=1, class_changes=1, tracks=(2, 7))
    assert events.events == 3


def test_a_streams_first_frame_starts_and_loses_nothing():
    events = frame_uncertainty(np.array([0.9, 0.8]), np.array([1, 2]), np.array([0, 1]), None, PROFILE)
    assert events == FrameUncertainty() and events.events == 0
    assert frame_uncertainty(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64), {4: 0}, PROFILE) == \
        FrameUncertainty(lost=1)
