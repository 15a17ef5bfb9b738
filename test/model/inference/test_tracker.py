"""The centre tracker on hand-made sequences; every expected ID, distance and time is worked out in the comments.

Unless a test says otherwise, frame k is at time k * DT (DT = 0.25 s, exact in binary), so a movement of m pixels
per frame is a velocity of 4m pixels per second."""
from __future__ import annotations

import numpy as np
import pytest

from sgnet_model.config import TrackerConfig
from sgnet_model.inference.tracker import CenterTracker


def box(cx: float, cy: float, w: float, h: float) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


DT = 0.25


def step_at(tracker: CenterTracker, time: float, *detections: tuple) -> list[int]:
    """detections: (box, score, motion) or (box, score, motion, class id) at ``time`` seconds; returns the track
    IDs as a list."""
    boxes = np.array([d[0] for d in detections], np.float32).reshape(-1, 4)
    scores = np.array([d[1] for d in detections], np.float32)
    motions = np.array([d[2] for d in detections], np.float32).reshape(-1, 2)
    class_ids = np.array([d[3] if len(d) > 3 else 0 for d in detections], np.int64)
    ids = tracker.update(boxes, scores, class_ids, motions, time)
    assert ids.dtype == np.int64 and ids.shape == (len(detections),)
    return ids.tolist()


def step(tracker: CenterTracker, *detections: tuple) -> list[int]:
    """The next frame, DT after the previous one (the first at time 0)."""
    tracker.frame = getattr(tracker, "frame", -1) + 1
    return step_at(tracker, tracker.frame * DT, *detections)


def tracker(max_lost_s: float = 5 * DT, radius_scale: float = 1.0, across_classes: bool = False) -> CenterTracker:
    return CenterTracker(TrackerConfig(new_track_score=0.5, continue_score=0.3, max_lost_s=max_lost_s,
                                       match_across_classes=across_classes,
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
    """A 40x40 box (r = 40) moving 20 px per frame (80 px/s), seen at t = 0..3 (centres 100..160), hidden for
    ``hidden_frames`` frames, then seen again where its speed puts it. The tracker keeps lost tracks 1 s
    (4 frames): a frame at most 1 s after the last match can continue the track."""
    tracks = tracker(max_lost_s=4 * DT)
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
    assert state.track_id == 1 and state.lost_s == 0
    np.testing.assert_allclose(state.position, [240, 100])
    np.testing.assert_allclose(state.velocity, [20 / DT, 0])  # 80 px/s


def test_lost_track_moves_by_its_velocity_times_the_elapsed_time():
    tracks = tracker(max_lost_s=1.0)
    step_at(tracks, 0.0, (box(100, 50, 40, 40), 0.9, (0, 0)))
    step_at(tracks, 0.25, (box(110, 45, 40, 40), 0.9, (10, -5)))  # (10, -5) in 0.25 s: (40, -20) px/s
    step_at(tracks, 0.375)
    step_at(tracks, 0.75)
    (state,) = tracks.tracks
    assert state.lost_s == 0.5  # last matched at 0.25
    np.testing.assert_allclose(state.velocity, [40, -20])
    # 0.5 s after its last match, whatever the number of updates in between: (110, 45) + 0.5 * (40, -20).
    np.testing.assert_allclose(state.position, [110 + 20, 45 - 10])


@pytest.mark.parametrize("interval", [1 / 32, 1 / 8, 0.5])
def test_a_hidden_object_is_found_again_at_any_frame_rate(interval):
    """An object at 100 px/s (a 40x40 box, r = 40) seen for 0.5 s, hidden 1 s, seen again at 0.5 + 1 + interval
    s; updates come every ``interval`` s (32, 8 or 2 a second). The detections' movements are what the head
    predicts over each interval: 100 * interval px. At any rate the lost track is expected exactly where the
    object reappears (moved back by its movement), so it takes its ID back if it is back within the 1.25 s of
    persistence."""
    tracks = tracker(max_lost_s=1.25)
    ids = []
    times = [k * interval for k in range(round(2.0 / interval) + 1)]
    for time in times:
        hidden = 0.5 < time < 1.5 + interval / 2
        x = 100 + 100 * time
        motion = (100 * interval, 0) if time > 0 else (0, 0)
        ids += step_at(tracks, time) if hidden else step_at(tracks, time, (box(x, 100, 40, 40), 0.9, motion))
    # Seen at 0.5 last, back at 1.5 + interval: lost for 1 + interval <= 1.25 s at 32 and 8 Hz, so one ID;
    # at 2 Hz the object is back at 2.0 s, 1.5 s > 1.25 s after its last match: the track has ended, a new one starts.
    assert ids == ([1] * len(ids) if interval < 0.5 else [1, 1, 2])
    if interval < 0.5:
        np.testing.assert_allclose(tracks.tracks[0].position, [100 + 100 * times[-1], 100])


def test_persistence_is_in_seconds_not_in_updates():
    # Lost at 0.0; max_lost_s 0.5. Ten updates within 0.45 s keep it; one update at 0.55 s ends it.
    many, one = tracker(max_lost_s=0.5), tracker(max_lost_s=0.5)
    for tracks in (many, one):
        step_at(tracks, 0.0, (box(100, 100, 40, 40), 0.9, (0, 0)))
    for k in range(1, 11):
        step_at(many, 0.045 * k)
    assert [s.track_id for s in many.tracks] == [1]
    step_at(one, 0.55)
    assert one.tracks == ()


def test_a_track_matched_in_one_frame_continues_in_the_next_however_late():
    # A slow model: frames 3 s apart, max_lost_s 0.5. Matched at 0, the track is matched again at 3 s (it was
    # never unseen in a frame); unseen at 6 s, 6 - 3 = 3 s > 0.5 s after its match, it ends.
    tracks = tracker(max_lost_s=0.5)
    a = box(100, 100, 40, 40)
    assert step_at(tracks, 0.0, (a, 0.9, (0, 0))) == [1]
    assert step_at(tracks, 3.0, (a, 0.9, (0, 0))) == [1]
    assert step_at(tracks, 6.0) == [] and tracks.tracks == ()


def test_time_going_back_is_refused():
    tracks = tracker()
    step_at(tracks, 1.0, (box(100, 100, 40, 40), 0.9, (0, 0)))
    with pytest.raises(ValueError, match="before the previous update's"):
        step_at(tracks, 0.5)
    with pytest.raises(ValueError, match="timestamp must be finite"):
        step_at(tracks, float("nan"))


def test_object_back_after_more_than_max_lost_s_gets_a_new_id():
    # Hidden for 4 frames: back at t = 8 (2.0 s), the track was last matched at t = 3 (0.75 s), 1.25 s > 1 s
    # ago, and has ended (it was still there at t = 7, 1 s after its match).
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
    tracks = tracker(max_lost_s=0)  # no persistence: one unmatched frame ends a track
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
    assert state.lost_s == DT


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


def test_a_rider_and_a_horse_do_not_swap_ids():
    # Rider (class 0) at x = 100, horse (class 1) at 110; 60x60 boxes, r = 60. Next frame, still motion: the
    # rider's box is found at 110 and the horse's at 100. Class-blind, the rider (0.9, first) would take the
    # horse's track (0 away rather than 10); within its class it takes its own, 10 < 60 away.
    tracks = tracker()
    assert step(tracks, (box(100, 100, 60, 60), 0.9, (0, 0), 0), (box(110, 100, 60, 60), 0.8, (0, 0), 1)) == [1, 2]
    assert step(tracks, (box(110, 100, 60, 60), 0.9, (0, 0), 0), (box(100, 100, 60, 60), 0.8, (0, 0), 1)) == [1, 2]


def test_a_detection_of_another_class_starts_a_new_track():
    tracks = tracker()
    a = box(100, 100, 40, 40)
    assert step(tracks, (a, 0.9, (0, 0), 3)) == [1]
    assert step(tracks, (a, 0.9, (0, 0), 5)) == [2]  # same place, class 5: not track 1 (class 3), which is lost
    assert sorted((s.track_id, s.class_id) for s in tracks.tracks) == [(1, 3), (2, 5)]


def test_across_classes_a_flickering_class_keeps_its_track():
    # the same object, its class 3, 5, 3: one track, which takes each frame's class; the next, 100 px away
    # (r = 40), starts track 2 whatever its class
    tracks = tracker(across_classes=True)
    a = box(100, 100, 40, 40)
    assert step(tracks, (a, 0.9, (0, 0), 3)) == [1]
    assert step(tracks, (a, 0.9, (0, 0), 5)) == [1]
    assert [(s.track_id, s.class_id) for s in tracks.tracks] == [(1, 5)]
    assert step(tracks, (a, 0.9, (0, 0), 3), (box(200, 100, 40, 40), 0.8, (0, 0), 3)) == [1, 2]


def test_better_scored_detection_chooses_first():
    # Track at 100. A (0.9) is 10 away, B (0.6) 5 away: greedy in score order gives the track to A, B starts 2.
    tracks = tracker()
    step(tracks, (box(100, 100, 40, 40), 0.9, (0, 0)))
    assert step(tracks, (box(105, 100, 40, 40), 0.6, (0, 0)), (box(110, 100, 40, 40), 0.9, (0, 0))) == [2, 1]


def test_bad_input_shapes_are_named():
    tracks = tracker()
    with pytest.raises(ValueError, match="motions must have shape \\(1, 2\\)"):
        tracks.update(np.zeros((1, 4)), np.ones(1), np.zeros(1), np.zeros((1, 3)), 0.0)
    with pytest.raises(ValueError, match="boxes must have shape \\(2, 4\\)"):
        tracks.update(np.zeros((1, 4)), np.ones(2), np.zeros(2), np.zeros((2, 2)), 0.0)
    with pytest.raises(ValueError, match="scores contains NaN"):
        tracks.update(np.zeros((1, 4)), np.array([np.nan]), np.zeros(1), np.zeros((1, 2)), 0.0)
