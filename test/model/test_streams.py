"""One predictor, several cameras: per-camera streams (tracks, previous towers, gaps) and batched inference."""
import dataclasses

import numpy as np
import pytest
import torch

from sgnet_model.config import PredictorConfig, SGNetConfig, TrackerConfig, named_config
from sgnet_model.model import SGNet
from sgnet_model.predictor import FixedFrame, PredictorError, StreamFrame, StreamingPredictor

SMALL = named_config("resnet18_small")
EVERYTHING = TrackerConfig(new_track_score=0.0, continue_score=0.0)  # random weights: track every detection


def predictor(**settings) -> StreamingPredictor:
    torch.manual_seed(0)
    made = StreamingPredictor.from_config(SGNetConfig(SMALL.model, EVERYTHING), PredictorConfig(**settings))
    made.update_thresholds(score_threshold=0.0, detections_per_frame=5)
    return made


def video(count: int, seed: int = 0, size: tuple[int, int] = (128, 224)) -> list[np.ndarray]:
    """A noise picture panning 8 pixels right per frame: the movement head sees two different frames."""
    base = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    return [np.roll(base, 8 * index, axis=1) for index in range(count)]


def summary(result) -> list[tuple]:
    return [(i.track_id, i.class_id, i.box, i.mask, i.motion) for i in result.instances]


def assert_same(got, expected, exact: bool) -> None:
    assert got.tracks_reset == expected.tracks_reset
    assert len(got.instances) == len(expected.instances) > 0
    for a, b in zip(got.instances, expected.instances):
        assert (a.track_id, a.class_id) == (b.track_id, b.class_id)
        if exact:
            assert np.array_equal(a.box, b.box) and np.array_equal(a.motion, b.motion)
            assert np.array_equal(a.mask, b.mask)
        else:  # a batch may run other convolution kernels: float tolerance
            assert np.allclose(a.box, b.box, atol=1e-2) and np.allclose(a.motion, b.motion, atol=1e-2)
            assert (a.mask == b.mask).mean() > 0.999
            assert abs(a.score - b.score) < 1e-4


def test_a_camera_interleaved_with_another_gets_exactly_what_it_gets_alone():
    """Camera A's IDs, masks and movements never change because of camera B's frames (another video, other
    stamps, a reset in the middle)."""
    a_frames, b_frames = video(4, seed=1), video(4, seed=2)
    alone = predictor()
    expected = [alone.step(image, 0.2 * t) for t, image in enumerate(a_frames)]
    shared = predictor()
    b_stamps = (100.0, 100.2, 99.0, 99.2)  # B's stamps go back at t = 2: B resets, A does not
    for t, (a, b) in enumerate(zip(a_frames, b_frames)):
        b_result = shared.step(b, b_stamps[t], camera="rear")
        assert b_result.tracks_reset == (t in (0, 2))
        assert_same(shared.step(a, 0.2 * t, camera="front"), expected[t], exact=True)
    assert set(shared.streams) == {"front", "rear"}


def test_the_same_video_on_two_cameras_in_batches_equals_one_camera_alone():
    frames = video(4, seed=3)
    alone = predictor()
    expected = [alone.step(image, 0.2 * t) for t, image in enumerate(frames)]
    batched = predictor()
    for t, image in enumerate(frames):
        front, rear = batched.step_batch([StreamFrame("front", image, 0.2 * t), StreamFrame("rear", image, 0.2 * t)])
        assert_same(front, expected[t], exact=False)
        assert_same(rear, expected[t], exact=False)
    # each camera counts its own IDs from 1
    assert {i.track_id for i in front.instances} == {i.track_id for i in expected[-1].instances}


def test_a_batch_equals_its_frames_run_one_at_a_time():
    """Three cameras with three videos, batched, against the same three streams stepped one frame at a time."""
    videos = {name: video(2, seed=seed) for seed, name in enumerate(("left", "front", "right"))}
    one_by_one, batched = predictor(), predictor()
    for t in range(2):
        expected = [one_by_one.step(frames[t], 0.1 * t, camera=name) for name, frames in videos.items()]
        got = batched.step_batch([StreamFrame(name, frames[t], 0.1 * t) for name, frames in videos.items()])
        for a, b in zip(got, expected):
            assert_same(a, b, exact=False)


def test_frames_of_different_sizes_run_in_their_own_batches():
    small, large = video(2, seed=4, size=(96, 160)), video(2, seed=5, size=(128, 224))
    one_by_one, batched = predictor(), predictor()
    for t in range(2):
        expected = [one_by_one.step(small[t], 0.1 * t, camera="small"),
                    one_by_one.step(large[t], 0.1 * t, camera="large")]
        got = batched.step_batch([StreamFrame("small", small[t], 0.1 * t), StreamFrame("large", large[t], 0.1 * t)])
        assert got[0].instances[0].mask.shape == (96, 160) and got[1].instances[0].mask.shape == (128, 224)
        for a, b in zip(got, expected):
            assert_same(a, b, exact=False)


def test_a_gap_on_one_camera_resets_only_that_camera():
    image = video(1)[0]
    shared = predictor(max_gap_s=1.0)
    first = shared.step_batch([StreamFrame("front", image, 0.0), StreamFrame("rear", image, 0.0)])
    later = shared.step_batch([StreamFrame("front", image, 0.1), StreamFrame("rear", image, 5.0, received_before=0.0)])
    assert [r.tracks_reset for r in first] == [True, True] and [r.tracks_reset for r in later] == [False, True]
    alone = predictor(max_gap_s=1.0)  # front's tracks go on exactly as they would without the rear camera
    for got, expected in zip((first[0], later[0]), (alone.step(image, 0.0), alone.step(image, 0.1))):
        assert [i.track_id for i in got.instances] == [i.track_id for i in expected.instances]
    assert not {i.track_id for i in later[1].instances} & {i.track_id for i in first[1].instances}
    shared.reset("front")
    assert shared.step(image, 5.1, camera="front").tracks_reset
    assert not shared.step(image, 5.1, camera="rear").tracks_reset


def test_tracker_settings_reach_every_camera():
    shared = predictor()
    shared.step_batch([StreamFrame("front", video(1)[0], 0.0), StreamFrame("rear", video(1)[0], 0.0)])
    strict = dataclasses.replace(EVERYTHING, new_track_score=1.0, continue_score=1.0)
    shared.tracker_config = strict
    assert all(stream.tracker.config == strict for stream in shared.streams.values())
    assert shared.stream("new").tracker.config == strict


def test_bad_batches_get_clear_errors():
    shared, image = predictor(), video(1)[0]
    with pytest.raises(PredictorError, match="one frame per camera"):
        shared.step_batch([StreamFrame("front", image, 0.0), StreamFrame("front", image, 0.1)])
    with pytest.raises(PredictorError, match="finite.*'rear'"):
        shared.step_batch([StreamFrame("front", image, 0.0), StreamFrame("rear", image, float("nan"))])
    assert "front" not in shared.streams or shared.streams["front"].timestamp is None  # nothing was advanced


def test_a_fixed_frame_batch_equals_one_fixed_frame_per_stream():
    """The fixed-shape path (what CUDA graphs replay) on a batch of two streams, one of them still, with each
    slot's previous towers its own, against a FixedFrame per stream."""
    torch.manual_seed(1)
    model = SGNet(SMALL.model).eval()
    config = dataclasses.replace(SMALL.model, score_threshold=0.0, detections_per_frame=4)
    images = [[torch.from_numpy(f).permute(2, 0, 1)[None].float() for f in video(2, seed=s)] for s in (6, 7)]
    with torch.inference_mode():
        batched = FixedFrame(model, config, torch.cat([v[0] for v in images]), 1.0, (128, 224), (128, 224))
        single = [FixedFrame(model, config, v[0], 1.0, (128, 224), (128, 224)) for v in images]
        for t in range(2):
            got = batched(torch.cat([v[t] for v in images]), still=[t == 0, True], elapsed=[0.2 * t, 0.0])
            for stream, (fixed, frames) in enumerate(zip(single, images)):
                expected = fixed(frames[t], still=t == 0 or stream == 1, elapsed=0.2 * t if stream == 0 else 0.0)[0]
                assert torch.allclose(got[stream].numbers, expected.numbers, atol=1e-3)
                assert (got[stream].masks == expected.masks).float().mean() > 0.999
        assert got[0].numbers[:, 4:6].abs().max() > 0  # stream 0 saw its previous frame
