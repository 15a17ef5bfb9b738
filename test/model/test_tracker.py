"""The centre tracker on hand-made sequences; every expected ID and distance is worked out in the comments."""
from __future__ import annotations

import numpy as np
import pytest

from sgnet_model.config import TrackerConfig
from sgnet_model.tracker import CenterTracker


def box(cx: float, cy: float, w: float, h: float) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def step(tracker: CenterTracker, *detections: tuple) -> list[int]:
    """detections: (box, score, motion) or (box, score, motion, class id); returns the track IDs as a list."""
    boxes = np.array([d[0] for d in detections], np.float32).reshape(-1, 4)
    scores = np.array([d[1] for d in detections], np.float32)
    motions = np.array([d[2] for d in detections], np.float32).reshape(-1, 2)
    class_ids = np.array([d[3] if len(d) > 3 else 0 for d in detections], np.int64)
    ids = tracker.update(boxes, scores, class_ids, motions)
    assert ids.dtype == np.int64 and ids.shape == (len(detections),)
    return ids.tolist()


def tracker(max_lost_frames: int = 5, radius_scale: float = 1.0) -> CenterTracker:
    return CenterTracker(TrackerConfig(new_track_score=0.5, continue_score=0.3, max_lost_frames=max_lost_frames,
                                       radius_scale=radius_scale))


def test_constant_speed_object_keeps_its_id_only_thanks_to_the_motion():
    # A 40x40 box (r = 40) moving 60 px per frame: farther per frame than r, so only the motion links it.
    with_motion, without_motion = tracker(), tracker()
    ids_with, ids_without = [], []
    for t in range(5):
        detection = box(100 + 60 * t, 100, 40, 40)
        motion = (0, 0) if t == 0 else (60, 0)  # the first frame has no previous one to move from
        ids_with += step(with_motion, (detection, 0.9, motion))
        ids_without += step(without_motion, (detection, 0.9, (0, 0)))
    assert ids_with == [1, 1, 1, 1, 1]
    # Zero motion: each centre is 60 px from the last one (> r = 40), and 120+ from the older tracks.
    assert ids_without == [1, 2, 3, 4, 5]


def crossing(zero_motion_at: int | None) -> list[list[int]]:
    """A moves right and B moves left by 40 px per frame on the same row; 50x50 boxes, so r = 50. Centres:
    t:   0    1    2    3    4
    A: 100  140  180  220  260
    B: 300  260  220  180  140      (they swap sides between t = 2 and t = 3)"""
    tracks = tracker()
    ids = []
    for t in range(5):
        motion_a, motion_b = ((40, 0), (-40, 0)) if t > 0 else ((0, 0), (0, 0))
        if t == zero_motion_at:
            motion_a = motion_b = (0, 0)
        ids.append(step(tracks, (box(100 + 40 * t, 100, 50, 50), 0.9, motion_a),
                        (box(300 - 40 * t, 100, 50, 50), 0.8, motion_b)))
    return ids


def test_crossing_objects_keep_their_ids_with_the_predicted_motion():
    # t = 3: A's centre moved back is 220 - 40 = 180: track 1 (at 180) is 0 away, track 2 (at 220) 40 away.
    assert crossing(zero_motion_at=None) == [[1, 2]] * 5


def test_crossing_objects_swap_ids_without_the_motion():
    # t = 3 with zero motion: A at 220 is 40 from track 1 (at 180) but 0 from track 2 (at 220), and A (score 0.9)
    # picks first: A takes 2, B (at 180) takes 1. The switch then persists: the motion term prevents it.
    assert crossing(zero_motion_at=3) == [[1, 2], [1, 2], [1, 2], [2, 1], [2, 1]]


def occlusion(hidden_frames: int) -> tuple[list[int], CenterTracker]:
    """A 40x40 box (r = 40) moving 20 px per frame, seen at t = 0..3 (centres 100..160), hidden for
    ``hidden_frames`` frames, then seen again where its speed puts it. The tracker keeps 3 lost frames."""
    tracks = tracker(max_lost_frames=3)
    ids = []
    for t in range(4):
        ids += step(tracks, (box(100 + 20 * t, 100, 40, 40), 0.9, (20, 0) if t else (0, 0)))
    for _ in range(hidden_frames):
        ids += step(tracks)
    t = 4 + hidden_frames
    ids += step(tracks, (box(100 + 20 * t, 100, 40, 40), 0.9, (20, 0)))
    return ids, tracks


def test_occluded_object_takes_its_id_back_where_its_motion_predicts():
    ids, tracks = occlusion(hidden_frames=3)
    # Hidden at t = 4, 5, 6, the track moves 160 -> 180 -> 200 -> 220. At t = 7 the object is at 240, moved back
    # by 20: 220, exactly where the track is. (A track left at its last centre, 160, would be 60 > r = 40 away.)
    assert ids == [1, 1, 1, 1, 1]
    (state,) = tracks.tracks
    assert state.track_id == 1 and state.lost_frames == 0
    np.testing.assert_allclose(state.position, [240, 100])


def test_lost_track_moves_by_its_last_motion_while_hidden():
    tracks = tracker(max_lost_frames=3)
    step(tracks, (box(100, 50, 40, 40), 0.9, (0, 0)))
    step(tracks, (box(110, 45, 40, 40), 0.9, (10, -5)))
    step(tracks)
    step(tracks)
    (state,) = tracks.tracks
    assert state.lost_frames == 2
    np.testing.assert_allclose(state.position, [110 + 2 * 10, 45 - 2 * 5])


def test_object_back_after_more_than_max_lost_frames_gets_a_new_id():
    # Hidden for 4 frames: after the 4th unmatched frame the track has been lost 4 > 3 frames and is gone.
    ids, tracks = occlusion(hidden_frames=4)
    assert ids == [1, 1, 1, 1, 2]
    assert [s.track_id for s in tracks.tracks] == [2]


def test_new_object_gets_a_new_id_and_old_ones_keep_theirs():
    tracks = tracker()
    a, b, c = box(100, 100, 40, 40), box(300, 100, 40, 40), box(100, 300, 40, 40)
    still = (0, 0)
    assert step(tracks, (a, 0.9, still)) == [1]
    assert step(tracks, (a, 0.9, still), (b, 0.8, still)) == [1, 2]
    # Listed in another order and with C new: IDs follow the objects, not the list positions.
    assert step(tracks, (c, 0.95, still), (b, 0.8, still), (a, 0.9, still)) == [3, 2, 1]


def test_ids_are_never_reused_after_a_track_dies_or_a_reset():
    tracks = tracker(max_lost_frames=0)  # no persistence: one unmatched frame ends a track
    a = box(100, 100, 40, 40)
    assert step(tracks, (a, 0.9, (0, 0))) == [1]
    assert step(tracks) == []
    assert tracks.tracks == ()
    assert step(tracks, (a, 0.9, (0, 0))) == [2]  # same place, but track 1 is dead: a new ID, not 1
    tracks.reset()
    assert tracks.tracks == ()
    assert step(tracks, (a, 0.9, (0, 0))) == [3]  # reset forgets tracks, not the counter
    assert step(tracker(), (a, 0.9, (0, 0))) == [1]  # a new tracker counts from 1


def test_weak_detection_continues_a_track_but_does_not_start_one():
    tracks = tracker()  # new_track_score 0.5, continue_score 0.3
    a, b = box(100, 100, 40, 40), box(300, 100, 40, 40)
    assert step(tracks, (a, 0.4, (0, 0))) == [0]  # 0.4 < 0.5: no track started
    assert tracks.tracks == ()
    assert step(tracks, (a, 0.5, (0, 0))) == [1]  # exactly new_track_score starts one
    assert step(tracks, (a, 0.4, (0, 0)), (b, 0.4, (0, 0))) == [1, 0]  # 0.4 >= 0.3 continues; B cannot start
    assert step(tracks, (a, 0.2, (0, 0))) == [0]  # below continue_score: not matched at all
    (state,) = tracks.tracks
    assert state.lost_frames == 1


def test_matching_radius_is_the_mean_side_of_the_tracks_box():
    # Track box 30 x 50, radius_scale 1.5: r = 1.5 * (30 + 50) / 2 = 60. Offsets (36, 48) are 60 away (3-4-5).
    def second_frame(dx: float, dy: float, motion: tuple[float, float] = (0, 0)) -> int:
        tracks = tracker(radius_scale=1.5)
        step(tracks, (box(100, 100, 30, 50), 0.9, (0, 0)))
        # The detection's own box is tiny: the radius comes from the track's box, not from the detection's.
        (track_id,) = step(tracks, (box(100 + dx, 100 + dy, 2, 2), 0.9, motion))
        return track_id

    assert second_frame(35.9, 47.9) == 1  # sqrt(35.9^2 + 47.9^2) = 59.86 < 60
    assert second_frame(36.1, 48.1) == 2  # sqrt(36.1^2 + 48.1^2) = 60.14 > 60
    # The radius applies to the centre moved back by the motion: offsets (86, 78) are 116.1 away, but moved back
    # by (50, 30) they are (36, 48): exactly r, and "within r" includes r.
    assert second_frame(86, 78, (50, 30)) == 1
    assert second_frame(86, 78) == 2


def test_matching_ignores_the_class():
    tracks = tracker()
    a = box(100, 100, 40, 40)
    assert step(tracks, (a, 0.9, (0, 0), 3)) == [1]
    assert step(tracks, (a, 0.9, (0, 0), 5)) == [1]  # class flicker from 3 to 5 keeps the track
    assert tracks.tracks[0].class_id == 5


def test_better_scored_detection_chooses_first():
    # Track at 100. A (0.9) is 10 away, B (0.6) 5 away: greedy in score order gives the track to A, B starts 2.
    tracks = tracker()
    step(tracks, (box(100, 100, 40, 40), 0.9, (0, 0)))
    assert step(tracks, (box(105, 100, 40, 40), 0.6, (0, 0)), (box(110, 100, 40, 40), 0.9, (0, 0))) == [2, 1]


def test_bad_input_shapes_are_named():
    tracks = tracker()
    with pytest.raises(ValueError, match="motions must have shape \\(1, 2\\)"):
        tracks.update(np.zeros((1, 4)), np.ones(1), np.zeros(1), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="boxes must have shape \\(2, 4\\)"):
        tracks.update(np.zeros((1, 4)), np.ones(2), np.zeros(2), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="scores contains NaN"):
        tracks.update(np.zeros((1, 4)), np.array([np.nan]), np.zeros(1), np.zeros((1, 2)))
