"""Tracks carried over frames without a detection (TrackerConfig.fill_gaps_s): the last detected instance moved to
where the tracker expects the object, worked out by hand."""
import numpy as np
import pytest

from sgnet_model.config import ConfigError, TrackerConfig
from sgnet_model.instances import TrackedInstance, moved
from sgnet_model.predictor import StreamState


def square(x: int, y: int, track_id: int = 0, height: int = 40, width: int = 60) -> TrackedInstance:
    """A 10 x 10 px object with its top-left pixel at (x, y): box (x, y, x + 10, y + 10), centre (x + 5, y + 5)."""
    mask = np.zeros((height, width), bool)
    mask[max(y, 0):y + 10, max(x, 0):x + 10] = True
    box = np.array([x, y, x + 10, y + 10], np.float32)
    return TrackedInstance(track_id, 0, "square", 0.8, box, mask, np.array([x + 5, y + 5], np.float32),
                           np.zeros(2, np.float32))


def test_moved_shifts_mask_box_and_centre_by_whole_pixels_and_clips_at_the_frame():
    carried = moved(square(10, 20), np.array([22.4, 27.6]), np.array([7.0, 3.0]))  # from (15, 25): (7, 3)
    assert carried.predicted and not square(10, 20).predicted
    assert np.array_equal(carried.mask, square(17, 23).mask)
    assert carried.box.tolist() == [17, 23, 27, 33] and carried.centre.tolist() == [22, 28]
    assert carried.motion.tolist() == [7, 3] and carried.score == 0.8
    # pushed 5 px past the right edge (width 60): the columns outside are lost, the box ends at the frame
    edge = moved(square(50, 0), np.array([60.0, 5.0]), np.zeros(2))
    assert edge.mask.sum() == 5 * 10 and edge.mask[:10, 55:].all()
    assert edge.box.tolist() == [55, 0, 60, 10]
    # moved further than the frame is wide or high: nothing of it is left, and nothing wraps round
    assert not moved(square(0, 0), np.array([500.0, -300.0]), np.zeros(2)).mask.any()


def stream_at(fill_gaps_s: float) -> StreamState:
    return StreamState(TrackerConfig(new_track_score=0.5, continue_score=0.3, max_lost_s=1.0,
                                     fill_gaps_s=fill_gaps_s))


def detect(stream: StreamState, x: int, timestamp: float, motion: float) -> list[TrackedInstance]:
    """The square at (x, 10) in this frame, having moved ``motion`` px to the right since the previous frame."""
    instance = square(x, 10)
    [track_id] = stream.tracker.update(instance.box[None], np.array([0.8]), np.array([0]),
                                       np.array([[motion, 0.0]]), timestamp)
    instance.track_id = int(track_id)
    return [instance]


def nothing(stream: StreamState, timestamp: float) -> None:
    stream.tracker.update(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), np.zeros((0, 2)), timestamp)


def test_a_missed_frame_is_filled_from_the_tracks_velocity_until_fill_gaps_s():
    """10 Hz, 4 px a frame to the right (40 px/s): detected at x = 0 and 4, missed at 0.2 s and 0.3 s (expected at
    x = 8 and 12), then the fill window (0.25 s after the last match at 0.1 s) has passed at 0.4 s."""
    stream = stream_at(0.25)
    assert stream.carried(detect(stream, 0, 0.0, 0.0), 0.0) == []
    assert stream.carried(detect(stream, 4, 0.1, 4.0), 0.1) == []
    for timestamp, x in ((0.2, 8), (0.3, 12)):
        nothing(stream, timestamp)
        [carried] = stream.carried([], 0.1)
        assert carried.track_id == 1 and carried.predicted
        assert np.array_equal(carried.mask, square(x, 10).mask), timestamp
        assert carried.motion == pytest.approx([4.0, 0.0])
    nothing(stream, 0.4)
    assert stream.carried([], 0.1) == []
    # the object comes back where it is expected: the same track, detected again, and nothing carried beside it
    assert [i.track_id for i in detect(stream, 20, 0.5, 4.0)] == [1]


def test_without_fill_gaps_s_or_after_a_reset_nothing_is_carried():
    stream = stream_at(0.0)
    detect(stream, 0, 0.0, 0.0)
    nothing(stream, 0.1)
    assert stream.carried([], 0.1) == []
    stream = stream_at(0.5)
    stream.carried(detect(stream, 0, 0.0, 0.0), 0.0)
    stream.reset()
    nothing(stream, 0.1)
    assert stream.carried([], 0.1) == []


def test_fill_gaps_s_is_checked_against_max_lost_s():
    with pytest.raises(ConfigError, match="fill_gaps_s"):
        TrackerConfig(max_lost_s=0.5, fill_gaps_s=1.0)
